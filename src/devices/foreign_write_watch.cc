#include "devices/foreign_write_watch.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace clonefs {
namespace {

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

}  // namespace

std::string DescribeWriter(int pid) {
  if (pid <= 0) return "another process";
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  if (in && std::getline(in, comm) && !comm.empty()) {
    return "pid " + std::to_string(pid) + " (" + comm + ")";
  }
  return "pid " + std::to_string(pid);
}

Result<std::unique_ptr<ForeignWriteWatch>> ForeignWriteWatch::Start(int fd, OnWrite on_write,
                                                                    OnOverflow on_overflow,
                                                                    uint64_t poll_interval_ns) {
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
  return std::unique_ptr<ForeignWriteWatch>(new ForeignWriteWatch(
      fan, stop, std::move(on_write), std::move(on_overflow), poll_interval_ns));
}

ForeignWriteWatch::ForeignWriteWatch(int fan_fd, int stop_fd, OnWrite on_write,
                                     OnOverflow on_overflow, uint64_t poll_interval_ns)
    : fan_fd_(fan_fd),
      stop_fd_(stop_fd),
      on_write_(std::move(on_write)),
      on_overflow_(std::move(on_overflow)),
      poll_interval_ns_(poll_interval_ns) {
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
  const timespec pause{static_cast<time_t>(poll_interval_ns_ / 1'000'000'000),
                       static_cast<long>(poll_interval_ns_ % 1'000'000'000)};
  for (;;) {
    pollfd p[2] = {{fan_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    if ((p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0 || !Drain()) return;
    // At most one look per interval: this process's own writes keep the
    // queue non-empty, and each look would otherwise be a wake-up per write.
    pollfd s{stop_fd_, POLLIN, 0};
    int r;
    do {
      r = ppoll(&s, 1, &pause, nullptr);
    } while (r < 0 && errno == EINTR);
    if (r != 0) return;
  }
}

bool ForeignWriteWatch::Drain() {
  const int self = getpid();
  alignas(fanotify_event_metadata) char buf[8192];
  for (;;) {
    const ssize_t n = read(fan_fd_, buf, sizeof buf);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    if (n == 0) return false;
    auto* m = reinterpret_cast<const fanotify_event_metadata*>(buf);
    ssize_t len = n;
    for (; FAN_EVENT_OK(m, len); m = FAN_EVENT_NEXT(m, len)) {
      if (m->vers != FANOTIFY_METADATA_VERSION) return false;
      if (m->fd >= 0) close(m->fd);
      if ((m->mask & FAN_Q_OVERFLOW) != 0) {
        if (on_overflow_) on_overflow_();
        continue;
      }
      if ((m->mask & FAN_MODIFY) == 0 || m->pid == self) continue;
      foreign_.fetch_add(1);
      on_write_(DescribeWriter(m->pid));
    }
  }
}

}  // namespace clonefs
