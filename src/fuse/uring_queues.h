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
// mount. A queue is registered when one of its threads is; a thread when
// one of its entries is (it serves with those, and leaves if none
// registered). Once every queue is, the kernel uses them all, so nothing is
// refused then: the threads that could not register are only missing
// (logged; Describe counts the others).
//
// THREADS: each queue is served by a few threads (Options::
// threads_per_queue; by default enough for 8 in all, 1 to 4 per queue),
// each with its own io_uring and set of registered entries (a header and a
// payload buffer each). A thread waits for completions and handles them in
// batches, so one wake-up serves every request that arrived meanwhile: it
// never blocks on a request itself. (The kernel copies a request's payload
// in and a reply's out in the thread that owns the entry: with one thread
// per queue, 1 MiB requests from one process were copied one at a time.)
//  - A READ the IoPlanner places in a file (for clonefs: a hydrated range
//    of dest) is a DIRECT READ: the thread fills in the reply header and
//    submits a read of the file straight into the entry's payload buffer,
//    linked to the entry's COMMIT_AND_FETCH; the kernel commits the reply
//    when the read completes. One that fails or comes back short cancels
//    the linked commit: the request is put back and handled as below (which
//    answers from scratch and reports the error).
//  - A WRITE the IoPlanner places is a DIRECT WRITE: the thread writes the
//    entry's payload buffer (where the kernel put the data) to the file,
//    and on its completion writes the reply and commits. One that fails or
//    comes back short is handled as below.
//  - Any other request goes to a worker thread, which runs the handler on
//    it as /dev/fuse would have delivered it (fuse_in_header, op header and
//    payload contiguous; a WRITE's payload page aligned, as WorkerPool's),
//    with the reply written into the entry through TryReply; the queue's
//    thread then commits it (an eventfd wakes it). Workers are shared by
//    all queues and added whenever a request finds none idle, up to
//    Options::max_workers, so a slow request (a source read) does not hold
//    up another below that; past it requests wait for a worker, except an
//    interrupted one, which gets a worker of its own (Interrupted).
// The kernel gives a request to a queue by the CPU its sender runs on, so
// one process with many requests in flight (fio, QEMU) feeds a single
// queue: each of its threads starts with kUringFirstEntries entries and
// registers one more whenever a request leaves at most kUringSpareEntries
// of its own waiting, up to its share of Options::max_entries_per_queue
// (UringEntriesPerThread: a queue's threads together register at most that
// many, rounded up, so memory is bounded per queue as with /dev/fuse's
// --threads; each entry holds a payload buffer of the largest request). (The kernel hands a
// request that found every entry busy to the next entry that commits,
// never to one registered after it arrived: a queue must grow before it
// runs out of waiting entries.)
//
// THREAD SAFETY: Create, then Start once (from the thread that wrote the
// INIT reply), then Stop once (any thread, after Start returned; also run by
// the destructor). TryReply and Serving from any thread (TryReply acts only
// on the request the calling worker is handling). Describe/requests from
// any thread. LOCK ORDER: mu_, work_mu_ and each queue's done_mu are leaves;
// none is held across a request or an io_uring wait.
//
// LIFECYCLE: Create (before the INIT reply) -> Start (after it) -> Stop ->
// destroy. Stop wakes every queue thread (an eventfd each ring polls); a
// queue's thread leaves once the requests it handed out are answered and
// committed; the workers are joined after them. Call Stop before the
// session's /dev/fuse descriptor is closed (the threads send commands on
// it) and before the session is destroyed (workers run its requests), and
// before the files the ReadPlanner names are closed. Unmounting also ends
// the queue threads: the kernel then fails every command with ENOTCONN.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
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

// Entries a queue registers at first, and the ones it keeps waiting beyond
// the busy ones (see THREADS).
inline constexpr uint32_t kUringFirstEntries = 4;
inline constexpr uint32_t kUringSpareEntries = 1;
// Whether a queue with `entries` entries, `busy` of them (the caller's
// included) with a request in hand (at a worker, or a direct read in
// flight), registers one more: when at most kUringSpareEntries are left
// waiting and it has fewer than `max_entries`.
bool UringQueueShouldGrow(uint32_t entries, uint32_t busy, uint32_t max_entries);
// Threads per queue by default: enough for kUringMinThreads in all, 1 to 4
// per queue (see THREADS).
inline constexpr uint32_t kUringMinThreads = 8;
uint32_t UringThreadsPerQueue(uint32_t queues);
// Most entries each of a queue's `threads` registers: an even share of the
// queue's `max_entries`, rounded up (at least 1).
uint32_t UringEntriesPerThread(uint32_t max_entries, uint32_t threads);

class UringQueues {
 public:
  struct Entry;  // one registered entry (uring_queues.cc)
  struct Queue;  // one queue: its thread, ring and entries (uring_queues.cc)
  struct Options {
    // The kernel's queue count: its possible CPUs. 0: read
    // /sys/devices/system/cpu/possible. Default: 0.
    uint32_t queues = 0;
    // Threads (each with its ring and entries) serving one queue. 0:
    // UringThreadsPerQueue(queues). Default: 0.
    uint32_t threads_per_queue = 0;
    // Most entries one queue registers, all its threads together (rounded
    // up to a multiple of threads_per_queue). Default: 64.
    uint32_t max_entries_per_queue = 64;
    // Most worker threads (for all queues), but for those Interrupted adds.
    // Default: 64.
    uint32_t max_workers = 64;
    // Test hook: this queue's thread fails before registering (as if its
    // io_uring could not be created), after other queues registered (-1:
    // none). Default: -1.
    int fail_queue = -1;
    // Test hook: the thread with this index (0 .. queues x threads per
    // queue - 1, a queue's threads together) fails before registering.
    // Default: -1 (none).
    int fail_thread = -1;
    // Test hook: each thread's first REGISTERs after this many are sent
    // without buffers, so the kernel refuses them (as it would for lack of
    // memory). 0: none. Default: 0.
    uint32_t fail_register_after = 0;
    // Test hook: every Nth direct read or write goes to descriptor -1 (and
    // so fails, as a failing disk's would). 0: none. Default: 0.
    uint32_t fail_direct_every = 0;
  };
  // Runs one request (`len` bytes at `req`, laid out as from /dev/fuse) on
  // the calling worker; its reply must come back through TryReply before it
  // returns (every clonefs operation replies before returning).
  using Handler = std::function<void(char* req, size_t len)>;
  // A READ or WRITE as the kernel sent it: its node id, offset, size and
  // (for a WRITE) the file's open flags.
  struct IoRequest {
    bool write = false;
    uint64_t nodeid = 0;
    uint64_t off = 0;
    uint32_t size = 0;
    uint32_t flags = 0;
  };
  // Where its bytes are or go (a DIRECT READ or WRITE, see THREADS): `len`
  // bytes at `off` in `fd`, through a page-aligned buffer.
  struct DirectIo {
    int fd = -1;
    uint64_t off = 0;
    uint32_t len = 0;
  };
  // Called on a queue's thread for each READ and WRITE; must not block.
  // Returns true with *out filled (0 < len <= size) when reading or writing
  // those bytes is all the request needs (a WRITE is then answered with
  // `len` bytes written); false hands the request to a worker.
  using IoPlanner = std::function<bool(const IoRequest& r, DirectIo* out)>;

  // Checks that io_uring works here by creating a ring.
  // Errors: IoError with errno (ENOSYS: no io_uring; EPERM: disabled by
  // kernel.io_uring_disabled; ENOMEM), InvalidArgument for a bad Options.
  static Result<std::unique_ptr<UringQueues>> Create(const Options& options);
  ~UringQueues();
  UringQueues(const UringQueues&) = delete;
  UringQueues& operator=(const UringQueues&) = delete;

  // Registers kUringFirstEntries entries per queue on `dev_fd` (the
  // session's /dev/fuse descriptor), payload buffers of `max_payload` bytes
  // (the INIT reply's larger of max_write and max_pages pages, at least
  // 8 KiB), and serves, with `planner` (may be empty: no direct I/O) for
  // READs and WRITEs. REQUIRES: the INIT reply was written; called once.
  // Errors: IoError if a queue could not be registered. The kernel has then
  // been told to keep using /dev/fuse (see NEGOTIATION; should even that
  // fail, the log says requests may hang until unmount), and queues that
  // did register keep serving whatever reaches them.
  Status Start(int dev_fd, size_t max_payload, Handler handler, IoPlanner planner = {});

  // If the calling thread is a worker handling request `unique` (iov[0]'s
  // fuse_out_header), stores the reply in its entry, sets *written to its
  // length (or -1 with errno EINVAL if it does not fit) and returns true;
  // the entry is committed when the handler returns. Otherwise false.
  bool TryReply(const struct iovec* iov, int count, ssize_t* written);

  // The payload buffer of the io_uring entry whose request the calling
  // worker is handling, if it holds `len` bytes (page aligned): a READ's
  // data read straight into it is not copied again by TryReply. nullptr on
  // any other thread.
  static char* ReplyBuffer(size_t len);

  // Whether a worker is running request `unique` right now (or it waits
  // for one).
  bool Serving(uint64_t unique) const;

  // The kernel's INTERRUPT for request `unique` arrived (through /dev/fuse).
  // If that request waits for a worker (every one busy, e.g. waiting for a
  // stalled source), it goes first, and a worker is added for it if none is
  // idle, beyond Options::max_workers if need be: its handler then sees the
  // interrupt at once (a killed requester gets EINTR). The kernel handed
  // the request out already, so unlike one still queued for /dev/fuse it
  // cannot drop it when the requester dies; without this the requester
  // would wait for the requests ahead of it (up to the source timeout).
  // Any thread.
  void Interrupted(uint64_t unique);

  // Wakes and joins every thread. Idempotent.
  void Stop();

  // "io_uring (2 queues, 8 threads, 40 entries, 3 workers)" once Start
  // succeeded, else
  // "/dev/fuse (" and why not ")".
  std::string Describe() const;
  bool serving() const { return serving_.load(); }
  uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }
  // READs and WRITEs answered by direct I/O (a subset of requests()).
  uint64_t direct_requests() const {
    const uint64_t placed = direct_.load(std::memory_order_relaxed);
    return placed - std::min(placed, direct_retries());
  }
  // Direct READs and WRITEs that failed or came back short and were handed
  // to a worker (which answered them through the handler), in all and of
  // one kind.
  uint64_t direct_retries() const { return direct_retries(false) + direct_retries(true); }
  uint64_t direct_retries(bool write) const {
    return retries_[write ? 1 : 0].load(std::memory_order_relaxed);
  }
  uint32_t queues() const { return options_.queues; }

 private:
  explicit UringQueues(const Options& options);
  static void* QueueMain(void* arg);
  static void* WorkerMain(void* arg);
  // Queue thread: makes the ring, registers the first entries, Reports the
  // outcome, then Loop.
  void Serve(Queue* q);
  void Loop(Queue* q);
  // Records a queue's registration outcome (for Start).
  void Report(Queue* q, Status s);
  // Maps a new entry's buffers and queues its REGISTER on q's ring. Errors:
  // IoError (mmap).
  // `refused`: the test hook's REGISTER without buffers.
  Status AddEntry(Queue* q, bool refused = false);
  // A request arrived in e: counts it, grows the queue if due, and starts
  // it (a direct read, or a worker).
  void Dispatch(Queue* q, Entry* e);
  // If e's request is a READ or WRITE the planner places, queues its direct
  // I/O (and a READ's linked commit); returns whether it did. The in-header
  // is kept in e for Retry.
  bool PrepDirect(Queue* q, Entry* e);
  // A direct WRITE of e completed: its reply, and the commit.
  void FinishWrite(Queue* q, Entry* e);
  // A direct READ or WRITE of e failed or came back short: puts the request
  // back as it arrived and hands it to a worker, which answers it from
  // scratch.
  void Retry(Entry* e);
  // e's command is in the kernel again, waiting for a request (its direct
  // I/O or its worker is done).
  static void Rearmed(Queue* q, Entry* e);
  // Queues e's COMMIT_AND_FETCH (or REGISTER) on q's ring.
  void PrepCommit(Queue* q, Entry* e, uint64_t tag);
  void PrepRegister(Queue* q, Entry* e, bool refused = false);
  // Hands e to a worker (adding one if none is idle). Queue thread only.
  void ToWorker(Entry* e);
  // Starts a worker. REQUIRES: work_mu_ held. Errors: IoError.
  Status AddWorker();
  // Worker: runs the request in e and leaves its reply (or EIO) there.
  void Handle(Entry* e);
  void WorkerLoop();
  // Makes the kernel give up on io_uring for this connection (see
  // NEGOTIATION) with a REGISTER that must fail. Returns whether it did.
  bool RefuseRing();

  Options options_;
  std::vector<std::unique_ptr<Queue>> queues_;
  int dev_fd_ = -1;
  size_t max_payload_ = 0;
  Handler handler_;
  IoPlanner planner_;
  int stop_fd_ = -1;  // eventfd: written by Stop, polled by every ring
  // A ring made by Create, for RefuseRing (used only by Start).
  std::unique_ptr<struct io_uring> spare_;

  mutable std::mutex mu_;                  // leaf lock; never held across a request
  std::condition_variable registered_cv_;  // a queue's registration is known
  bool stopping_ = false;                  // GUARDED_BY(mu_)
  std::string failure_;                    // GUARDED_BY(mu_)
  uint32_t threads_serving_ = 0;           // registered threads; GUARDED_BY(mu_)

  // Work for the workers: entries whose request they run.
  mutable std::mutex work_mu_;       // leaf lock
  std::condition_variable work_cv_;  // work arrived, or workers_stop_
  std::deque<Entry*> work_;          // GUARDED_BY(work_mu_); oldest first
  std::vector<pthread_t> workers_;   // GUARDED_BY(work_mu_); grow-only
  uint32_t idle_workers_ = 0;        // GUARDED_BY(work_mu_)
  bool workers_stop_ = false;        // GUARDED_BY(work_mu_)
  bool worker_warned_ = false;       // GUARDED_BY(work_mu_): one could not start

  std::atomic<bool> serving_{false};
  std::atomic<uint64_t> requests_{0};
  std::atomic<uint64_t> direct_{0};
  std::atomic<uint64_t> retries_[2] = {0, 0};  // of READs, of WRITEs
  std::atomic<uint64_t> fail_count_{0};  // direct I/O placed, for fail_direct_every
  uint32_t thread_max_entries_ = 0;      // UringEntriesPerThread; set by Create
  std::atomic<uint32_t> entries_{0};  // registered, in all queues (for Describe)
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
