#include "fuse/worker_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

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

// An anonymous mapping of one pad page plus `size` bytes; data() is placed so
// that data() + kWritePayloadOffset is page aligned. Pages are touched only as
// requests fill them.
class WorkerPool::Buffer {
 public:
  static std::unique_ptr<Buffer> Create(size_t size) {
    const size_t len = size + kPage;
    void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    return std::unique_ptr<Buffer>(new Buffer(static_cast<char*>(p), len));
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
};

size_t WorkerPool::WritePayloadOffset() { return kWritePayloadOffset; }

WorkerPool::WorkerPool(fuse_session* se, uint32_t max_threads, uint32_t max_write)
    : se_(se),
      max_threads_(std::max<uint32_t>(1, max_threads)),
      buffer_size_(BufferSize(max_write)) {}

WorkerPool::~WorkerPool() = default;  // Run() joined every worker it started

bool WorkerPool::StartWorker() {
  // Held across pthread_create: the new worker's first step waits for mu_,
  // and Run() cannot miss a worker started while it shuts the pool down.
  std::lock_guard<std::mutex> l(mu_);
  if (stopping_ || workers_.size() >= max_threads_) return false;
  auto w = std::make_unique<Worker>();
  w->pool = this;
  w->buffer = Buffer::Create(buffer_size_);
  if (w->buffer == nullptr) {
    CLONEFS_LOG_WARN("fuse: no memory for another worker's %zu-byte buffer (%zu workers serve)",
                     buffer_size_, workers_.size());
    return false;
  }
  int rc = pthread_create(&w->tid, nullptr, &WorkerPool::ThreadMain, w.get());
  if (rc != 0) {
    CLONEFS_LOG_WARN("fuse: cannot start another worker thread (%s; %zu workers serve)",
                     strerror(rc), workers_.size());
    return false;
  }
  workers_.push_back(std::move(w));
  return true;
}

void* WorkerPool::ThreadMain(void* arg) {
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
  auto* w = static_cast<Worker*>(arg);
  w->pool->Serve(w);
  return nullptr;
}

void WorkerPool::Serve(Worker* w) {
  while (true) {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++waiting_;
    }
    struct fuse_buf buf;
    std::memset(&buf, 0, sizeof(buf));
    buf.mem = w->buffer->data();
    buf.size = buffer_size_;
    // The only cancellation point a worker exposes: waiting for a request.
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, nullptr);
    int res = fuse_session_receive_buf(se_, &buf);
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, nullptr);
    bool grow;
    {
      std::lock_guard<std::mutex> l(mu_);
      --waiting_;
      grow = res > 0 && waiting_ == 0 && !stopping_ && workers_.size() < max_threads_;
    }
    if (grow) StartWorker();
    if (res == -EINTR || res == -EAGAIN) continue;
    if (res <= 0) {  // 0: unmounted (libfuse saw ENODEV)
      std::lock_guard<std::mutex> l(mu_);
      if (res < 0 && error_ == 0) error_ = -res;
      any_stopped_ = true;
      stopped_cv_.notify_all();
      return;
    }
    fuse_session_process_buf(se_, &buf);
  }
}

Status WorkerPool::Run() {
  if (!StartWorker()) return Status::IoError("cannot start a FUSE worker thread", EAGAIN);
  std::vector<Worker*> all;
  int error;
  {
    std::unique_lock<std::mutex> l(mu_);
    stopped_cv_.wait(l, [&] { return any_stopped_; });
    stopping_ = true;
    error = error_;
    for (auto& w : workers_) all.push_back(w.get());
  }
  fuse_session_exit(se_);
  // After an unmount the kernel aborts the connection and every worker's
  // read fails with ENODEV: each leaves by itself once its current request,
  // if any, is answered. Only after a read error can workers stay blocked in
  // a read; those are cancelled there.
  if (error != 0) {
    CLONEFS_LOG_ERROR("fuse: reading /dev/fuse failed: %s; stopping the request loop",
                      strerror(error));
    for (Worker* w : all) pthread_cancel(w->tid);
  }
  for (Worker* w : all) pthread_join(w->tid, nullptr);
  if (error != 0) return Status::IoError("reading requests from /dev/fuse failed", error);
  return Status::OK();
}

}  // namespace clonefs::fuse
