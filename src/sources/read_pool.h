// ReadPool: the threads of a TimedSource (internal to timed_device): they
// run the inner device's Read for waiting readers (into a bounce buffer,
// with a deadline), its other calls that may block on a stalled file system
// for waiting callers (Call: SEEK_DATA/SEEK_HOLE, the unchanged check; same
// deadline), and Read for ReadAsync (into the caller's buffer, no
// deadline). timed_device.h states the contract; this is the mechanism.
//
// STRUCTURE. Two queues: foreground jobs (Read) go before background ones
// (ReadAsync). Each pool thread is detached and holds a shared_ptr to the
// pool (and so to the inner device); a thread whose job's reader gave up
// while the job ran is "left behind": the pool starts a replacement (up to
// 4 x threads alive), and when the stuck read returns the thread retires if
// the pool has enough serving threads without it.
//
// THREAD SAFETY: thread-safe; mu_ guards the queues, the counters and every
// PoolJob's state. The inner device and `done` run without it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "base/cancel.h"
#include "devices/device.h"

namespace clonefs {

class ReadPool : public std::enable_shared_from_this<ReadPool> {
 public:
  // Starts `threads` threads (>= 1).
  static std::shared_ptr<ReadPool> Create(std::shared_ptr<Device> inner, int threads);

  // Runs inner->Read(off, bounce, len) on the pool and waits until the
  // monotonic deadline or until `token` is cancelled; copies into `buf` only
  // if the read finished in time. If `checked` is set and the read
  // succeeded, the same job then runs inner->CheckUnchanged() and *checked
  // gets its answer. Errors: the inner read's; IoError ETIMEDOUT / EINTR
  // (see source_wait.h) naming `name` and `timeout_ns`; Aborted once
  // Shutdown has begun.
  Status Read(uint64_t off, void* buf, size_t len, uint64_t timeout_ns, const CancelToken* token,
              const std::string& name, Status* checked = nullptr);
  // Runs fn(inner device) on the pool and waits for it like Read (the same
  // deadline and token; a call still running when its caller gives up is
  // left behind). fn must own (capture by value) whatever it writes: it may
  // finish after Call has returned. Errors: fn's; IoError ETIMEDOUT / EINTR
  // naming `what`, `name` and `timeout_ns`; Aborted once Shutdown has begun.
  using CallFn = std::function<Status(Device&)>;
  Status Call(CallFn fn, uint64_t timeout_ns, const CancelToken* token, const std::string& name,
              const std::string& what);
  // Runs inner->Read(off, buf, len) on the pool and calls done with its
  // result on the pool thread (or done(Aborted) on the caller's thread once
  // Shutdown has begun).
  void ReadAsync(uint64_t off, void* buf, size_t len, Device::ReadDone done);

  // Monotonic time since when the oldest running read has exceeded
  // `timeout_ns` (0 if none has), and the monotonic time the last read that
  // exceeded it finished (0 if none). `oldest_started_ns`, if not null:
  // when the oldest running job started (0 if none runs).
  void Stall(uint64_t timeout_ns, uint64_t* stalled_since_ns, uint64_t* recovered_ns,
             uint64_t* oldest_started_ns = nullptr) const;

  // Fails queued jobs with Aborted, then waits for every thread that is not
  // left behind to exit. Idempotent.
  void Shutdown();

 private:
  struct Job {
    uint64_t off = 0;
    size_t len = 0;
    uint8_t* dest = nullptr;
    std::unique_ptr<uint8_t[]> bounce;  // foreground reads
    CallFn call;                        // Call: run instead of a read
    bool check_after = false;           // Read: then inner->CheckUnchanged()
    Status checked;                     // GUARDED_BY(ReadPool::mu_): its answer
    Device::ReadDone done;              // background jobs
    std::condition_variable cv;         // foreground waiter
    // GUARDED_BY(ReadPool::mu_):
    bool started = false;
    bool finished = false;
    bool abandoned = false;    // the reader gave up
    bool left_behind = false;  // abandoned while running
    uint64_t started_ns = 0;
    Status status;
  };

  ReadPool(std::shared_ptr<Device> inner, int threads);
  // Queues a foreground job and waits for it (see Read); `what` names it in
  // the timeout and interrupt errors.
  Status RunAndWait(const std::shared_ptr<Job>& job, uint64_t timeout_ns, const CancelToken* token,
                    const std::string& name, const std::string& what);
  void SpawnLocked();  // REQUIRES: mu_ held
  void Worker();

  const std::shared_ptr<Device> inner_;
  const int threads_;
  const int max_threads_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;              // jobs queued, or stopping
  std::condition_variable exit_cv_;              // a thread exited
  std::deque<std::shared_ptr<Job>> foreground_;  // GUARDED_BY(mu_)
  std::deque<std::shared_ptr<Job>> background_;  // GUARDED_BY(mu_)
  std::unordered_set<Job*> running_;             // GUARDED_BY(mu_)
  bool stopping_ = false;                        // GUARDED_BY(mu_)
  int live_ = 0;                                 // GUARDED_BY(mu_); threads alive
  int left_behind_ = 0;                          // GUARDED_BY(mu_)
  uint64_t recovered_ns_ = 0;                    // GUARDED_BY(mu_)
};

}  // namespace clonefs
