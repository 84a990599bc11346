// WorkerPool (worker_pool.h) over a libfuse session whose "device" is a
// queue in this test (fuse_session_custom_io): no kernel, no mount.
//
// What is checked: while every worker is inside a request, the pool keeps
// adding readers of the device (up to its limit), so that the kernel's
// INTERRUPT for a killed reader is read; also when each new reader takes a
// request that was already queued, at once.
#include "fuse/worker_pool.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

namespace clonefs::fuse {
namespace {

using namespace std::chrono_literals;

// The device: requests the test queues, replies libfuse writes. Read blocks
// until a request is queued or the device is closed (then ENODEV, as
// /dev/fuse after an unmount).
class Device {
 public:
  void Queue(std::string r) {
    std::lock_guard<std::mutex> l(mu_);
    requests_.push_back(std::move(r));
    cv_.notify_all();
  }
  void Close() {
    std::lock_guard<std::mutex> l(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  ssize_t Read(void* buf, size_t len) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return closed_ || !requests_.empty(); });
    if (requests_.empty()) {
      errno = ENODEV;
      return -1;
    }
    std::string r = std::move(requests_.front());
    requests_.pop_front();
    const size_t n = std::min(len, r.size());
    std::memcpy(buf, r.data(), n);
    return static_cast<ssize_t>(n);
  }
  ssize_t Writev(const struct iovec* iov, int count) {
    std::lock_guard<std::mutex> l(mu_);
    size_t n = 0;
    for (int i = 0; i < count; ++i) n += iov[i].iov_len;
    ++replies_;
    cv_.notify_all();
    return static_cast<ssize_t>(n);
  }
  bool WaitReplies(int n, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, limit, [&] { return replies_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> requests_;
  bool closed_ = false;
  int replies_ = 0;
};

// Requests that block in their handler until released, counted as they
// come in.
struct Handlers {
  std::mutex mu;
  std::condition_variable cv;
  int entered = 0;
  bool released = false;

  bool WaitEntered(int n, std::chrono::milliseconds limit) {
    std::unique_lock<std::mutex> l(mu);
    return cv.wait_for(l, limit, [&] { return entered >= n; });
  }
  int Entered() {
    std::lock_guard<std::mutex> l(mu);
    return entered;
  }
  void Release() {
    std::lock_guard<std::mutex> l(mu);
    released = true;
    cv.notify_all();
  }
};

struct Fixture {
  Device dev;
  Handlers handlers;
};

std::string Request(uint32_t opcode, uint64_t unique, uint64_t nodeid, const void* arg,
                    size_t arg_len) {
  struct fuse_in_header h;
  std::memset(&h, 0, sizeof(h));
  h.len = static_cast<uint32_t>(sizeof(h) + arg_len);
  h.opcode = opcode;
  h.unique = unique;
  h.nodeid = nodeid;
  h.pid = static_cast<uint32_t>(getpid());
  std::string r(reinterpret_cast<const char*>(&h), sizeof(h));
  r.append(static_cast<const char*>(arg), arg_len);
  return r;
}

std::string Init() {
  struct fuse_init_in in;
  std::memset(&in, 0, sizeof(in));
  in.major = FUSE_KERNEL_VERSION;
  in.minor = 31;
  in.max_readahead = 128 << 10;
  return Request(FUSE_INIT, 1, 0, &in, sizeof(in));
}

std::string Getattr(uint64_t unique) {
  struct fuse_getattr_in in;
  std::memset(&in, 0, sizeof(in));
  return Request(FUSE_GETATTR, unique, FUSE_ROOT_ID, &in, sizeof(in));
}

void BlockingGetattr(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) {
  auto* f = static_cast<Fixture*>(fuse_req_userdata(req));
  {
    std::unique_lock<std::mutex> l(f->handlers.mu);
    ++f->handlers.entered;
    f->handlers.cv.notify_all();
    f->handlers.cv.wait(l, [&] { return f->handlers.released; });
  }
  fuse_reply_err(req, ENOENT);
}

class WorkerPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* argv[] = {"worker_pool_test", nullptr};
    struct fuse_args args = FUSE_ARGS_INIT(1, const_cast<char**>(argv));
    struct fuse_lowlevel_ops ops;
    std::memset(&ops, 0, sizeof(ops));
    ops.getattr = BlockingGetattr;
    se_ = fuse_session_new(&args, &ops, sizeof(ops), &f_);
    fuse_opt_free_args(&args);  // the session copied what it keeps
    ASSERT_NE(se_, nullptr);
    struct fuse_custom_io io;
    std::memset(&io, 0, sizeof(io));
    io.read = [](int, void* buf, size_t len, void* ud) {
      return static_cast<Fixture*>(ud)->dev.Read(buf, len);
    };
    io.writev = [](int, struct iovec* iov, int count, void* ud) {
      return static_cast<Fixture*>(ud)->dev.Writev(iov, count);
    };
    // Never readable, never in error: a connection that stays up.
    const int fd = eventfd(0, EFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fuse_session_custom_io(se_, &io, fd), 0);
  }
  void TearDown() override {
    f_.handlers.Release();
    f_.dev.Close();
    if (runner_.joinable()) runner_.join();
    pool_.reset();
    if (se_ != nullptr) fuse_session_destroy(se_);  // closes the eventfd
  }
  // A pool with one worker at most (--threads 1), besides the readers it
  // adds; `after_reader_added` as WorkerPool::set_after_reader_added.
  WorkerPool* NewPool(std::function<void()> after_reader_added) {
    pool_ = std::make_unique<WorkerPool>(se_, /*max_threads=*/1, /*max_write=*/1 << 20);
    pool_->set_after_reader_added(std::move(after_reader_added));
    return pool_.get();
  }
  // Serves INIT, then runs the pool until TearDown closes the device.
  void Start() {
    f_.dev.Queue(Init());
    runner_ = std::thread([p = pool_.get()] { (void)p->Run(); });
    ASSERT_TRUE(f_.dev.WaitReplies(1, std::chrono::seconds(10))) << "no INIT reply";
  }

  Fixture f_;
  std::unique_ptr<WorkerPool> pool_;
  fuse_session* se_ = nullptr;
  std::thread runner_;
  std::atomic<int> added_{0};  // readers the pool added
};

// One worker (--threads 1) and three requests queued behind the first: each
// reader the pool adds takes the next queued request at once, before the
// pool looks at itself again (the seam makes sure of that order). The pool
// must still see that nobody reads the device and add the next reader.
// Before, the pool restarted its busy clock after the new reader had set it,
// and never added another: a killed reader's INTERRUPT then waited for a
// request to finish (the whole source timeout), 1 run in ~350 of the mount
// test KilledReadersExitWhenEveryWorkerWaitsForTheSource.
TEST_F(WorkerPoolTest, ReadersKeepBeingAddedWhileEachTakesAQueuedRequest) {
  NewPool([this] {
    const int n = ++added_;
    // The new reader takes its request (one worker was in one before).
    EXPECT_TRUE(f_.handlers.WaitEntered(n + 1, 10s)) << "reader " << n << " took no request";
  });
  ASSERT_NO_FATAL_FAILURE(Start());
  for (uint64_t u = 2; u < 6; ++u) f_.dev.Queue(Getattr(u));
  // The first worker takes one; readers are added every 0.5-1 s.
  EXPECT_TRUE(f_.handlers.WaitEntered(4, 15s))
      << "only " << f_.handlers.Entered()
      << " of 4 queued requests were taken; readers added: " << added_.load();
  // The hook runs after the reader started: it may count the third one
  // only after that reader took its request.
  for (int i = 0; i < 500 && added_.load() < 3; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GE(added_.load(), 3);
}

// The limit: max_threads + 8 readers, however long every one stays busy.
TEST_F(WorkerPoolTest, ReadersStopAtTheirLimit) {
  NewPool([this] { ++added_; });
  ASSERT_NO_FATAL_FAILURE(Start());
  for (uint64_t u = 2; u < 14; ++u) f_.dev.Queue(Getattr(u));
  ASSERT_TRUE(f_.handlers.WaitEntered(9, 30s)) << f_.handlers.Entered();
  std::this_thread::sleep_for(1500ms);  // three more checks
  EXPECT_EQ(f_.handlers.Entered(), 9);
  EXPECT_EQ(added_.load(), 8);
}

}  // namespace
}  // namespace clonefs::fuse
