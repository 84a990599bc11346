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
constexpr uint64_t kEntryTag = 1;  // user_data of the entry's command
constexpr uint64_t kStopTag = 2;   // user_data of the poll on stop_fd_
constexpr unsigned kRingEntries = 4;
// Room before the payload for the rebuilt request's headers: the header
// buffer sits at the start of the same page.
constexpr size_t kRoom = kPage - sizeof(kabi::UringReqHeader);
static_assert(kRoom >= sizeof(kabi::InHeader) + kabi::kUringOpInSize);

Result<struct io_uring> NewRing() {
  struct io_uring ring;
  struct io_uring_params p;
  std::memset(&p, 0, sizeof(p));
  p.flags = IORING_SETUP_SQE128;  // the command area holds UringCmdReq
  const int rc = io_uring_queue_init_params(kRingEntries, &ring, &p);
  if (rc < 0) return Status::IoError("cannot create an io_uring", -rc);
  return ring;
}

// An IORING_OP_URING_CMD for /dev/fuse. `iov`: the entry's two buffers, or
// nullptr for a REGISTER that must fail (no buffers).
void PrepCmd(struct io_uring_sqe* sqe, int dev_fd, uint32_t op, uint16_t qid, uint64_t commit_id,
             struct iovec* iov) {
  io_uring_prep_rw(IORING_OP_URING_CMD, sqe, dev_fd, iov, iov ? 2 : 0, 0);
  sqe->cmd_op = op;
  sqe->user_data = kEntryTag;
  kabi::UringCmdReq req;
  std::memset(&req, 0, sizeof(req));
  req.commit_id = commit_id;
  req.qid = qid;
  std::memset(sqe->cmd, 0, 80);
  std::memcpy(sqe->cmd, &req, sizeof(req));
}

}  // namespace

bool UringQueueShouldGrow(uint32_t threads, uint32_t busy, uint32_t max_threads) {
  return threads < max_threads && threads <= busy + kUringSpareThreads;
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

struct UringQueues::Thread {
  UringQueues* owner = nullptr;
  Queue* queue = nullptr;
  pthread_t tid{};
  char* map = nullptr;
  size_t map_len = 0;
  kabi::UringReqHeader* header = nullptr;  // at map
  char* payload = nullptr;                 // map + kPage, page aligned
  struct iovec iov[2] = {};
  // The unique of the request being handled (0: none): written by this
  // thread, read by TryReply on it and by Serving on any thread.
  std::atomic<uint64_t> serving{0};
  bool replied = false;  // this thread only
  // Registration outcome, for Start: GUARDED_BY(owner->mu_).
  bool registered_known = false;
  Status registered;
  ~Thread() {
    if (map != nullptr) ::munmap(map, map_len);
  }
};

namespace {
thread_local UringQueues::Thread* tl_thread = nullptr;
}  // namespace

UringQueues::UringQueues(const Options& options) : options_(options) {}

Result<std::unique_ptr<UringQueues>> UringQueues::Create(const Options& options) {
  Options o = options;
  if (o.queues == 0) {
    auto n = PossibleCpus();
    if (!n.ok()) return n.status();
    o.queues = *n;
  }
  if (o.queues > 65536 || o.max_threads_per_queue == 0) {
    return Status::InvalidArgument("bad io_uring queue options");
  }
  auto spare = NewRing();
  if (!spare.ok()) return spare.status();
  std::unique_ptr<UringQueues> u(new UringQueues(o));
  u->spare_ = std::make_unique<struct io_uring>(*spare);
  u->stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (u->stop_fd_ < 0) return Status::IoError("cannot create an eventfd", errno);
  for (uint32_t i = 0; i < o.queues; ++i) {
    u->queues_.push_back(std::make_unique<Queue>());
    u->queues_.back()->qid = i;
  }
  return u;
}

UringQueues::~UringQueues() {
  Stop();
  if (stop_fd_ >= 0) ::close(stop_fd_);
  if (spare_ != nullptr) io_uring_queue_exit(spare_.get());
}

Result<UringQueues::Thread*> UringQueues::AddThread(Queue* q) {
  auto t = std::make_unique<Thread>();
  t->owner = this;
  t->queue = q;
  t->map_len = kPage + max_payload_ + kPage;
  void* m = ::mmap(nullptr, t->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return Status::IoError("cannot map an io_uring entry's buffers", errno);
  t->map = static_cast<char*>(m);
  ::mprotect(t->map + t->map_len - kPage, kPage, PROT_NONE);  // a guard; best effort
  t->header = reinterpret_cast<kabi::UringReqHeader*>(t->map);
  t->payload = t->map + kPage;
  t->iov[0] = {t->header, sizeof(kabi::UringReqHeader)};
  t->iov[1] = {t->payload, max_payload_};
  Thread* raw = t.get();
  std::lock_guard<std::mutex> l(mu_);
  if (stopping_) return Status::Busy("stopping");
  threads_.push_back(std::move(t));
  q->threads.fetch_add(1);
  const int rc = pthread_create(&raw->tid, nullptr, &UringQueues::ThreadMain, raw);
  if (rc != 0) {
    // Never started: forget it (nothing else points at it yet).
    q->threads.fetch_sub(1);
    threads_.pop_back();
    return Status::IoError("cannot start an io_uring thread", rc);
  }
  return raw;
}

void* UringQueues::ThreadMain(void* arg) {
  auto* t = static_cast<Thread*>(arg);
  tl_thread = t;
  t->owner->Serve(t);
  tl_thread = nullptr;
  t->queue->threads.fetch_sub(1);
  return nullptr;
}

void UringQueues::Report(Thread* t, Status s) {
  std::lock_guard<std::mutex> l(mu_);
  t->registered = std::move(s);
  t->registered_known = true;
  registered_cv_.notify_all();
  if (!t->registered.ok()) {
    // A thread added later fails the same way: stop adding them.
    grow_failed_ = true;
    CLONEFS_LOG_WARN("fuse: an io_uring thread of queue %u could not register: %s", t->queue->qid,
                     t->registered.ToString().c_str());
  }
}

void UringQueues::Serve(Thread* t) {
  Queue* q = t->queue;
  if (options_.fail_queue == static_cast<int>(q->qid)) {
    // The test hook: this queue fails before its REGISTER reaches the
    // kernel, which then knows nothing of the failure.
    return Report(t, Status::IoError("cannot create an io_uring (test hook)", ENOMEM));
  }
  auto made = NewRing();
  if (!made.ok()) return Report(t, made.status());
  struct io_uring ring = *made;
  struct io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_poll_add(sqe, stop_fd_, POLLIN);
  sqe->user_data = kStopTag;
  PrepCmd(io_uring_get_sqe(&ring), dev_fd_, kabi::kUringCmdRegister, q->qid, 0, t->iov);
  int rc = io_uring_submit(&ring);
  // A REGISTER that fails does so while it is submitted: its completion is
  // already there. One that succeeds completes only with a request.
  struct io_uring_cqe* cqe = nullptr;
  Status reg = rc < 0 ? Status::IoError("io_uring_submit", -rc) : Status::OK();
  if (reg.ok() && io_uring_peek_cqe(&ring, &cqe) == 0 && cqe->user_data == kEntryTag &&
      cqe->res < 0) {
    reg = Status::IoError("FUSE_IO_URING_CMD_REGISTER", -cqe->res);
    io_uring_cqe_seen(&ring, cqe);
  }
  Report(t, reg);
  if (!reg.ok()) {
    io_uring_queue_exit(&ring);
    return;
  }
  // The thread leaves only when Stop asks or the connection is gone: once
  // the kernel uses the queues, a queue without threads would hold its
  // CPU's requests forever.
  int failures = 0;  // consecutive unexpected errors, for the back-off
  auto back_off = [&](const char* what, int err) {
    if (failures++ == 0) {
      CLONEFS_LOG_WARN("fuse: io_uring %s on queue %u failed (%s); retrying", what, q->qid,
                       strerror(err));
    }
    usleep(std::min(1000 * (1 << std::min(failures, 10)), 1'000'000));
  };
  while (true) {
    rc = io_uring_submit_and_wait(&ring, 1);
    bool stop = false, have = false;
    int res = 0;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      if (cqe->user_data == kStopTag) {
        stop = true;
      } else {
        have = true;
        res = cqe->res;
      }
      ++seen;
    }
    io_uring_cq_advance(&ring, seen);
    if (!have) {
      if (stop) break;
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME) {
        back_off("wait", -rc);
      }
      continue;
    }
    if (res == -ENOTCONN || res == -ECONNABORTED || res == -ECANCELED) break;  // unmounted
    if (res < 0) {
      // ENOENT: the kernel no longer knew the request this entry committed
      // (it ended meanwhile) and left the entry out of use. Anything else
      // is unexpected. Either way the entry is registered again, so the
      // queue keeps its threads.
      if (res != -ENOENT) back_off("command", -res);
      if (stop) break;
      PrepCmd(io_uring_get_sqe(&ring), dev_fd_, kabi::kUringCmdRegister, q->qid, 0, t->iov);
      continue;
    }
    failures = 0;
    // At most one thread of the queue left waiting: add one. The kernel
    // gives a request that finds no waiting entry to the next entry that
    // commits, never to one registered later, so the queue must grow
    // before it runs out, not after (kUringSpareThreads).
    const uint32_t busy = q->busy.fetch_add(1) + 1;  // this one included
    if (UringQueueShouldGrow(q->threads.load(), busy, options_.max_threads_per_queue)) {
      MaybeGrow(q);
    }
    requests_.fetch_add(1, std::memory_order_relaxed);
    Handle(t);
    PrepCmd(io_uring_get_sqe(&ring), dev_fd_, kabi::kUringCmdCommitAndFetch, q->qid,
            t->header->ring_ent_in_out.commit_id, t->iov);
    q->busy.fetch_sub(1);
    if (stop) {
      io_uring_submit(&ring);  // the reply; its fetch ends with the ring
      break;
    }
  }
  io_uring_queue_exit(&ring);  // cancels this entry's command, if any
}

void UringQueues::Handle(Thread* t) {
  const uint64_t unique = t->header->ring_ent_in_out.commit_id;
  t->serving.store(unique);
  t->replied = false;
  auto req = AssembleUringRequest(*t->header, t->payload, kRoom, max_payload_);
  if (req.ok()) {
    handler_(*req, kabi::Load<uint32_t>(t->header->in_out, offsetof(kabi::InHeader, len)));
  } else {
    CLONEFS_LOG_ERROR("fuse: %s; answering EIO", req.status().ToString().c_str());
  }
  if (!t->replied) {
    // Every operation replies before returning; a request without a reply
    // would hold this entry forever, so it gets EIO.
    kabi::OutHeader out = {sizeof(kabi::OutHeader), -EIO, unique};
    std::memcpy(t->header->in_out, &out, sizeof(out));
    t->header->ring_ent_in_out.payload_sz = 0;
  }
  t->serving.store(0);
}

void UringQueues::MaybeGrow(Queue* q) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_ || grow_failed_) return;
  }
  auto added = AddThread(q);
  if (!added.ok() && !added.status().IsBusy()) {
    std::lock_guard<std::mutex> l(mu_);
    grow_failed_ = true;
    CLONEFS_LOG_WARN("fuse: cannot add an io_uring thread (%s); the queues keep theirs",
                     added.status().ToString().c_str());
  }
}

char* UringQueues::ReplyBuffer(size_t len) {
  Thread* t = tl_thread;
  if (t == nullptr || t->serving.load(std::memory_order_relaxed) == 0 ||
      len > t->owner->max_payload_) {
    return nullptr;
  }
  return t->payload;
}

bool UringQueues::Serving(uint64_t unique) const {
  if (unique == 0) return false;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& t : threads_) {
    if (t->serving.load() == unique) return true;
  }
  return false;
}

bool UringQueues::TryReply(const struct iovec* iov, int count, ssize_t* written) {
  Thread* t = tl_thread;
  if (t == nullptr || t->replied || count < 1 || iov[0].iov_len < sizeof(kabi::OutHeader)) {
    return false;
  }
  const uint64_t unique = kabi::Load<uint64_t>(iov[0].iov_base, offsetof(kabi::OutHeader, unique));
  if (unique == 0 || unique != t->serving.load(std::memory_order_relaxed)) return false;
  auto n = StoreUringReply(iov, count, t->header, t->payload, max_payload_);
  t->replied = n.ok();  // else the EIO fallback in Serve answers
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
  PrepCmd(io_uring_get_sqe(spare_.get()), dev_fd_, kabi::kUringCmdRegister, 0, 0, nullptr);
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

Status UringQueues::Start(int dev_fd, size_t max_payload, Handler handler) {
  dev_fd_ = dev_fd;
  max_payload_ = (std::max<size_t>(max_payload, 8192) + kPage - 1) / kPage * kPage;
  handler_ = std::move(handler);
  Status failed;
  std::vector<Thread*> started;
  const uint32_t first = std::min<uint32_t>(1 + kUringSpareThreads, options_.max_threads_per_queue);
  for (auto& q : queues_) {
    for (uint32_t i = 0; i < first && failed.ok(); ++i) {
      auto t = AddThread(q.get());
      if (!t.ok()) {
        failed = t.status().WithContext("queue " + std::to_string(q->qid));
      } else {
        started.push_back(*t);
      }
    }
    if (!failed.ok()) break;
  }
  {
    std::unique_lock<std::mutex> l(mu_);
    registered_cv_.wait(l, [&] {
      return std::all_of(started.begin(), started.end(),
                         [](Thread* t) { return t->registered_known; });
    });
    for (Thread* t : started) {
      if (failed.ok() && !t->registered.ok()) {
        failed = t->registered.WithContext("queue " + std::to_string(t->queue->qid));
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
    stopping_ = true;  // threads_ is fixed from here on
  }
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!::write(stop_fd_, &one, sizeof(one));
  }
  for (auto& t : threads_) pthread_join(t->tid, nullptr);
  serving_.store(false);
}

std::string UringQueues::Describe() const {
  std::lock_guard<std::mutex> l(mu_);
  if (!failure_.empty()) return "/dev/fuse (io_uring registration failed: " + failure_ + ")";
  if (!serving_.load()) return "/dev/fuse (io_uring not started)";
  uint32_t threads = 0;
  for (auto& q : queues_) threads += q->threads.load();
  return "io_uring (" + std::to_string(queues_.size()) + " queues, " + std::to_string(threads) +
         " threads)";
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
