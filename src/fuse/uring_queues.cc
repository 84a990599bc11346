#include "fuse/uring_queues.h"

#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/log.h"

namespace clonefs::fuse {
namespace {

constexpr size_t kPage = 4096;
// user_data tags (the low kTagBits bits; an entry's index above them).
constexpr uint64_t kCmdTag = 1;     // an entry's REGISTER or COMMIT_AND_FETCH
constexpr uint64_t kStopTag = 2;    // the poll on stop_fd_
constexpr uint64_t kReadTag = 3;    // an entry's direct read
constexpr uint64_t kLinkedTag = 4;  // the COMMIT_AND_FETCH linked to it
constexpr uint64_t kWakeTag = 5;    // the poll on the queue's wake_fd
constexpr uint64_t kWriteTag = 6;   // an entry's direct write
// A queue's ring: room for every entry's read and command, and the polls.
unsigned RingSize(uint32_t max_entries) {
  unsigned n = 8;
  while (n < 2 * max_entries + 8 && n < 32768) n *= 2;
  return n;
}
// Room before the payload for the rebuilt request's headers: the header
// buffer sits at the start of the same page.
constexpr size_t kRoom = kPage - sizeof(kabi::UringReqHeader);
static_assert(kRoom >= sizeof(kabi::InHeader) + kabi::kUringOpInSize);

Result<struct io_uring> NewRing(unsigned entries) {
  struct io_uring ring;
  struct io_uring_params p;
  std::memset(&p, 0, sizeof(p));
  p.flags = IORING_SETUP_SQE128;  // the command area holds UringCmdReq
  const int rc = io_uring_queue_init_params(entries, &ring, &p);
  if (rc < 0) return Status::IoError("cannot create an io_uring", -rc);
  return ring;
}

// An IORING_OP_URING_CMD for /dev/fuse. `iov`: the entry's two buffers, or
// nullptr for a REGISTER that must fail (no buffers).
void PrepCmd(struct io_uring_sqe* sqe, int dev_fd, uint32_t op, uint16_t qid, uint64_t commit_id,
             struct iovec* iov, uint64_t user_data) {
  io_uring_prep_rw(IORING_OP_URING_CMD, sqe, dev_fd, iov, iov ? 2 : 0, 0);
  sqe->cmd_op = op;
  sqe->user_data = user_data;
  kabi::UringCmdReq req;
  std::memset(&req, 0, sizeof(req));
  req.commit_id = commit_id;
  req.qid = qid;
  std::memset(sqe->cmd, 0, 80);
  std::memcpy(sqe->cmd, &req, sizeof(req));
}

}  // namespace

uint32_t UringThreadsPerQueue(uint32_t queues) {
  return std::clamp<uint32_t>(kUringMinThreads / std::max<uint32_t>(queues, 1), 1, 4);
}

uint32_t UringEntriesPerThread(uint32_t max_entries, uint32_t threads) {
  threads = std::max<uint32_t>(threads, 1);
  return std::max<uint32_t>((max_entries + threads - 1) / threads, 1);
}

bool UringQueueShouldGrow(uint32_t entries, uint32_t busy, uint32_t max_entries) {
  return entries < max_entries && entries <= busy + kUringSpareEntries;
}

Result<char*> AssembleUringRequest(const kabi::UringReqHeader& h, char* payload, size_t room,
                                   size_t payload_cap) {
  const uint32_t len = kabi::Load<uint32_t>(h.in_out, offsetof(kabi::InHeader, len));
  const uint32_t payload_sz = h.ring_ent_in_out.payload_sz;
  constexpr size_t kIn = sizeof(kabi::InHeader);
  if (payload_sz > payload_cap || len < kIn + static_cast<size_t>(payload_sz)) {
    return Status::Corruption("io_uring request lengths do not add up (len " + std::to_string(len) +
                              ", payload " + std::to_string(payload_sz) + ")");
  }
  const size_t op_len = len - kIn - payload_sz;
  if (op_len > kabi::kUringOpInSize || kIn + op_len > room) {
    return Status::Corruption("io_uring request has a " + std::to_string(op_len) +
                              "-byte op header");
  }
  char* start = payload - kIn - op_len;
  std::memcpy(start, h.in_out, kIn);
  std::memcpy(start + kIn, h.op_in, op_len);
  return start;
}

Result<size_t> StoreUringReply(const struct iovec* iov, int count, kabi::UringReqHeader* h,
                               char* payload, size_t payload_cap) {
  constexpr size_t kOut = sizeof(kabi::OutHeader);
  if (count < 1 || iov[0].iov_len < kOut) {
    return Status::InvalidArgument("a FUSE reply starts with its out header");
  }
  size_t total = 0;
  for (int i = 0; i < count; ++i) total += iov[i].iov_len;
  if (total - kOut > payload_cap) {
    return Status::InvalidArgument("a " + std::to_string(total - kOut) +
                                   "-byte reply does not fit the io_uring payload buffer");
  }
  std::memcpy(h->in_out, iov[0].iov_base, kOut);
  size_t at = 0;
  for (int i = 0; i < count; ++i) {
    const char* p = static_cast<const char*>(iov[i].iov_base);
    size_t n = iov[i].iov_len;
    if (i == 0) p += kOut, n -= kOut;
    // A READ's data may already be in place (UringQueues::ReplyBuffer).
    if (n > 0 && p != payload + at) std::memmove(payload + at, p, n);
    at += n;
  }
  h->ring_ent_in_out.payload_sz = static_cast<uint32_t>(at);
  return total;
}

// One registered entry. Its buffers and identity are fixed once made; the
// rest is the queue thread's, except while a worker has it (between
// ToWorker and the done list, which hand it over under locks).
struct UringQueues::Entry {
  Queue* queue = nullptr;
  uint32_t index = 0;  // in queue->entries; user_data carries it
  char* map = nullptr;
  size_t map_len = 0;
  kabi::UringReqHeader* header = nullptr;  // at map
  char* payload = nullptr;                 // map + kPage, page aligned
  struct iovec iov[2] = {};
  // The unique a worker is handling (0: none): written by the worker, read
  // by TryReply on it and by Serving on any thread.
  std::atomic<uint64_t> serving{0};
  bool replied = false;  // the worker's
  enum class State { kWaiting, kWorker, kDirect, kDead } state = State::kWaiting;
  bool registering = false;      // its command is a REGISTER
  bool read_done = false;        // its direct read's completion is to be passed over
  kabi::InHeader saved_in = {};  // the request's in-header, for Retry
  uint32_t saved_payload_sz = 0;  // and its payload's size
  uint32_t direct_len = 0;
  ~Entry() {
    if (map != nullptr) ::munmap(map, map_len);
  }
};

struct UringQueues::Queue {
  UringQueues* owner = nullptr;
  uint32_t qid = 0;
  pthread_t tid{};
  bool started = false;  // tid is joinable; GUARDED_BY(owner->mu_)
  struct io_uring ring = {};
  // Grow-only; elements are stable. Appended by the queue thread only, read
  // by Serving under owner->mu_.
  std::vector<std::unique_ptr<Entry>> entries;  // GUARDED_BY(owner->mu_) for writes
  uint32_t waiting = 0;                         // entries waiting for a request; the queue thread's
  uint32_t handed = 0;       // entries at a worker or in a direct read; the queue thread's
  uint32_t dead = 0;         // entries let go (unmounted, or never registered); the queue thread's
  bool stopping = false;     // Stop asked; the queue thread's
  bool grow_failed = false;  // the queue thread's
  // Entries whose worker finished: the worker pushes, the thread commits.
  int wake_fd = -1;  // eventfd; written after a push, polled by the ring
  std::mutex done_mu;
  std::vector<Entry*> done;  // GUARDED_BY(done_mu)
  // Registration outcome, for Start: GUARDED_BY(owner->mu_).
  bool registered_known = false;
  Status registered;
  ~Queue() {
    if (wake_fd >= 0) ::close(wake_fd);
  }
};

namespace {
thread_local UringQueues::Entry* tl_entry = nullptr;  // a worker's current entry

// user_data: the entry's index and what the operation is.
constexpr uint64_t kTagBits = 3;
constexpr uint64_t kTagMask = (1u << kTagBits) - 1;
uint64_t UserData(uint64_t tag, uint32_t index) { return (uint64_t{index} << kTagBits) | tag; }
}  // namespace

UringQueues::UringQueues(const Options& options) : options_(options) {}

Result<std::unique_ptr<UringQueues>> UringQueues::Create(const Options& options) {
  Options o = options;
  if (o.queues == 0) {
    auto n = PossibleCpus();
    if (!n.ok()) return n.status();
    o.queues = *n;
  }
  if (o.queues > 65536 || o.threads_per_queue > 64 || o.max_entries_per_queue == 0 ||
      o.max_workers == 0) {
    return Status::InvalidArgument("bad io_uring queue options");
  }
  auto spare = NewRing(4);
  if (!spare.ok()) return spare.status();
  std::unique_ptr<UringQueues> u(new UringQueues(o));
  u->spare_ = std::make_unique<struct io_uring>(*spare);
  u->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (u->stop_fd_ < 0) return Status::IoError("cannot create an eventfd", errno);
  if (o.threads_per_queue == 0) o.threads_per_queue = UringThreadsPerQueue(o.queues);
  u->options_.threads_per_queue = o.threads_per_queue;
  u->thread_max_entries_ = UringEntriesPerThread(o.max_entries_per_queue, o.threads_per_queue);
  for (uint32_t i = 0; i < o.queues * o.threads_per_queue; ++i) {
    auto q = std::make_unique<Queue>();
    q->owner = u.get();
    q->qid = i / o.threads_per_queue;
    q->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (q->wake_fd < 0) return Status::IoError("cannot create an eventfd", errno);
    u->queues_.push_back(std::move(q));
  }
  return u;
}

UringQueues::~UringQueues() {
  Stop();
  if (stop_fd_ >= 0) ::close(stop_fd_);
  if (spare_ != nullptr) io_uring_queue_exit(spare_.get());
}

void* UringQueues::QueueMain(void* arg) {
  auto* q = static_cast<Queue*>(arg);
  q->owner->Serve(q);
  return nullptr;
}

void UringQueues::Report(Queue* q, Status s) {
  std::lock_guard<std::mutex> l(mu_);
  q->registered = std::move(s);
  q->registered_known = true;
  registered_cv_.notify_all();
  if (!q->registered.ok()) {
    CLONEFS_LOG_WARN("fuse: io_uring queue %u could not register: %s", q->qid,
                     q->registered.ToString().c_str());
  }
}

// An SQE of `ring`. The ring has room for two operations per entry and the
// polls (RingSize), so it is full only in the middle of a long pass: what is
// there is handed to the kernel then.
static struct io_uring_sqe* GetSqe(struct io_uring* ring) {
  struct io_uring_sqe* sqe = io_uring_get_sqe(ring);
  while (sqe == nullptr) {
    if (io_uring_submit(ring) <= 0) usleep(100);  // busy (EAGAIN, EINTR): again shortly
    sqe = io_uring_get_sqe(ring);
  }
  return sqe;
}

Status UringQueues::AddEntry(Queue* q, bool refused) {
  auto e = std::make_unique<Entry>();
  e->queue = q;
  e->map_len = kPage + max_payload_ + kPage;
  void* m = ::mmap(nullptr, e->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return Status::IoError("cannot map an io_uring entry's buffers", errno);
  e->map = static_cast<char*>(m);
  ::mprotect(e->map + e->map_len - kPage, kPage, PROT_NONE);  // a guard; best effort
  e->header = reinterpret_cast<kabi::UringReqHeader*>(e->map);
  e->payload = e->map + kPage;
  e->iov[0] = {e->header, sizeof(kabi::UringReqHeader)};
  e->iov[1] = {e->payload, max_payload_};
  Entry* raw = e.get();
  {
    std::lock_guard<std::mutex> l(mu_);
    raw->index = static_cast<uint32_t>(q->entries.size());
    q->entries.push_back(std::move(e));
  }
  entries_.fetch_add(1, std::memory_order_relaxed);
  PrepRegister(q, raw, refused);
  return Status::OK();
}

void UringQueues::PrepRegister(Queue* q, Entry* e, bool refused) {
  PrepCmd(GetSqe(&q->ring), dev_fd_, kabi::kUringCmdRegister, q->qid, 0, refused ? nullptr : e->iov,
          UserData(kCmdTag, e->index));
  e->state = Entry::State::kWaiting;
  e->registering = true;
  ++q->waiting;
}

void UringQueues::PrepCommit(Queue* q, Entry* e, uint64_t tag) {
  PrepCmd(GetSqe(&q->ring), dev_fd_, kabi::kUringCmdCommitAndFetch, q->qid,
          e->header->ring_ent_in_out.commit_id, e->iov, UserData(tag, e->index));
}

void UringQueues::Serve(Queue* q) {
  if (options_.fail_queue == static_cast<int>(q->qid) ||
      (options_.fail_thread >= 0 && static_cast<size_t>(options_.fail_thread) < queues_.size() &&
       queues_[options_.fail_thread].get() == q)) {
    // The test hooks: this thread fails before its REGISTER reaches the
    // kernel, which then knows nothing of the failure.
    return Report(q, Status::IoError("cannot create an io_uring (test hook)", ENOMEM));
  }
  auto made = NewRing(RingSize(thread_max_entries_));
  if (!made.ok()) return Report(q, made.status());
  q->ring = *made;
  struct io_uring* ring = &q->ring;
  struct io_uring_sqe* sqe = GetSqe(ring);
  io_uring_prep_poll_add(sqe, stop_fd_, POLLIN);
  sqe->user_data = kStopTag;
  sqe = GetSqe(ring);
  io_uring_prep_poll_multishot(sqe, q->wake_fd, POLLIN);
  sqe->user_data = kWakeTag;
  Status failed;  // the first failure, if every REGISTER fails
  uint32_t sent = 0;
  for (uint32_t i = 0; i < std::min(kUringFirstEntries, thread_max_entries_); ++i) {
    const bool refused = options_.fail_register_after != 0 && i >= options_.fail_register_after;
    failed = AddEntry(q, refused);
    if (!failed.ok()) break;
    ++sent;
  }
  if (sent > 0) {
    const int rc = io_uring_submit(ring);
    if (rc < 0) {
      failed = Status::IoError("io_uring_submit", -rc);
      sent = 0;
    }
  }
  // A REGISTER that fails does so while it is submitted: its completion is
  // already there. One that succeeds completes only with a request.
  // (Requests may already be there too: they, and the failures, are left
  // for Loop, which lets the failed entries go.)
  uint32_t refused = 0;
  unsigned head;
  struct io_uring_cqe* cqe = nullptr;
  io_uring_for_each_cqe(ring, head, cqe) {
    if ((cqe->user_data & kTagMask) == kCmdTag && cqe->res < 0) {
      if (refused++ == 0 && failed.ok()) {
        failed = Status::IoError("FUSE_IO_URING_CMD_REGISTER", -cqe->res);
      }
    }
  }
  if (sent > refused) {
    // Some registered: once every queue has an entry the kernel sends this
    // CPU's requests here, so the thread serves with what it has.
    if (!failed.ok()) {
      CLONEFS_LOG_WARN("fuse: io_uring queue %u: a thread serves with %u entries (%s)", q->qid,
                       sent - refused, failed.ToString().c_str());
      q->grow_failed = true;
    }
    Report(q, Status::OK());
    Loop(q);
  } else {
    entries_.fetch_sub(static_cast<uint32_t>(q->entries.size()), std::memory_order_relaxed);
    Report(q, failed.ok() ? Status::IoError("no io_uring entry registered", EIO) : failed);
  }
  io_uring_queue_exit(ring);  // cancels the entries' commands, if any
}

void UringQueues::Loop(Queue* q) {
  struct io_uring* ring = &q->ring;
  int failures = 0;  // consecutive unexpected errors, for the back-off
  auto back_off = [&](const char* what, int err) {
    if (failures++ == 0) {
      CLONEFS_LOG_WARN("fuse: io_uring %s on queue %u failed (%s); retrying", what, q->qid,
                       strerror(err));
    }
    // The whole queue waits meanwhile: at most 100 ms.
    usleep(std::min(1000 * (1 << std::min(failures, 10)), 100'000));
  };
  bool stop = false;  // Stop asked (its poll completes once)
  std::vector<Entry*> done;
  // The queue's thread leaves once Stop asked, or the connection is gone,
  // and nothing it handed out is still to be committed: once the kernel
  // uses the queues, a queue without its thread would hold its CPU's
  // requests forever.
  while (true) {
    if ((stop || q->dead == q->entries.size()) && q->handed == 0) break;
    const int rc = io_uring_submit_and_wait(ring, 1);
    if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
      back_off("wait", -rc);
    }
    unsigned head;
    unsigned seen = 0;
    struct io_uring_cqe* cqe = nullptr;
    bool woken = false;
    io_uring_for_each_cqe(ring, head, cqe) {
      ++seen;
      const uint64_t tag = cqe->user_data & ((1u << kTagBits) - 1);
      if (tag == kStopTag) {
        stop = true;
        q->stopping = true;  // no more entries
        continue;
      }
      if (tag == kWakeTag) {
        woken = true;
        if (!(cqe->flags & IORING_CQE_F_MORE)) {  // the multishot poll ended: again
          struct io_uring_sqe* sqe = GetSqe(ring);
          io_uring_prep_poll_multishot(sqe, q->wake_fd, POLLIN);
          sqe->user_data = kWakeTag;
        }
        continue;
      }
      Entry* e = q->entries[cqe->user_data >> kTagBits].get();
      const int res = cqe->res;
      if (tag == kReadTag) {
        if (e->read_done) {  // its linked command's completion came first
          e->read_done = false;
        } else if (res == static_cast<int>(e->direct_len)) {
          Rearmed(q, e);  // its linked commit runs now
        } else {
          // Failed or short: the linked commit never ran (it comes back
          // cancelled, before or after this).
          Retry(e);
        }
        continue;
      }
      if (tag == kWriteTag) {
        if (res == static_cast<int>(e->direct_len)) {
          FinishWrite(q, e);
          Rearmed(q, e);
        } else {
          Retry(e);
        }
        continue;
      }
      if (tag == kLinkedTag && res == -ECANCELED) {
        // The linked command of a read that failed (io_uring cancels only
        // those, and everything at the ring's exit): passed over; the read's
        // own completion, before or after it, hands the request on.
        continue;
      }
      if (tag == kLinkedTag && e->state == Entry::State::kDirect) {
        // The linked command ran, so the read succeeded; its completion is
        // still to come (and is then passed over).
        e->read_done = true;
        Rearmed(q, e);
      }
      // An entry's command completed: a request, or an error.
      if (e->state != Entry::State::kWaiting) continue;  // not ours to take
      --q->waiting;
      if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED) {
        e->state = Entry::State::kDead;  // unmounted
        ++q->dead;
        continue;
      }
      if (res < 0 && e->registering) {
        // A REGISTER of an entry added later: the queue keeps the others.
        CLONEFS_LOG_WARN("fuse: cannot register another io_uring entry on queue %u (%s)", q->qid,
                         strerror(-res));
        q->grow_failed = true;
        e->state = Entry::State::kDead;
        ++q->dead;
        entries_.fetch_sub(1, std::memory_order_relaxed);
        continue;
      }
      if (res < 0) {
        // ENOENT: the kernel no longer knew the request this entry committed
        // (it ended meanwhile) and left the entry out of use. Anything else
        // is unexpected. Either way the entry is registered again.
        if (res != -ENOENT) back_off("command", -res);
        PrepRegister(q, e);
        continue;
      }
      failures = 0;
      e->registering = false;
      Dispatch(q, e);
    }
    io_uring_cq_advance(ring, seen);
    if (woken) {
      uint64_t n;
      (void)!::read(q->wake_fd, &n, sizeof(n));  // before taking the list: no wake lost
      {
        std::lock_guard<std::mutex> l(q->done_mu);
        done.swap(q->done);
      }
      for (Entry* e : done) {
        PrepCommit(q, e, kCmdTag);
        Rearmed(q, e);
      }
      done.clear();
    }
  }
  io_uring_submit(ring);  // the last replies; their fetches end with the ring
}

void UringQueues::Dispatch(Queue* q, Entry* e) {
  requests_.fetch_add(1, std::memory_order_relaxed);
  ++q->handed;
  const uint32_t entries = static_cast<uint32_t>(q->entries.size());
  if (!q->grow_failed && !q->stopping &&
      UringQueueShouldGrow(entries - q->dead, entries - q->dead - q->waiting,
                           thread_max_entries_)) {
    Status s = AddEntry(q);
    if (!s.ok()) {
      q->grow_failed = true;
      CLONEFS_LOG_WARN("fuse: cannot add an io_uring entry to queue %u (%s); it keeps %u", q->qid,
                       s.ToString().c_str(), entries);
    }
  }
  if (PrepDirect(q, e)) {
    direct_.fetch_add(1, std::memory_order_relaxed);
    e->state = Entry::State::kDirect;
    return;
  }
  ToWorker(e);
}

bool UringQueues::PrepDirect(Queue* q, Entry* e) {
  kabi::UringReqHeader* h = e->header;
  const uint32_t opcode = kabi::Load<uint32_t>(h->in_out, offsetof(kabi::InHeader, opcode));
  if (!planner_ || (opcode != kabi::kOpRead && opcode != kabi::kOpWrite)) return false;
  IoRequest r;
  r.write = opcode == kabi::kOpWrite;
  r.nodeid = kabi::Load<uint64_t>(h->in_out, offsetof(kabi::InHeader, nodeid));
  if (r.write) {
    r.off = kabi::Load<uint64_t>(h->op_in, offsetof(kabi::WriteIn, offset));
    r.size = kabi::Load<uint32_t>(h->op_in, offsetof(kabi::WriteIn, size));
    r.flags = kabi::Load<uint32_t>(h->op_in, offsetof(kabi::WriteIn, flags));
    // The data is all in the payload buffer, or this is no plain WRITE.
    if (h->ring_ent_in_out.payload_sz != r.size) return false;
  } else {
    r.off = kabi::Load<uint64_t>(h->op_in, offsetof(kabi::ReadIn, offset));
    r.size = kabi::Load<uint32_t>(h->op_in, offsetof(kabi::ReadIn, size));
  }
  DirectIo d;
  if (!planner_(r, &d) || d.fd < 0 || d.len == 0 || d.len > r.size || d.len > max_payload_) {
    return false;
  }
  if (options_.fail_direct_every != 0 &&
      (fail_count_.fetch_add(1, std::memory_order_relaxed) + 1) % options_.fail_direct_every == 0) {
    d.fd = -1;  // the test hook
  }
  std::memcpy(&e->saved_in, h->in_out, sizeof(e->saved_in));
  e->saved_payload_sz = h->ring_ent_in_out.payload_sz;
  e->direct_len = d.len;
  if (r.write) {
    struct io_uring_sqe* sqe = GetSqe(&q->ring);
    io_uring_prep_write(sqe, d.fd, e->payload, d.len, d.off);
    sqe->user_data = UserData(kWriteTag, e->index);
    return true;
  }
  const uint64_t unique = h->ring_ent_in_out.commit_id;
  const kabi::OutHeader out = {static_cast<uint32_t>(sizeof(kabi::OutHeader) + d.len), 0, unique};
  std::memcpy(h->in_out, &out, sizeof(out));
  h->ring_ent_in_out.payload_sz = d.len;
  // Both in one go: the read must not be submitted without its link.
  while (io_uring_sq_space_left(&q->ring) < 2) {
    if (io_uring_submit(&q->ring) <= 0) usleep(100);
  }
  struct io_uring_sqe* sqe = GetSqe(&q->ring);
  io_uring_prep_read(sqe, d.fd, e->payload, d.len, d.off);
  sqe->flags |= IOSQE_IO_LINK;
  sqe->user_data = UserData(kReadTag, e->index);
  PrepCommit(q, e, kLinkedTag);
  return true;
}

void UringQueues::FinishWrite(Queue* q, Entry* e) {
  kabi::UringReqHeader* h = e->header;
  const kabi::WriteOut w = {e->direct_len, 0};
  const kabi::OutHeader out = {static_cast<uint32_t>(sizeof(kabi::OutHeader) + sizeof(w)), 0,
                               h->ring_ent_in_out.commit_id};
  std::memcpy(h->in_out, &out, sizeof(out));
  std::memcpy(e->payload, &w, sizeof(w));
  h->ring_ent_in_out.payload_sz = sizeof(w);
  PrepCommit(q, e, kCmdTag);
}

void UringQueues::Retry(Entry* e) {
  // A WRITE's header was left as it came; a READ's holds its reply.
  std::memcpy(e->header->in_out, &e->saved_in, sizeof(e->saved_in));
  e->header->ring_ent_in_out.payload_sz = e->saved_payload_sz;
  const bool write = e->saved_in.opcode == kabi::kOpWrite;
  retries_[write ? 1 : 0].fetch_add(1, std::memory_order_relaxed);
  ToWorker(e);
}

void UringQueues::Rearmed(Queue* q, Entry* e) {
  e->state = Entry::State::kWaiting;
  --q->handed;
  ++q->waiting;
}

void UringQueues::ToWorker(Entry* e) {
  e->state = Entry::State::kWorker;
  // From here the request is running as far as interrupts go (Serving).
  e->serving.store(e->header->ring_ent_in_out.commit_id);
  bool add = false;
  {
    std::lock_guard<std::mutex> l(work_mu_);
    work_.push_back(e);
    // Every request queued here has an idle worker to take it, or a new one.
    // Start made the first, so a failure leaves the queued ones to those
    // running.
    if (work_.size() > idle_workers_ && workers_.size() < options_.max_workers) {
      add = AddWorker().ok();
    }
  }
  if (!add) work_cv_.notify_one();
}

Status UringQueues::AddWorker() {
  pthread_t tid;
  const int rc = pthread_create(&tid, nullptr, &UringQueues::WorkerMain, this);
  if (rc != 0) {
    if (!worker_warned_) {
      worker_warned_ = true;
      CLONEFS_LOG_WARN("fuse: cannot start an io_uring worker (%s); the %zu running serve",
                       strerror(rc), workers_.size());
    }
    return Status::IoError("cannot start an io_uring worker", rc);
  }
  workers_.push_back(tid);
  return Status::OK();
}

void* UringQueues::WorkerMain(void* arg) {
  static_cast<UringQueues*>(arg)->WorkerLoop();
  return nullptr;
}

void UringQueues::WorkerLoop() {
  std::unique_lock<std::mutex> l(work_mu_);
  while (true) {
    if (work_.empty()) {
      if (workers_stop_) return;
      ++idle_workers_;
      work_cv_.wait(l, [&] { return !work_.empty() || workers_stop_; });
      --idle_workers_;
      continue;
    }
    Entry* e = work_.front();
    work_.pop_front();
    l.unlock();
    tl_entry = e;
    Handle(e);
    tl_entry = nullptr;
    Queue* q = e->queue;
    {
      std::lock_guard<std::mutex> d(q->done_mu);
      q->done.push_back(e);
    }
    const uint64_t one = 1;
    (void)!::write(q->wake_fd, &one, sizeof(one));
    l.lock();
  }
}

void UringQueues::Handle(Entry* e) {
  const uint64_t unique = e->header->ring_ent_in_out.commit_id;
  e->serving.store(unique);
  e->replied = false;
  auto req = AssembleUringRequest(*e->header, e->payload, kRoom, max_payload_);
  if (req.ok()) {
    handler_(*req, kabi::Load<uint32_t>(e->header->in_out, offsetof(kabi::InHeader, len)));
  } else {
    CLONEFS_LOG_ERROR("fuse: %s; answering EIO", req.status().ToString().c_str());
  }
  if (!e->replied) {
    // Every operation replies before returning; a request without a reply
    // would hold this entry forever, so it gets EIO.
    kabi::OutHeader out = {sizeof(kabi::OutHeader), -EIO, unique};
    std::memcpy(e->header->in_out, &out, sizeof(out));
    e->header->ring_ent_in_out.payload_sz = 0;
  }
  e->serving.store(0);
}

char* UringQueues::ReplyBuffer(size_t len) {
  Entry* e = tl_entry;
  if (e == nullptr || e->serving.load(std::memory_order_relaxed) == 0 ||
      len > e->queue->owner->max_payload_) {
    return nullptr;
  }
  return e->payload;
}

bool UringQueues::Serving(uint64_t unique) const {
  if (unique == 0) return false;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& q : queues_) {
    for (const auto& e : q->entries) {
      if (e->serving.load() == unique) return true;
    }
  }
  return false;
}

void UringQueues::Interrupted(uint64_t unique) {
  if (unique == 0) return;
  bool added = false;
  {
    std::lock_guard<std::mutex> l(work_mu_);
    auto it = std::find_if(work_.begin(), work_.end(),
                           [&](Entry* e) { return e->serving.load() == unique; });
    if (it == work_.end()) return;  // running, answered, or not handed out yet
    Entry* e = *it;
    work_.erase(it);
    work_.push_front(e);  // an idle worker takes it first
    if (idle_workers_ == 0 && !workers_stop_) added = AddWorker().ok();
  }
  if (!added) work_cv_.notify_one();
}

bool UringQueues::TryReply(const struct iovec* iov, int count, ssize_t* written) {
  Entry* e = tl_entry;
  if (e == nullptr || e->replied || count < 1 || iov[0].iov_len < sizeof(kabi::OutHeader)) {
    return false;
  }
  const uint64_t unique = kabi::Load<uint64_t>(iov[0].iov_base, offsetof(kabi::OutHeader, unique));
  if (unique == 0 || unique != e->serving.load(std::memory_order_relaxed)) return false;
  auto n = StoreUringReply(iov, count, e->header, e->payload, max_payload_);
  e->replied = n.ok();  // else Handle's EIO answers
  if (!n.ok()) {
    CLONEFS_LOG_ERROR("fuse: %s", n.status().ToString().c_str());
    errno = EINVAL;
    *written = -1;
    return true;
  }
  *written = static_cast<ssize_t>(*n);
  return true;
}

bool UringQueues::RefuseRing() {
  // With the ring made in Create: the failure being handled may well be
  // that no further ring can be made.
  PrepCmd(io_uring_get_sqe(spare_.get()), dev_fd_, kabi::kUringCmdRegister, 0, 0, nullptr, kCmdTag);
  struct io_uring_cqe* cqe = nullptr;
  bool refused = false;
  if (io_uring_submit_and_wait(spare_.get(), 1) >= 0 &&
      io_uring_peek_cqe(spare_.get(), &cqe) == 0) {
    // EINVAL: refused inside FUSE, which turns io_uring off. Another error
    // (EOPNOTSUPP) means it already is.
    refused = cqe->res < 0;
    io_uring_cqe_seen(spare_.get(), cqe);
  }
  return refused;
}

Status UringQueues::Start(int dev_fd, size_t max_payload, Handler handler, IoPlanner planner) {
  dev_fd_ = dev_fd;
  planner_ = std::move(planner);
  max_payload_ = (std::max<size_t>(max_payload, 8192) + kPage - 1) / kPage * kPage;
  handler_ = std::move(handler);
  Status failed;
  {
    std::lock_guard<std::mutex> l(work_mu_);
    failed = AddWorker();  // one from the start: a queued request always has one
  }
  std::vector<Queue*> started;
  for (auto& q : queues_) {
    if (!failed.ok()) break;
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      failed = Status::Busy("stopping");
      break;
    }
    const int rc = pthread_create(&q->tid, nullptr, &UringQueues::QueueMain, q.get());
    if (rc != 0) {
      failed = Status::IoError("cannot start an io_uring thread", rc)
                   .WithContext("queue " + std::to_string(q->qid));
      break;
    }
    q->started = true;
    started.push_back(q.get());
  }
  {
    std::unique_lock<std::mutex> l(mu_);
    registered_cv_.wait(l, [&] {
      return std::all_of(started.begin(), started.end(),
                         [](Queue* q) { return q->registered_known; });
    });
    // A queue is registered when one of its threads is: the kernel then
    // uses every queue once all are, and a missing thread only serves no
    // one (see NEGOTIATION).
    std::vector<bool> covered(options_.queues, false);
    Status lost;  // the first thread that could not register
    for (Queue* q : started) {
      if (q->registered.ok()) {
        covered[q->qid] = true;
        ++threads_serving_;
      } else if (lost.ok()) {
        lost = q->registered.WithContext("queue " + std::to_string(q->qid));
      }
    }
    const bool everywhere = std::all_of(covered.begin(), covered.end(), [](bool c) { return c; });
    if (everywhere) {
      if (!failed.ok() || !lost.ok()) {
        CLONEFS_LOG_WARN(
            "fuse: %u of %zu io_uring threads could not start or register (%s); "
            "every queue has the others",
            static_cast<uint32_t>(queues_.size()) - threads_serving_, queues_.size(),
            (!lost.ok() ? lost : failed).ToString().c_str());
      }
      failed = Status::OK();
    } else {
      // Why a queue has none: its threads' failure, else the one that kept
      // them from starting.
      for (Queue* q : started) {
        if (!covered[q->qid]) {
          failed = q->registered.WithContext("queue " + std::to_string(q->qid));
          break;
        }
      }
    }
  }
  if (failed.ok()) {
    serving_.store(true);
    CLONEFS_LOG_INFO("fuse: serving through io_uring (%u queues)", options_.queues);
    return Status::OK();
  }
  const bool refused = RefuseRing();
  {
    std::lock_guard<std::mutex> l(mu_);
    failure_ = failed.ToString();
  }
  if (refused) {
    CLONEFS_LOG_WARN(
        "fuse: io_uring registration failed (%s); the kernel keeps serving through "
        "/dev/fuse",
        failed.ToString().c_str());
  } else {
    CLONEFS_LOG_ERROR(
        "fuse: io_uring registration failed (%s), and the kernel could not be told "
        "to stop waiting for it: requests may hang until the file system is "
        "unmounted",
        failed.ToString().c_str());
  }
  return failed;
}

void UringQueues::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;  // no queue thread starts from here on
  }
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
  }
  // The queue threads first: they wait for what the workers still run.
  for (auto& q : queues_) {
    if (q->started) pthread_join(q->tid, nullptr);
  }
  std::vector<pthread_t> workers;
  {
    std::lock_guard<std::mutex> l(work_mu_);
    workers_stop_ = true;
    workers = workers_;
  }
  work_cv_.notify_all();
  for (pthread_t w : workers) pthread_join(w, nullptr);
  serving_.store(false);
}

std::string UringQueues::Describe() const {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!failure_.empty()) return "/dev/fuse (io_uring registration failed: " + failure_ + ")";
  }
  if (!serving_.load()) return "/dev/fuse (io_uring not started)";
  size_t workers;
  {
    std::lock_guard<std::mutex> w(work_mu_);
    workers = workers_.size();
  }
  uint32_t serving;
  {
    std::lock_guard<std::mutex> l(mu_);
    serving = threads_serving_;
  }
  const std::string threads =
      serving == queues_.size() ? std::to_string(serving)
                                : std::to_string(serving) + " of " + std::to_string(queues_.size());
  return "io_uring (" + std::to_string(options_.queues) + " queues, " + threads + " threads, " +
         std::to_string(entries_.load()) + " entries, " + std::to_string(workers) + " workers)";
}

Result<uint32_t> CpuCountFromList(const std::string& list) {
  uint32_t count = 0;
  bool any = false;
  std::stringstream ss(list);
  std::string part;
  while (std::getline(ss, part, ',')) {
    while (!part.empty() && (part.back() == '\n' || part.back() == ' ')) part.pop_back();
    const size_t dash = part.find('-');
    const std::string first = part.substr(0, dash);
    const std::string last = dash == std::string::npos ? part : part.substr(dash + 1);
    auto digits = [](const std::string& d) {
      return !d.empty() && d.size() <= 6 && d.find_first_not_of("0123456789") == std::string::npos;
    };
    if (!digits(first) || !digits(last) || std::stoul(last) < std::stoul(first)) {
      return Status::Corruption("'" + list + "' is not a CPU list");
    }
    count += static_cast<uint32_t>(std::stoul(last) - std::stoul(first) + 1);
    any = true;
  }
  if (!any) return Status::Corruption("'" + list + "' is not a CPU list");
  return count;
}

Result<uint32_t> PossibleCpus() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string line;
  if (!in || !std::getline(in, line)) {
    return Status::IoError("cannot read /sys/devices/system/cpu/possible", EIO);
  }
  return CpuCountFromList(line);
}

std::string KernelUringUnavailable(const std::string& parameter) {
  std::ifstream in(parameter);
  std::string v;
  if (!in || !std::getline(in, v)) {
    return "this kernel has no FUSE over io_uring (Linux 6.14+ with CONFIG_FUSE_IO_URING)";
  }
  if (v.rfind("Y", 0) == 0 || v.rfind("1", 0) == 0) return "";
  return "FUSE over io_uring is off in the kernel (as root: echo 1 > " + parameter + ")";
}

}  // namespace clonefs::fuse
