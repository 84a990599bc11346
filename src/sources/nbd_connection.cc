#include "sources/nbd_connection.h"

#include <libnbd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/clock.h"
#include "base/log.h"
#include "sources/source_wait.h"

namespace clonefs {
namespace {

constexpr uint64_t kTickNs = 50'000'000;
constexpr uint64_t kBackoffMinNs = 100'000'000;
constexpr uint64_t kBackoffMaxNs = 2'000'000'000;
// A connection that stayed ready this long has proven the server healthy:
// its drop starts the backoff again at kBackoffMinNs. A shorter one (a
// server that completes the handshake and drops the connection at once)
// leaves it growing, so a flapping server is not connected to 10 times a
// second forever.
constexpr uint64_t kStableNs = 3'000'000'000;
constexpr int kServerRetries = 3;
constexpr uint64_t kRetryBaseNs = 100'000'000;

uint64_t MonoNow() { return Clock::Real()->NowNanos(); }

// Errors that say the request itself was refused: retrying cannot help.
bool Retryable(int err) {
  return err != EINVAL && err != EPERM && err != ENOTSUP && err != EOPNOTSUPP && err != ERANGE;
}

// Errors that say the connection is gone rather than that the server failed
// the request: NBD_ESHUTDOWN, which a server that is shutting down (nbdkit on
// SIGTERM) answers to every request while it keeps the connection open, and
// the errnos libnbd gives the commands of a connection that broke. The piece
// is reissued on a new connection; its reader never sees these errnos.
bool ConnectionGone(int err) {
  switch (err) {
    case ESHUTDOWN:
    case ENOTCONN:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ETIMEDOUT:
    case ENETDOWN:
    case ENETUNREACH:
    case ENETRESET:
    case EHOSTDOWN:
    case EHOSTUNREACH:
      return true;
    default:
      return false;
  }
}

std::string GoneReason(int err) {
  if (err == ESHUTDOWN) return "the server is shutting down";
  return std::string("the connection failed: ") + std::strerror(err);
}

// "" if the chunks of a read's answer fill all of it, else which bytes they
// left out. A server may split its answer into chunks in any order; one
// whose chunks overlap can add up to the length asked for and still leave
// bytes out, which libnbd reports as a success (nbd_pread_structured(3)).
std::string LeftOut(const NbdPiece& p) {
  std::vector<std::pair<uint64_t, uint64_t>> filled = p.filled;
  std::sort(filled.begin(), filled.end());
  uint64_t pos = 0;
  for (const auto& [begin, end] : filled) {
    if (begin > pos) break;
    pos = std::max(pos, end);
  }
  if (pos >= p.srv_len) return "";
  return "the server's answer said it succeeded but left out bytes " +
         std::to_string(p.srv_off + pos) + " and on (its chunks overlap or are missing)";
}

std::string LibnbdError(const char* fallback) {
  const char* e = nbd_get_error();
  return e != nullptr && *e != '\0' ? e : fallback;
}

}  // namespace

NbdConnection::NbdConnection(std::shared_ptr<NbdSourceState> state, int index)
    : state_(std::move(state)), index_(index) {
  efd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

NbdConnection::~NbdConnection() {
  Stop();
  if (efd_ >= 0) ::close(efd_);
}

void NbdConnection::Start() {
  thread_ = std::thread([this] { Run(); });
}

Status NbdConnection::WaitConnected(uint64_t deadline_ns, NbdServerInfo* info,
                                    std::string* nbdkit_said) {
  std::unique_lock<std::mutex> l(mu_);
  WaitForDone(l, first_cv_, deadline_ns, nullptr, [this] { return first_done_; });
  if (!first_done_) {
    return Status::IoError("no answer within " + FormatTimeout(state_->timeout_ns), ETIMEDOUT);
  }
  if (first_status_.ok()) *info = info_;
  if (nbdkit_said != nullptr) *nbdkit_said = first_nbdkit_said_;
  return first_status_;
}

std::unique_ptr<NbdPiece> NbdConnection::Submit(std::unique_ptr<NbdPiece> piece) {
  bool wake;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return piece;
    piece->conn = this;
    outstanding_.fetch_add(1, std::memory_order_relaxed);
    // The thread drains the whole queue before it polls: one wake per batch.
    wake = queue_.empty();
    queue_.push_back(std::move(piece));
  }
  if (wake) Wake();
  return nullptr;
}

void NbdConnection::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  Wake();
  if (thread_.joinable()) thread_.join();
}

NbdConnection::HealthView NbdConnection::health() const {
  HealthView v;
  v.reconnecting_since_unix_ns = reconnecting_since_unix_.load(std::memory_order_acquire);
  v.stalled_since_unix_ns = stalled_since_unix_.load(std::memory_order_acquire);
  v.recovered_unix_ns = recovered_unix_.load(std::memory_order_acquire);
  if (const uint64_t sent = oldest_sent_mono_.load(std::memory_order_acquire); sent != 0) {
    const uint64_t now = MonoNow();
    v.oldest_sent_unix_ns = WallNowNanos() - (now > sent ? now - sent : 0);
  }
  return v;
}

void NbdConnection::Wake() {
  uint64_t one = 1;
  ssize_t r = ::write(efd_, &one, sizeof(one));
  (void)r;  // EAGAIN: the counter is already non-zero, the thread will wake
}

int NbdConnection::OnComplete(void* user_data, int* error) {
  auto* p = static_cast<NbdPiece*>(user_data);
  p->completed = true;
  p->error = *error;
  p->conn->completed_.push_back(p);
  return 1;  // retire the command
}

int NbdConnection::OnChunk(void* user_data, const void* /*subbuf*/, size_t count, uint64_t offset,
                           unsigned status, int* /*error*/) {
  auto* p = static_cast<NbdPiece*>(user_data);
  if ((status == LIBNBD_READ_DATA || status == LIBNBD_READ_HOLE) && count > 0) {
    // libnbd checked that the chunk lies inside the piece.
    p->filled.emplace_back(offset - p->srv_off, offset - p->srv_off + count);
  }
  return 0;
}

int NbdConnection::OnExtent(void* user_data, const char* context, uint64_t offset,
                            uint32_t* entries, size_t nr_entries, int* /*error*/) {
  if (std::strcmp(context, LIBNBD_CONTEXT_BASE_ALLOCATION) != 0) return 0;
  auto* p = static_cast<NbdPiece*>(user_data);
  uint64_t pos = offset;
  for (size_t i = 0; i + 1 < nr_entries; i += 2) {
    // Only ZERO promises zeros; HOLE alone means "unallocated" (nbd_device.h).
    const bool zero = (entries[i + 1] & LIBNBD_STATE_ZERO) != 0;
    p->extents.push_back(Extent{pos, pos + entries[i], zero});
    pos += entries[i];
  }
  return 0;
}

// ---- the I/O thread ----

void NbdConnection::Run() {
  backoff_ns_ = kBackoffMinNs;
  StartConnect();
  for (;;) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) break;
      for (auto& p : queue_) waiting_.push_back(std::move(p));
      queue_.clear();
    }
    uint64_t now = MonoNow();
    if (state_->has_fatal()) {
      FailAll(state_->fatal());
      // Nothing more is read from a source that changed. A piece in flight
      // holds its op until the server answers (a direct piece's buffer is
      // its caller's), which a server refusing every request (HTTP 412,
      // retried by nbdkit's retry filter) does only at the timeout: the
      // connection is closed, which retires them, and not made again (one
      // connecting just then may finish its handshake, but it serves
      // nothing: every piece fails).
      if (!inflight_.empty() && (phase_ == Phase::kReady || phase_ == Phase::kVerifying)) {
        ConnectionLost("the source changed");
      }
    }
    ExpireDeadlines(now);
    if (ever_ready_ && phase_ != Phase::kReady && !waiting_.empty() && !state_->has_fatal()) {
      HandOver();
    }
    if (phase_ == Phase::kDown && now >= next_attempt_ns_ && !state_->has_fatal()) StartConnect();
    StepVerify();
    if (phase_ == Phase::kConnecting && now >= connect_started_ns_ + state_->timeout_ns) {
      ConnectionLost("no answer within " + FormatTimeout(state_->timeout_ns));
    }
    if (phase_ == Phase::kReady || phase_ == Phase::kVerifying) SubmitWaiting(now);
    if (phase_ == Phase::kFailed) FailAll(Status::IoError("not connected to " + state_->display));
    now = MonoNow();
    UpdateStall(now);
    PollOnce(PollTimeoutMs(now));
  }
  Shutdown();
}

void NbdConnection::StartConnect() {
  phase_ = Phase::kConnecting;
  connect_started_ns_ = MonoNow();
  h_ = nbd_create();
  if (h_ == nullptr) {
    ConnectionLost(LibnbdError("nbd_create failed"));
    return;
  }
  nbd_set_handle_name(h_, ("clonefs-source-" + std::to_string(index_)).c_str());
  nbd_add_meta_context(h_, LIBNBD_CONTEXT_BASE_ALLOCATION);
  // Every byte of a piece's buffer (or of the caller's, for a direct piece)
  // is written by a successful read before anyone uses it; a failed read's
  // bytes are never used. libnbd need not zero it first.
  nbd_set_pread_initialize(h_, false);
  // Every request is aligned to the server's minimum block size already
  // (nbd_device.cc), except one that ends at the end of an export whose size
  // is not a multiple of it: libnbd would refuse that one itself, so the
  // last bytes could never be read. The server decides (nbdkit's
  // blocksize-policy filter serves it; a server that refuses says so).
  nbd_set_strict_mode(h_, nbd_get_strict_mode(h_) & ~static_cast<uint32_t>(LIBNBD_STRICT_ALIGN));
  // The URI is the user's own (tls-psk-file= names a local file).
  nbd_set_uri_allow_local_file(h_, true);
  int r;
  if (state_->target.spawned()) {
    int sock = -1;
    Result<std::unique_ptr<NbdkitChild>> child =
        NbdkitChild::Start(state_->target.argv, state_->target.password, &sock);
    if (!child.ok()) {
      ConnectionLost(child.status().message());
      return;
    }
    nbdkit_ = std::move(*child);
    r = nbd_aio_connect_socket(h_, sock);  // owns sock from now on, even on failure
  } else {
    r = nbd_aio_connect_uri(h_, state_->target.uri.c_str());
  }
  if (r == -1) {
    ConnectionLost(LibnbdError("connect failed"));
    return;
  }
  // libnbd may have finished the whole handshake (or failed) inside the
  // call: a local server answers at once. No socket event would then tell.
  AfterIo(/*failed=*/false, "");
}

void NbdConnection::OnReady() {
  NbdServerInfo info;
  int64_t size = nbd_get_size(h_);
  if (size < 0) {
    ConnectionLost(LibnbdError("the server sent no size"));
    return;
  }
  info.size = static_cast<uint64_t>(size);
  info.multi_conn = nbd_can_multi_conn(h_) > 0;
  info.extents = nbd_can_meta_context(h_, LIBNBD_CONTEXT_BASE_ALLOCATION) > 0;
  int64_t min_block = nbd_get_block_size(h_, LIBNBD_SIZE_MINIMUM);
  int64_t max_block = nbd_get_block_size(h_, LIBNBD_SIZE_MAXIMUM);
  info.min_block = min_block > 0 ? static_cast<uint64_t>(min_block) : 0;
  info.max_block = max_block > 0 ? static_cast<uint64_t>(max_block) : 0;
  if (!ever_ready_) {
    phase_ = Phase::kReady;
    ready_since_ns_ = MonoNow();
    up_.store(true, std::memory_order_release);
    ever_ready_ = true;
    first_size_ = info.size;
    {
      std::lock_guard<std::mutex> l(mu_);
      first_done_ = true;
      first_status_ = Status::OK();
      info_ = info;
    }
    first_cv_.notify_all();
    return;
  }
  if (info.size != first_size_) {
    std::string msg = "source " + state_->display + " size changed from " +
                      std::to_string(first_size_) + " to " + std::to_string(info.size) + " bytes";
    CLONEFS_LOG_ERROR("%s; every read of it now fails", msg.c_str());
    state_->RecordError(msg);
    state_->SetFatal(Status::Mismatch(msg));
  } else if (!state_->has_fatal() && state_->verifier()) {
    // Nothing is served through the new connection before the source is
    // known to be the same one (VERIFYING).
    phase_ = Phase::kVerifying;
    verify_size_ = info.size;
    verify_started_ = false;
    StepVerify();
    return;
  }
  Reconnected();
}

void NbdConnection::Reconnected() {
  phase_ = Phase::kReady;
  ready_since_ns_ = MonoNow();
  up_.store(true, std::memory_order_release);
  state_->reconnects.fetch_add(1, std::memory_order_relaxed);
  reconnecting_since_unix_.store(0, std::memory_order_release);
  recovered_unix_.store(WallNowNanos(), std::memory_order_release);
  CLONEFS_LOG_INFO("reconnected to %s (connection %d)", state_->display.c_str(), index_);
}

void NbdConnection::StartVerify() {
  NbdSourceState::Verifier verifier = state_->verifier();
  verify_started_ = true;
  const uint64_t gen = ++verify_gen_;
  const uint64_t size = verify_size_;
  verify_thread_ = std::thread([this, verifier, gen, size] {
    // No verifier: the device is closing (it clears it before stopping us).
    Status s = verifier ? verifier(this, gen, size) : Status::Aborted("the source is closing");
    {
      std::lock_guard<std::mutex> l(mu_);
      verify_finished_ = true;
      verify_status_ = std::move(s);
    }
    Wake();
  });
}

// Joins a verify thread that has reported, applies its verdict if it is
// this reconnect's, and starts this reconnect's check once no earlier one
// runs (its pieces are failed, so it ends soon).
void NbdConnection::StepVerify() {
  if (verify_thread_.joinable()) {
    Status s;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!verify_finished_) return;
      verify_finished_ = false;
      s = verify_status_;
    }
    verify_thread_.join();
    if (phase_ == Phase::kVerifying && verify_started_) {
      Verified(s);
      return;
    }
  }
  if (phase_ == Phase::kVerifying && !verify_started_) StartVerify();
}

void NbdConnection::Verified(const Status& s) {
  verify_started_ = false;
  if (s.ok() || state_->has_fatal()) {
    // A fatal source (another connection saw the change) fails every
    // request from here on.
    Reconnected();
    return;
  }
  if (s.IsMismatch()) {
    std::string msg =
        "source " + state_->display + " is not the same after reconnecting: " + s.message();
    CLONEFS_LOG_ERROR("%s; every read of it now fails", msg.c_str());
    state_->RecordError(msg);
    state_->SetFatal(Status::Mismatch(msg));
    Reconnected();
    return;
  }
  ConnectionLost("could not check that it is the same source: " + s.message());
}

// Whether `p` may be sent now; fails (and keeps) a check piece of an
// earlier reconnect, which must never reach another connection's server.
bool NbdConnection::SendableNow(NbdPiece& p) {
  const bool current = p.verify_gen != 0 && phase_ == Phase::kVerifying && verify_started_ &&
                       p.verify_gen == verify_gen_;
  if (p.verify_gen != 0 && !current) {
    p.op->Finish(Status::IoError("the connection to " + state_->display +
                                 " was lost while checking the source"));
    return false;
  }
  return phase_ == Phase::kReady || current;
}

void NbdConnection::ConnectionLost(const std::string& libnbd_reason) {
  const bool was_ready = phase_ == Phase::kReady;
  up_.store(false, std::memory_order_release);
  // What nbdkit said is the reason; libnbd's side of it ("no export named
  // ''", "disconnected") only follows.
  const std::string said = DrainNbdkit();
  const std::string reason =
      said.empty() ? libnbd_reason : "nbdkit: " + said + " (libnbd: " + libnbd_reason + ")";
  CloseHandle();
  ProcessCompleted(/*dead=*/true, MonoNow());
  for (auto& entry : inflight_) Requeue(std::move(entry.second), /*at_front=*/true);
  inflight_.clear();
  // A check that was running is over: its pieces fail (VERIFYING).
  verify_started_ = false;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->verify_gen != 0) {
      (*it)->op->Finish(Status::IoError("the connection to " + state_->display +
                                        " was lost while checking the source"));
      Release(std::move(*it));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  if (!ever_ready_) {
    phase_ = Phase::kFailed;
    {
      std::lock_guard<std::mutex> l(mu_);
      first_done_ = true;
      first_status_ = Status::IoError(libnbd_reason);
      first_nbdkit_said_ = said;
    }
    first_cv_.notify_all();
    return;
  }
  if (was_ready && state_->has_fatal()) {
    CLONEFS_LOG_INFO("connection %d to %s closed: the source changed", index_,
                     state_->display.c_str());
  } else if (was_ready) {
    std::string msg = "connection to " + state_->display + " lost: " + reason;
    CLONEFS_LOG_WARN("%s; reconnecting", msg.c_str());
    state_->RecordError(msg);
    reconnecting_since_unix_.store(WallNowNanos(), std::memory_order_release);
    stalled_since_unix_.store(0, std::memory_order_release);
    if (MonoNow() - ready_since_ns_ >= kStableNs) backoff_ns_ = kBackoffMinNs;
  } else if (!state_->has_fatal()) {
    state_->RecordError("reconnecting to " + state_->display + ": " + reason);
  }
  phase_ = Phase::kDown;
  next_attempt_ns_ = MonoNow() + backoff_ns_;
  backoff_ns_ = std::min(backoff_ns_ * 2, kBackoffMaxNs);
}

void NbdConnection::CloseHandle() {
  if (h_ == nullptr) return;
  // nbd_close waits for a spawned server; a stopped or wedged nbdkit must
  // not hold it up.
  nbdkit_.reset();  // SIGKILL and reap
  nbd_close(h_);
  h_ = nullptr;
}

std::string NbdConnection::DrainNbdkit() {
  if (nbdkit_ == nullptr) return "";
  for (const std::string& line : nbdkit_->ReadLines()) {
    if (ever_ready_ && !line.empty()) {
      CLONEFS_LOG_WARN("nbdkit serving %s (connection %d): %s", state_->display.c_str(), index_,
                       line.c_str());
      // A plugin error that nbdkit's retry filter hides from libnbd (the web
      // server or sshd went away; the retry reopens a session, maybe to a
      // server that now serves another file): a source error all the same,
      // in status, and one that brings the identity re-check forward.
      if (line.find("error") != std::string::npos) {
        state_->RecordError("nbdkit serving " + state_->display + ": " + line);
      }
    }
  }
  return NbdkitSaid(nbdkit_->recent());
}

void NbdConnection::SubmitWaiting(uint64_t now) {
  if (state_->has_fatal()) {
    // Set since the top of the loop (another connection's check): nothing
    // more is sent.
    FailAll(state_->fatal());
    return;
  }
  const size_t max_inflight = state_->max_inflight.load(std::memory_order_relaxed);
  for (auto it = waiting_.begin(); it != waiting_.end() && inflight_.size() < max_inflight;) {
    NbdPiece* p = it->get();
    const bool sendable = !p->op->finished() && SendableNow(*p);
    if (p->op->finished()) {
      Release(std::move(*it));
      it = waiting_.erase(it);
      continue;
    }
    if (!sendable || p->not_before_ns > now) {
      ++it;
      continue;
    }
    inflight_.emplace(p, std::move(*it));
    it = waiting_.erase(it);
    p->completed = false;
    p->error = 0;
    p->extents.clear();
    p->filled.clear();
    p->sent_ns = now;
    if (p->sends++ > 0) state_->retries.fetch_add(1, std::memory_order_relaxed);
    state_->requests.fetch_add(1, std::memory_order_relaxed);
    nbd_completion_callback done{OnComplete, p, nullptr};
    int64_t cookie =
        p->op->kind() == NbdOp::Kind::kRead
            ? nbd_aio_pread_structured(h_, p->target(), p->srv_len, p->srv_off,
                                       nbd_chunk_callback{OnChunk, p, nullptr}, done, 0)
            : nbd_aio_block_status(h_, p->srv_len, p->srv_off,
                                   nbd_extent_callback{OnExtent, p, nullptr}, done, 0);
    if (cookie != -1 || p->completed) continue;
    std::string err = LibnbdError("request refused");
    int e = nbd_get_errno();
    if (nbd_aio_is_dead(h_) || nbd_aio_is_closed(h_) || ConnectionGone(e)) {
      AfterIo(/*failed=*/true, err);  // requeues p with the rest
      return;
    }
    // Refused by libnbd itself (alignment, size limits): permanent.
    auto node = inflight_.extract(p);
    std::string msg = PieceWhat(*p) + " from " + state_->display + " was refused: " + err;
    state_->RecordError(msg);
    p->op->Finish(Status::IoError(msg, e != 0 ? e : EIO));
    Release(std::move(node.mapped()));
  }
  AfterIo(/*failed=*/false, "");
}

void NbdConnection::PollOnce(int timeout_ms) {
  // fds[2] is nbdkit's standard error: polled always (a full pipe would
  // block nbdkit), and not counted in n, which says whether fds[1] is set.
  pollfd fds[3] = {{efd_, POLLIN, 0}, {-1, 0, 0}, {-1, 0, 0}};
  nfds_t n = 1;
  if (nbdkit_ != nullptr && nbdkit_->stderr_fd() >= 0) {
    fds[2].fd = nbdkit_->stderr_fd();
    fds[2].events = POLLIN;
  }
  if (h_ != nullptr) {
    int fd = nbd_aio_get_fd(h_);
    unsigned dir = nbd_aio_get_direction(h_);
    if (fd >= 0) {
      fds[1].fd = fd;
      if (dir & LIBNBD_AIO_DIRECTION_READ) fds[1].events |= POLLIN;
      if (dir & LIBNBD_AIO_DIRECTION_WRITE) fds[1].events |= POLLOUT;
      n = 2;
    }
  }
  int r = ::poll(fds, 3, timeout_ms);  // a negative fd is skipped
  if (r <= 0) return;  // timeout, or EINTR: the loop looks again
  if (fds[2].revents != 0) DrainNbdkit();
  if (fds[0].revents & POLLIN) {
    uint64_t v;
    ssize_t got = ::read(efd_, &v, sizeof(v));
    (void)got;
  }
  if (n < 2 || fds[1].revents == 0 || h_ == nullptr) return;
  const short re = fds[1].revents;
  const unsigned dir = nbd_aio_get_direction(h_);  // may have changed
  int rc = 0;
  bool notified = false;
  if ((dir & LIBNBD_AIO_DIRECTION_READ) && (re & (POLLIN | POLLHUP | POLLERR))) {
    rc = nbd_aio_notify_read(h_);
    notified = true;
  } else if ((dir & LIBNBD_AIO_DIRECTION_WRITE) && (re & (POLLOUT | POLLHUP | POLLERR))) {
    rc = nbd_aio_notify_write(h_);
    notified = true;
  }
  if (rc == -1) {
    AfterIo(/*failed=*/true, LibnbdError("socket error"));
  } else if (!notified && (re & (POLLHUP | POLLERR | POLLNVAL))) {
    AfterIo(/*failed=*/true, "the socket was closed");
  } else {
    AfterIo(/*failed=*/false, "");
  }
}

void NbdConnection::AfterIo(bool failed, std::string error) {
  if (h_ == nullptr) return;
  bool dead = failed || nbd_aio_is_dead(h_) || nbd_aio_is_closed(h_);
  std::string gone = ProcessCompleted(dead, MonoNow());
  if (!dead && !gone.empty()) {
    dead = true;  // the answers say the connection is over: drop it
    error = gone;
  }
  if (dead) {
    ConnectionLost(error.empty() ? "the server closed the connection" : error);
  } else if (phase_ == Phase::kConnecting && nbd_aio_is_ready(h_)) {
    OnReady();
  }
}

std::string NbdConnection::ProcessCompleted(bool dead, uint64_t now) {
  std::string gone;
  std::vector<NbdPiece*> done;
  done.swap(completed_);
  for (NbdPiece* raw : done) {
    auto node = inflight_.extract(raw);
    if (node.empty()) continue;  // not ours to settle (cannot happen)
    std::unique_ptr<NbdPiece> p = std::move(node.mapped());
    const std::string left_out =
        p->error == 0 && p->op->kind() == NbdOp::Kind::kRead ? LeftOut(*p) : "";
    if (!left_out.empty()) {
      // Never passed on: those bytes are whatever the buffer held before.
      p->error = EIO;
      ServerError(std::move(p), now, left_out);
    } else if (p->error == 0) {
      Deliver(std::move(p));
    } else if (dead) {
      Requeue(std::move(p), /*at_front=*/true);  // the connection failed, not the server
    } else if (ConnectionGone(p->error)) {
      if (gone.empty()) gone = GoneReason(p->error);
      Requeue(std::move(p), /*at_front=*/true);  // the caller drops the connection
    } else {
      ServerError(std::move(p), now);
    }
  }
  return gone;
}

void NbdConnection::Deliver(std::unique_ptr<NbdPiece> p) {
  if (state_->has_fatal()) {
    // The source changed: no answer counts from then on, whichever
    // connection it came through.
    p->op->Finish(state_->fatal());
    Release(std::move(p));
    return;
  }
  if (p->op->kind() == NbdOp::Kind::kRead) {
    state_->bytes_read.fetch_add(p->srv_len, std::memory_order_relaxed);
    if (p->direct != nullptr) {
      p->op->DirectSucceeded();
    } else {
      p->op->ReadSucceeded(p->buf.get() + p->skip, p->op_off, p->copy_len);
    }
  } else {
    p->op->ExtentsSucceeded(std::move(p->extents));
  }
  Release(std::move(p));
}

void NbdConnection::ServerError(std::unique_ptr<NbdPiece> p, uint64_t now,
                                const std::string& what) {
  const int err = p->error;
  ++p->server_errors;
  std::string msg = PieceWhat(*p) + " from " + state_->display +
                    " failed: " + (what.empty() ? std::strerror(err) : what);
  state_->RecordError(msg);
  if (!p->op->finished()) {
    const uint64_t delay = kRetryBaseNs << (p->server_errors - 1);
    if (Retryable(err) && p->server_errors <= kServerRetries &&
        now + delay < p->op->deadline_ns()) {
      p->not_before_ns = now + delay;
      Requeue(std::move(p), /*at_front=*/false);
      return;
    }
    if (p->server_errors > 1) msg += " (" + std::to_string(p->server_errors) + " tries)";
    p->op->Finish(Status::IoError(msg, err));
  }
  Release(std::move(p));
}

void NbdConnection::Requeue(std::unique_ptr<NbdPiece> p, bool at_front) {
  if (p->op->finished()) {
    Release(std::move(p));
    return;
  }
  p->completed = false;
  p->error = 0;
  if (at_front) {
    waiting_.push_front(std::move(p));
  } else {
    waiting_.push_back(std::move(p));
  }
}

void NbdConnection::Release(std::unique_ptr<NbdPiece> p) {
  p.reset();
  outstanding_.fetch_sub(1, std::memory_order_relaxed);
}

void NbdConnection::ExpireDeadlines(uint64_t now) {
  auto expire = [&](NbdPiece& p) {
    NbdOp& op = *p.op;
    if (!op.finished() && now >= op.deadline_ns()) {
      op.Finish(SourceTimedOut(op.What(), state_->display, state_->timeout_ns));
    }
  };
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    expire(**it);
    if ((*it)->op->finished()) {
      Release(std::move(*it));
      it = waiting_.erase(it);
    } else {
      ++it;
    }
  }
  // Pieces in flight stay until libnbd retires them: their buffers are
  // libnbd's until then. A direct piece's buffer is its caller's, whose
  // done waits for that: past the deadline, the connection is closed (which
  // retires every piece in flight; the others are reissued after the
  // reconnect), so a server that never answers cannot hold the caller.
  bool wedged = false;
  for (auto& entry : inflight_) {
    expire(*entry.second);
    wedged = wedged || (entry.second->direct != nullptr && now >= entry.second->op->deadline_ns());
  }
  if (wedged && (phase_ == Phase::kReady || phase_ == Phase::kVerifying)) {
    ConnectionLost("a read got no answer within " + FormatTimeout(state_->timeout_ns));
  }
}

void NbdConnection::HandOver() {
  const NbdSourceState::Rehome rehome = state_->rehome();
  if (!rehome) return;
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->pinned || (*it)->verify_gen != 0) {
      ++it;
      continue;
    }
    std::unique_ptr<NbdPiece> back = rehome(std::move(*it));
    if (back != nullptr) {  // no connection is up: the others stay too
      *it = std::move(back);
      return;
    }
    it = waiting_.erase(it);
    outstanding_.fetch_sub(1, std::memory_order_relaxed);
  }
}

void NbdConnection::FailAll(const Status& s) {
  for (auto& p : waiting_) p->op->Finish(s);
  for (auto& entry : inflight_) entry.second->op->Finish(s);
}

void NbdConnection::UpdateStall(uint64_t now) {
  uint64_t oldest = UINT64_MAX;
  if (phase_ == Phase::kReady) {
    for (const auto& entry : inflight_) oldest = std::min(oldest, entry.second->sent_ns);
  }
  oldest_sent_mono_.store(oldest != UINT64_MAX ? std::max<uint64_t>(oldest, 1) : 0,
                          std::memory_order_release);
  const uint64_t timeout = state_->timeout_ns;
  if (oldest != UINT64_MAX && now - oldest > timeout) {
    if (stalled_since_unix_.load(std::memory_order_relaxed) == 0) {
      const uint64_t late = now - (oldest + timeout);  // how long it has been stalled
      stalled_since_unix_.store(WallNowNanos() - late, std::memory_order_release);
    }
  } else if (stalled_since_unix_.load(std::memory_order_relaxed) != 0) {
    stalled_since_unix_.store(0, std::memory_order_release);
    recovered_unix_.store(WallNowNanos(), std::memory_order_release);
  }
}

int NbdConnection::PollTimeoutMs(uint64_t now) const {
  const bool idle = waiting_.empty() && inflight_.empty();
  if (idle && (phase_ == Phase::kReady || phase_ == Phase::kFailed)) return -1;
  // A connection down for good (the source changed: Run never connects it
  // again) has nothing to wait for; Submit wakes it (the eventfd).
  if (idle && phase_ == Phase::kDown && state_->has_fatal()) return -1;
  uint64_t wait = kTickNs;
  if (phase_ == Phase::kDown)
    wait = std::min(wait, next_attempt_ns_ > now ? next_attempt_ns_ - now : 0);
  return static_cast<int>((wait + 999'999) / 1'000'000);
}

void NbdConnection::Shutdown() {
  up_.store(false, std::memory_order_release);
  CloseHandle();  // libnbd calls no callback after this
  completed_.clear();
  std::deque<std::unique_ptr<NbdPiece>> queued;
  {
    std::lock_guard<std::mutex> l(mu_);
    queued.swap(queue_);
  }
  const Status aborted = Status::Aborted("source " + state_->display + " was closed");
  for (auto& p : queued) {
    p->op->Finish(aborted);
    Release(std::move(p));
  }
  for (auto& p : waiting_) {
    p->op->Finish(aborted);
    Release(std::move(p));
  }
  waiting_.clear();
  for (auto& entry : inflight_) {
    entry.second->op->Finish(aborted);
    Release(std::move(entry.second));
  }
  inflight_.clear();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!first_done_) {
      first_done_ = true;
      first_status_ = aborted;
    }
  }
  first_cv_.notify_all();
  // Every piece of a running check has failed and Submit refuses new ones,
  // so the verify thread ends.
  if (verify_thread_.joinable()) verify_thread_.join();
}

std::string NbdConnection::PieceWhat(const NbdPiece& p) const {
  if (p.op->kind() == NbdOp::Kind::kRead) return ReadWhat(p.srv_off, p.srv_len);
  return "block status of " + std::to_string(p.srv_len) + " bytes at " + std::to_string(p.srv_off);
}

}  // namespace clonefs
