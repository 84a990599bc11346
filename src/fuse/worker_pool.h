// Internal to the FUSE layer: the request loop that FuseServer::Serve runs.
//
// Why not fuse_session_loop_mt: libfuse's loop receives each request into a
// malloc'd buffer, so a WRITE's payload (which follows the 80-byte request
// header) is never 4 KiB aligned, and every write to an O_DIRECT dest went
// through a bounce copy (about a fifth of the daemon's busy CPU time on
// 1 MiB sequential writes). Here each worker owns a receive buffer placed so
// that the payload starts on a page boundary, and the engine writes straight
// from it.
//
// STRUCTURE: a grow-only pool of worker threads, each with its own receive
// buffer, all reading the session's /dev/fuse descriptor
// (fuse_session_receive_buf / fuse_session_process_buf, the libfuse calls for
// custom loops). The pool starts with one worker and adds one whenever a
// worker takes a request while no other worker is waiting for one, up to
// `max_threads` (as libfuse's loop does; a 1 MiB buffer is touched only by a
// worker that has received a 1 MiB write, so memory follows the load).
//
// LIFECYCLE: Run() returns when the filesystem is unmounted (the kernel
// aborts the connection and every worker's read fails with ENODEV), when a
// worker's read fails otherwise, or when libfuse ends the session itself
// (INIT refused). Every worker is joined before Run returns, so no request is
// in flight when the caller destroys the session. If the connection is still
// up when the loop ends, workers blocked in a read are interrupted with
// WakeSignal() (a real-time signal with an empty handler, sent to each
// worker still running), and leave.
//
// THREAD SAFETY: Run() is called once, from one thread.
// LOCK ORDER: mu_ is a leaf lock. It is held while a worker is created
// (mmap, pthread_create), never across a read of /dev/fuse or a request.
#pragma once

#include <pthread.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "base/status.h"

struct fuse_session;

namespace clonefs::fuse {

class WorkerPool {
 public:
  // `max_write` is the connection's max_write (the largest WRITE payload).
  WorkerPool(fuse_session* se, uint32_t max_threads, uint32_t max_write);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Serves requests until unmount. Errors: IoError if a read of /dev/fuse
  // failed with anything but ENODEV, if libfuse ended the session while the
  // kernel connection lived on (connection setup refused), or if no worker
  // could be started.
  Status Run();

  // Called by Run on its own thread right after it started a worker beyond
  // max_threads (an interrupt reader), before it looks at the pool again:
  // a seam for tests that let the new worker take a request first.
  // REQUIRES: before Run.
  void set_after_reader_added(std::function<void()> fn) { after_reader_added_ = std::move(fn); }

 private:
  class Buffer;
  struct Worker;

  static void* ThreadMain(void* arg);
  void Serve(Worker* w);
  // Starts a worker if the pool may grow: up to max_threads, or up to
  // kInterruptReaders more for an `interrupt_reader`, whose busy clock
  // (none_waiting_since_ns_) it restarts before the worker can run.
  // REQUIRES: mu_ not held.
  bool StartWorker(bool interrupt_reader = false);
  // The signal that interrupts a worker's read at shutdown: SIGRTMIN + 2.
  static int WakeSignal();
  // Ends the loop (`error`: an errno, or 0). REQUIRES: mu_ not held.
  void Stop(int error);
  // True once the kernel has aborted the connection (after an unmount).
  bool ConnectionAborted() const;

  // While no worker has waited for a request for kBusyCheckMillis (every
  // one is inside a request, e.g. waiting for a stalled source), Run adds a
  // worker beyond max_threads, one per check, at most kInterruptReaders in
  // all: without a reader of /dev/fuse the kernel's INTERRUPT for a killed
  // reader is not read, and that reader waits for the source timeout.
  static constexpr uint32_t kInterruptReaders = 8;
  static constexpr uint32_t kBusyCheckMillis = 500;

  fuse_session* const se_;
  const uint32_t max_threads_;
  const size_t buffer_size_;

  std::mutex mu_;
  std::condition_variable stopped_cv_;  // a worker left its loop
  // GUARDED_BY(mu_) while the pool runs; grow-only, and fixed once stopping_
  // is set (Run then reads it without the lock).
  std::vector<std::unique_ptr<Worker>> workers_;
  uint32_t waiting_ = 0;      // GUARDED_BY(mu_); workers in receive
  // GUARDED_BY(mu_); steady-clock ns when waiting_ last fell to 0; 0 while
  // a worker waits, or from an interrupt reader's start until it waits.
  // Only workers and StartWorker write it: an interrupt reader may take a
  // request and set it again before Run looks at the pool next.
  uint64_t none_waiting_since_ns_ = 0;
  bool stopping_ = false;     // GUARDED_BY(mu_); no more workers
  bool grow_failed_ = false;  // GUARDED_BY(mu_); stop trying to grow
  bool any_stopped_ = false;  // GUARDED_BY(mu_)
  int error_ = 0;             // GUARDED_BY(mu_); errno of a failed read
  std::function<void()> after_reader_added_;  // set before Run
};

}  // namespace clonefs::fuse
