// ReaderPool: overlapped reads from a source whose ReadAsync runs in the
// caller (Device::AsyncReads() false: local files, MemDevice). `threads`
// threads take reads from a queue and call Device::Read, so the background
// copier can keep several reads in flight on such a source too.
//
// THREAD SAFETY: Submit may be called from any thread. `done` is called on a
// pool thread (or, after Stop, in the caller), exactly once per Submit.
// LIFECYCLE: threads start in the constructor. Stop() (or the destructor)
// runs every read already submitted, then joins the threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "devices/device.h"

namespace clonefs {

class ReaderPool {
 public:
  // Borrows `source`; it must outlive the pool.
  ReaderPool(Device* source, uint32_t threads);
  ~ReaderPool();
  ReaderPool(const ReaderPool&) = delete;
  ReaderPool& operator=(const ReaderPool&) = delete;

  // Called on the pool thread just before the read: a non-OK status skips
  // the read (the source is not touched) and is what `done` gets.
  using Gate = std::function<Status()>;

  // Reads [off, off+len) into buf on a pool thread and calls done(status).
  // `buf` must stay valid until then. `gate`, if set, may veto the read
  // while it waits in the queue (e.g. once the source changed).
  void Submit(uint64_t off, void* buf, size_t len, Device::ReadDone done, Gate gate = nullptr);
  void Stop();

 private:
  struct Job {
    uint64_t off;
    void* buf;
    size_t len;
    Device::ReadDone done;
    Gate gate;
  };
  Status Run(const Job& job);
  void Loop();

  Device* const source_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;  // GUARDED_BY(mu_)
  bool stop_ = false;     // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;
};

}  // namespace clonefs
