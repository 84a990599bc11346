// UringQueues: the FUSE-over-io_uring transport (Linux 6.14+, internal to
// src/fuse).
//
// With it, the kernel hands FUSE requests to the daemon through io_uring
// commands instead of read(2) on /dev/fuse, and takes each reply together
// with the wait for the next request (COMMIT_AND_FETCH: one system call per
// request instead of a writev and a read). fuse_kernel_abi.h describes the
// buffers. /dev/fuse stays in use beside it: the INIT exchange, requests sent
// before every queue is registered, interrupts and forgets still come
// through the WorkerPool.
//
// NEGOTIATION (the caller's part, fuse_channel.h): the kernel offers
// FUSE_OVER_IO_URING in INIT when its enable_uring parameter is on; the
// daemon accepts it in the reply only if Create() succeeded; Start() runs
// once the reply is written. From the INIT reply on, the kernel holds every
// new request until each of its queues (one per possible CPU) has an entry
// registered, so Start must either register everywhere or make the kernel
// give up on io_uring: the kernel does that when a REGISTER fails inside
// FUSE, and Start then sends one that must fail (an entry without buffers)
// to be sure. Requests then keep flowing through /dev/fuse: never a hung
// mount.
//
// THREADS: each queue is served by its own threads, each with its own small
// io_uring and one registered entry (a header and a payload buffer). A
// thread waits for a request, hands it to the handler as /dev/fuse would
// have delivered it (fuse_in_header, op header and payload contiguous; a
// WRITE's payload page aligned, as WorkerPool's), and commits the reply the
// handler wrote through TryReply. The kernel gives a request to a queue by
// the CPU its sender runs on, so one process with many requests in flight
// (fio, QEMU) feeds a single queue: a queue starts with two threads and
// adds one whenever a thread takes a request that leaves at most one of the
// queue's threads waiting, up to Options::max_threads_per_queue. (The
// kernel hands a request that found every entry busy to the next entry that
// commits, never to one registered after it arrived: a queue must grow
// before it runs out of waiting threads.)
//
// THREAD SAFETY: Create, then Start once (from the thread that wrote the
// INIT reply), then Stop once (any thread, after Start returned; also run by
// the destructor). TryReply and Serving from any thread (TryReply acts only
// on the calling thread's own request). Describe/requests from any thread.
// LOCK ORDER: mu_ is a leaf; it is held while a thread is created, never
// across a request or an io_uring wait.
//
// LIFECYCLE: Create (before the INIT reply) -> Start (after it) -> Stop ->
// destroy. Stop wakes every thread (an eventfd each ring polls); a thread
// in a request finishes it and commits the reply first. Call Stop before
// the session's /dev/fuse descriptor is closed (the threads send commands
// on it) and before the session is destroyed (they run its requests).
// Unmounting also ends them: the kernel then fails every command with
// ENOTCONN.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/status.h"
#include "fuse/fuse_kernel_abi.h"

struct io_uring;

namespace clonefs::fuse {

// Rebuilds a request as /dev/fuse delivers it, in place: the fuse_in_header
// and the op header from `h` are copied to just before `payload` (which
// holds h.ring_ent_in_out.payload_sz bytes; `room` bytes before it are
// writable). Returns the request's start; its length is the in-header's len.
// Errors: Corruption if the lengths do not add up (len < header + payload,
// an op header longer than op_in or `room`, payload_sz > payload_cap).
Result<char*> AssembleUringRequest(const kabi::UringReqHeader& h, char* payload, size_t room,
                                   size_t payload_cap);

// Writes a reply (iov[0] starts with the fuse_out_header, as libfuse sends
// it) into an entry: the header into h->in_out, the rest into `payload`, and
// payload_sz. Returns the reply's length. Errors: InvalidArgument if iov[0]
// is shorter than the header, or the rest exceeds payload_cap (nothing is
// written then).
Result<size_t> StoreUringReply(const struct iovec* iov, int count, kabi::UringReqHeader* h,
                               char* payload, size_t payload_cap);

// Threads of a queue kept waiting beyond the busy ones (see THREADS).
inline constexpr uint32_t kUringSpareThreads = 1;
// Whether a queue with `threads` threads, `busy` of them (the caller
// included) handling a request, adds one: when at most kUringSpareThreads
// are left waiting and it has fewer than `max_threads`.
bool UringQueueShouldGrow(uint32_t threads, uint32_t busy, uint32_t max_threads);

class UringQueues {
 public:
  struct Thread;  // one serving thread (uring_queues.cc)
  struct Options {
    // The kernel's queue count: its possible CPUs. 0: read
    // /sys/devices/system/cpu/possible. Default: 0.
    uint32_t queues = 0;
    // Most threads serving one queue. Default: 64.
    uint32_t max_threads_per_queue = 64;
    // Test hook: the threads of this queue fail before registering (as if
    // their io_uring could not be created), after other queues registered
    // (-1: none). Default: -1.
    int fail_queue = -1;
  };
  // Runs one request (`len` bytes at `req`, laid out as from /dev/fuse) on
  // the calling thread; its reply must come back through TryReply before it
  // returns (every clonefs operation replies before returning).
  using Handler = std::function<void(char* req, size_t len)>;

  // Checks that io_uring works here by creating the first queue's ring.
  // Errors: IoError with errno (ENOSYS: no io_uring; EPERM: disabled by
  // kernel.io_uring_disabled; ENOMEM), InvalidArgument for a bad Options.
  static Result<std::unique_ptr<UringQueues>> Create(const Options& options);
  ~UringQueues();
  UringQueues(const UringQueues&) = delete;
  UringQueues& operator=(const UringQueues&) = delete;

  // Registers one entry per queue on `dev_fd` (the session's /dev/fuse
  // descriptor), payload buffers of `max_payload` bytes (the INIT reply's
  // larger of max_write and max_pages pages, at least 8 KiB), and serves.
  // REQUIRES: the INIT reply was written; called once.
  // Errors: IoError if a queue could not be registered. The kernel has then
  // been told to keep using /dev/fuse (see NEGOTIATION; should even that
  // fail, the log says requests may hang until unmount), and threads that
  // did register keep serving whatever reaches them.
  Status Start(int dev_fd, size_t max_payload, Handler handler);

  // If the calling thread is serving request `unique` (iov[0]'s
  // fuse_out_header), stores the reply in its entry, sets *written to its
  // length (or -1 with errno EINVAL if it does not fit) and returns true;
  // the entry is committed when the handler returns. Otherwise false.
  bool TryReply(const struct iovec* iov, int count, ssize_t* written);

  // The payload buffer of the io_uring entry whose request the calling
  // thread is serving, if it holds `len` bytes (page aligned): a READ's data
  // read straight into it is not copied again by TryReply. nullptr on any
  // other thread.
  static char* ReplyBuffer(size_t len);

  // Whether an io_uring thread is running request `unique` right now.
  bool Serving(uint64_t unique) const;

  // Wakes and joins every thread. Idempotent.
  void Stop();

  // "io_uring (2 queues, 3 threads)" once Start succeeded, else
  // "/dev/fuse (" and why not ")".
  std::string Describe() const;
  bool serving() const { return serving_.load(); }
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  uint32_t queues() const { return options_.queues; }

 private:
  struct Queue {
    uint32_t qid = 0;
    std::atomic<uint32_t> threads{0};
    std::atomic<uint32_t> busy{0};  // threads handling a request
  };

  explicit UringQueues(const Options& options);
  // Starts a thread for `q` (its buffers here; its ring and REGISTER in the
  // thread, which Reports the outcome). REQUIRES: Start set dev_fd_ and
  // handler_. Errors: Busy when stopping; IoError (mmap, pthread_create).
  Result<Thread*> AddThread(Queue* q);
  // Records a thread's registration outcome (for Start; a failure also
  // stops growth).
  void Report(Thread* t, Status s);
  // Runs the request in t's entry and leaves its reply (or EIO) there.
  void Handle(Thread* t);
  // Adds a thread to `q` unless stopping or growth failed before.
  void MaybeGrow(Queue* q);
  static void* ThreadMain(void* arg);

  void Serve(Thread* t);
  // Makes the kernel give up on io_uring for this connection (see
  // NEGOTIATION) with a REGISTER that must fail. Returns whether it did.
  bool RefuseRing();

  Options options_;
  std::vector<std::unique_ptr<Queue>> queues_;
  int dev_fd_ = -1;
  size_t max_payload_ = 0;
  Handler handler_;
  int stop_fd_ = -1;  // eventfd: written by Stop, polled by every ring
  // A ring made by Create, for RefuseRing (used only by Start).
  std::unique_ptr<struct io_uring> spare_;

  mutable std::mutex mu_;                         // leaf lock; never held across a request
  std::condition_variable registered_cv_;         // a thread's registration is known
  std::vector<std::unique_ptr<Thread>> threads_;  // GUARDED_BY(mu_); grow-only
  bool stopping_ = false;                         // GUARDED_BY(mu_)
  bool grow_failed_ = false;                      // GUARDED_BY(mu_)
  std::string failure_;                           // GUARDED_BY(mu_)

  std::atomic<bool> serving_{false};
  std::atomic<uint64_t> requests_{0};
};

// The kernel's queue count for FUSE over io_uring: the number of possible
// CPUs (num_possible_cpus()), from /sys/devices/system/cpu/possible.
// Errors: IoError if unreadable, Corruption if unparsable.
Result<uint32_t> PossibleCpus();
// The same from a CPU list as the kernel prints it ("0-3", "0,2-5\n").
// Errors: Corruption if it is not one.
Result<uint32_t> CpuCountFromList(const std::string& list);

inline constexpr const char* kEnableUringParameter = "/sys/module/fuse/parameters/enable_uring";
// Whether the kernel lets FUSE use io_uring now: "" if the module parameter
// at `parameter` reads Y (or 1), else why not (for messages and status).
std::string KernelUringUnavailable(const std::string& parameter = kEnableUringParameter);

}  // namespace clonefs::fuse
