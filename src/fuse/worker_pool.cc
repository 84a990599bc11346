#include "fuse/worker_pool.h"

#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/clock.h"
#include "base/log.h"

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

namespace clonefs::fuse {

namespace {

constexpr size_t kPage = 4096;
constexpr size_t kWritePayloadOffset = sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in);
static_assert(kWritePayloadOffset < kPage);

// libfuse 3.14 reads up to 256 pages + 4 KiB per request; the kernel never
// sends more than max_write plus a header. Either way this is enough.
size_t BufferSize(uint32_t max_write) {
  size_t want = std::max<size_t>(2u << 20, static_cast<size_t>(max_write) + 2 * kPage);
  return (want + kPage - 1) / kPage * kPage;
}

}  // namespace

// An anonymous mapping of one pad page, `size` bytes and an inaccessible
// guard page (a read longer than expected faults instead of writing into a
// neighbouring mapping); data() is placed so that data() + kWritePayloadOffset
// is page aligned. Pages are touched only as requests fill them.
class WorkerPool::Buffer {
 public:
  static std::unique_ptr<Buffer> Create(size_t size) {
    const size_t len = kPage + size + kPage;
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    char* base = static_cast<char*>(p);
    if (::mprotect(base + len - kPage, kPage, PROT_NONE) != 0) {
      ::munmap(base, len);
      return nullptr;
    }
    return std::unique_ptr<Buffer>(new Buffer(base, len));
  }
  ~Buffer() { ::munmap(base_, len_); }
  char* data() const { return base_ + kPage - kWritePayloadOffset; }

 private:
  Buffer(char* base, size_t len) : base_(base), len_(len) {}
  char* const base_;
  const size_t len_;
};

struct WorkerPool::Worker {
  WorkerPool* pool = nullptr;
  pthread_t tid{};
  std::unique_ptr<Buffer> buffer;
  bool exited = false;  // GUARDED_BY(pool->mu_); left Serve
};

WorkerPool::WorkerPool(fuse_session* se, uint32_t max_threads, uint32_t max_write)
    : se_(se),
      max_threads_(std::max<uint32_t>(1, max_threads)),
      buffer_size_(BufferSize(max_write)) {
  // StartWorker's push_back then cannot throw.
  workers_.reserve(max_threads_ + kInterruptReaders);
}

WorkerPool::~WorkerPool() = default;  // Run() joined every worker it started

bool WorkerPool::StartWorker(bool interrupt_reader) {
  // Held across pthread_create: the new worker's first step waits for mu_,
  // and Run() cannot miss a worker started while it shuts the pool down.
  std::lock_guard<std::mutex> l(mu_);
  const size_t cap = max_threads_ + (interrupt_reader ? kInterruptReaders : 0);
  if (stopping_ || grow_failed_ || workers_.size() >= cap) return false;
  auto w = std::make_unique<Worker>();
  w->pool = this;
  w->buffer = Buffer::Create(buffer_size_);
  int rc = w->buffer == nullptr ? ENOMEM : 0;
  // Before the worker runs: once it waits, then takes a request, it sets
  // the clock again, and Run must see that to add the next reader.
  if (rc == 0 && interrupt_reader) none_waiting_since_ns_ = 0;
  if (rc == 0) rc = pthread_create(&w->tid, nullptr, &WorkerPool::ThreadMain, w.get());
  if (rc != 0) {
    // Logged once: the pool keeps its size rather than retry on every
    // request that finds no worker waiting.
    grow_failed_ = true;
    CLONEFS_LOG_WARN("fuse: cannot start another worker (%s); %zu workers serve from now on",
                     strerror(rc), workers_.size());
    return false;
  }
  workers_.push_back(std::move(w));
  return true;
}

void* WorkerPool::ThreadMain(void* arg) {
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, WakeSignal());
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
  auto* w = static_cast<Worker*>(arg);
  w->pool->Serve(w);
  std::lock_guard<std::mutex> l(w->pool->mu_);
  w->exited = true;
  return nullptr;
}

void WorkerPool::Serve(Worker* w) {
  while (true) {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++waiting_;
      none_waiting_since_ns_ = 0;
    }
    struct fuse_buf buf;
    std::memset(&buf, 0, sizeof(buf));
    buf.mem = w->buffer->data();
    buf.size = buffer_size_;
    int res = fuse_session_receive_buf(se_, &buf);
    bool grow, stopping;
    {
      std::lock_guard<std::mutex> l(mu_);
      --waiting_;
      if (waiting_ == 0) none_waiting_since_ns_ = Clock::Real()->NowNanos();
      stopping = stopping_;
      grow = res > 0 && waiting_ == 0 && !stopping_ && workers_.size() < max_threads_;
    }
    if (grow) StartWorker();
    if (res == -EINTR || res == -EAGAIN) {
      if (stopping) return;  // woken by Run() (WakeSignal)
      continue;
    }
    if (res < 0) return Stop(-res);
    if (res == 0) return Stop(0);  // libfuse saw ENODEV (unmounted) and ended the session
    fuse_session_process_buf(se_, &buf);
    // libfuse also ends the session by itself while the connection lives on,
    // e.g. when INIT fails (an -o max_read the kernel does not grant); then
    // no read would ever return again.
    if (fuse_session_exited(se_)) return Stop(0);
  }
}

void WorkerPool::Stop(int error) {
  std::lock_guard<std::mutex> l(mu_);
  if (error != 0 && error_ == 0) error_ = error;
  any_stopped_ = true;
  stopped_cv_.notify_all();
}

int WorkerPool::WakeSignal() { return SIGRTMIN + 2; }

namespace {
void IgnoreWake(int) {}  // only there to interrupt a read with EINTR
}  // namespace

bool WorkerPool::ConnectionAborted() const {
  // As libfuse's own unmount tells: an aborted connection reports POLLERR.
  struct pollfd p = {fuse_session_fd(se_), 0, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLERR) != 0;
}

Status WorkerPool::Run() {
  // Process-wide, before any worker exists: WakeSignal interrupts a worker's
  // read (no SA_RESTART) and does nothing else. Only Run sends it, to one
  // worker at a time; workers make sure it is unblocked for them.
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = IgnoreWake;
  sigemptyset(&sa.sa_mask);
  if (sigaction(WakeSignal(), &sa, nullptr) != 0) {
    return Status::IoError("cannot install the FUSE workers' wake-up signal", errno);
  }
  if (!StartWorker()) return Status::IoError("cannot start a FUSE worker thread", EAGAIN);
  int error;
  while (true) {
    bool add_reader = false;
    {
      std::unique_lock<std::mutex> l(mu_);
      if (stopped_cv_.wait_for(l, std::chrono::milliseconds(kBusyCheckMillis),
                               [&] { return any_stopped_; })) {
        stopping_ = true;  // from here on workers_ does not change
        error = error_;
        break;
      }
      add_reader =
          none_waiting_since_ns_ != 0 &&
          Clock::Real()->NowNanos() - none_waiting_since_ns_ >= kBusyCheckMillis * 1'000'000ull;
    }
    // Every worker has been inside a request for a while (a stalled source,
    // with readers waiting for its timeout): nobody reads /dev/fuse, so the
    // kernel's INTERRUPT for a reader killed meanwhile would wait with it.
    // StartWorker restarts the busy clock; the new worker (which may take a
    // queued request at once) sets it again, so one more follows at most
    // two ticks later if that one is busy too.
    if (add_reader && StartWorker(/*interrupt_reader=*/true)) {
      if (after_reader_added_) after_reader_added_();
      CLONEFS_LOG_INFO(
          "fuse: every worker has been busy for %u ms; one more reads /dev/fuse so that "
          "interrupts (killed readers) are answered",
          kBusyCheckMillis);
    }
  }
  fuse_session_exit(se_);
  // After an unmount the kernel aborts the connection and every worker's
  // read fails with ENODEV: each leaves by itself once its current request,
  // if any, is answered. If the connection is still up (a read error, or
  // libfuse ended the session), workers may stay blocked in a read: they are
  // interrupted with WakeSignal, again every 10 ms, since a signal sent just
  // before a worker enters read() would be missed.
  const bool aborted = ConnectionAborted();
  if (!aborted) {
    if (error != 0) {
      CLONEFS_LOG_ERROR("fuse: reading /dev/fuse failed: %s; stopping the request loop",
                        strerror(error));
    }
    while (true) {
      bool all_out = true;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (auto& w : workers_) {
          if (w->exited) continue;
          all_out = false;
          pthread_kill(w->tid, WakeSignal());
        }
      }
      if (all_out) break;
      usleep(10'000);
    }
  }
  for (auto& w : workers_) pthread_join(w->tid, nullptr);
  if (error != 0) return Status::IoError("reading requests from /dev/fuse failed", error);
  if (!aborted) {
    return Status::IoError(
        "the FUSE session ended while the kernel connection was still up (connection setup "
        "failed; the log has libfuse's reason)",
        EPROTO);
  }
  return Status::OK();
}

}  // namespace clonefs::fuse
