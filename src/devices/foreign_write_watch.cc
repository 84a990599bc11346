#include "devices/foreign_write_watch.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "base/proc_info.h"

namespace clonefs {
namespace {

uint64_t MonotonicNanos() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(t.tv_nsec);
}

Status WatchError(int err, const char* what) {
  switch (err) {
    case ENOSYS:
    case EINVAL:
    case EOPNOTSUPP:
    case ENODEV:
    case EXDEV:
      return Status::NotSupported(std::string(what) + ": " + std::strerror(err));
    case EPERM:
    case EACCES:
      return Status::Permission(std::string(what) + ": " + std::strerror(err));
    default:
      return Status::FromErrno(err, what);
  }
}

// Reads every event queued on the fanotify group `fd` (non-blocking) and
// gives each to `each`; false once the group's fd fails or speaks another
// metadata version. Each event's header is copied out: with FID records an
// event's length need not be a multiple of 8, so the next one in the
// buffer may be misaligned for the struct.
template <typename Each>
bool ReadEvents(int fd, Each each) {
  alignas(fanotify_event_metadata) char buf[8192];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return false;
    const size_t len = static_cast<size_t>(n);
    for (size_t off = 0; off + sizeof(fanotify_event_metadata) <= len;) {
      fanotify_event_metadata m;
      std::memcpy(&m, buf + off, sizeof m);
      if (m.vers != FANOTIFY_METADATA_VERSION) return false;
      if (m.event_len < sizeof m || off + m.event_len > len) break;
      each(m);
      off += m.event_len;
    }
  }
}

}  // namespace

std::string DescribeWriter(int pid) {
  if (pid <= 0) return "another process";
  const std::optional<ProcStat> st = ReadProcStat(pid);
  if (st && !st->comm.empty()) return "pid " + std::to_string(pid) + " (" + st->comm + ")";
  return "pid " + std::to_string(pid);
}

Result<std::unique_ptr<ForeignWriteWatch>> ForeignWriteWatch::Start(int fd, Options options) {
  const int fan = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID | FAN_CLOEXEC | FAN_NONBLOCK,
                                O_RDONLY | O_LARGEFILE);
  if (fan < 0) return WatchError(errno, "fanotify_init");
  if (fanotify_mark(fan, FAN_MARK_ADD, FAN_MODIFY, fd, nullptr) != 0) {
    const int err = errno;
    close(fan);
    return WatchError(err, "fanotify_mark");
  }
  const int stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop < 0) {
    const int err = errno;
    close(fan);
    return Status::FromErrno(err, "eventfd");
  }
  // The guard: privileged only (EPERM otherwise), and only where the kernel
  // has permission events; without it the watch goes on alone.
  int perm = -1;
  if (options.on_denied) {
    perm = fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
                         O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    if (perm >= 0 && fanotify_mark(perm, FAN_MARK_ADD, FAN_OPEN_PERM, fd, nullptr) != 0) {
      close(perm);
      perm = -1;
    }
  }
  return std::unique_ptr<ForeignWriteWatch>(
      new ForeignWriteWatch(fan, perm, stop, std::move(options)));
}

ForeignWriteWatch::ForeignWriteWatch(int fan_fd, int perm_fd, int stop_fd, Options options)
    : fan_fd_(fan_fd),
      perm_fd_(perm_fd),
      stop_fd_(stop_fd),
      options_(std::move(options)),
      guarding_(perm_fd >= 0) {
  thread_ = std::thread([this] { Run(); });
}

ForeignWriteWatch::~ForeignWriteWatch() {
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = write(stop_fd_, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
  thread_.join();
  close(fan_fd_);
  close(stop_fd_);
}

void ForeignWriteWatch::Run() {
  const uint64_t interval = options_.poll_interval_ns;
  uint64_t resume_ns = 0;  // the FAN_MODIFY queue is not read before this
  for (;;) {
    pollfd p[3];
    nfds_t n = 0;
    p[n++] = {stop_fd_, POLLIN, 0};
    const int perm_at = perm_fd_ >= 0 ? static_cast<int>(n) : -1;
    if (perm_fd_ >= 0) p[n++] = {perm_fd_, POLLIN, 0};
    const uint64_t now = MonotonicNanos();
    int fan_at = -1;
    timespec wait{};
    const timespec* timeout = nullptr;
    if (now >= resume_ns) {
      fan_at = static_cast<int>(n);
      p[n++] = {fan_fd_, POLLIN, 0};
    } else {
      wait = {static_cast<time_t>((resume_ns - now) / 1'000'000'000),
              static_cast<long>((resume_ns - now) % 1'000'000'000)};
      timeout = &wait;
    }
    if (ppoll(p, n, timeout, nullptr) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents != 0) break;
    if (perm_at >= 0 && p[perm_at].revents != 0) {
      if ((p[perm_at].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 || !AnswerOpens()) break;
    }
    if (fan_at >= 0 && p[fan_at].revents != 0) {
      if ((p[fan_at].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 || !Drain()) break;
      // At most one look per interval: this process's own writes keep the
      // queue non-empty, and each look would otherwise be a wake-up per
      // write.
      resume_ns = MonotonicNanos() + interval;
    }
  }
  // However the thread ends, no open of the file may be left waiting for
  // it: the kernel lets pending ones through when the group goes.
  if (perm_fd_ >= 0) {
    close(perm_fd_);
    perm_fd_ = -1;
  }
}

bool ForeignWriteWatch::MayOpen(int pid) const {
  return pid == getpid() || RunsSameExecutable(pid);
}

bool ForeignWriteWatch::AnswerOpens() {
  return ReadEvents(perm_fd_, [this](const fanotify_event_metadata& m) {
    if (m.fd < 0) return;  // an overflow: nothing to answer
    const bool allow = (m.mask & FAN_OPEN_PERM) == 0 || MayOpen(m.pid);
    fanotify_response r{m.fd, static_cast<__u32>(allow ? FAN_ALLOW : FAN_DENY)};
    ssize_t w;
    do {
      w = write(perm_fd_, &r, sizeof r);
    } while (w < 0 && errno == EINTR);
    close(m.fd);
    if (!allow) {
      denied_.fetch_add(1);
      options_.on_denied(DescribeWriter(m.pid));
    }
  });
}

bool ForeignWriteWatch::Drain() {
  const int self = getpid();
  return ReadEvents(fan_fd_, [this, self](const fanotify_event_metadata& m) {
    if (m.fd >= 0) close(m.fd);
    if ((m.mask & FAN_Q_OVERFLOW) != 0) {
      if (options_.on_overflow) options_.on_overflow();
      return;
    }
    if ((m.mask & FAN_MODIFY) == 0 || m.pid == self) return;
    foreign_.fetch_add(1);
    options_.on_write(DescribeWriter(m.pid));
  });
}

}  // namespace clonefs
