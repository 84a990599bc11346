#include "sources/nbd_device.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "base/cancel.h"
#include "base/clock.h"
#include "base/log.h"
#include "sources/buffer_pool.h"
#include "sources/extent_cache.h"
#include "sources/http_validator.h"
#include "sources/nbd_connection.h"
#include "sources/nbd_request.h"
#include "sources/nbd_source_state.h"
#include "sources/nbdkit_child.h"
#include "sources/range_check.h"
#include "sources/release_gate.h"
#include "sources/source_wait.h"

namespace clonefs {
namespace {

constexpr uint64_t kBlockStatusSpan = uint64_t{1} << 30;  // asked per query
constexpr uint64_t kLibnbdMaxRequest = uint64_t{64} << 20;
// Without an advertised maximum, some servers drop requests above 32 MiB.
constexpr uint64_t kUnadvertisedMaxRequest = uint64_t{32} << 20;
// What one connection may keep in flight (a single-connection server
// still fills a 50 ms link at more than 1 GiB/s).
constexpr uint64_t kInflightBytesPerConnection = uint64_t{64} << 20;
// How long the connections after the first may take to connect, at least
// (and at least 4 times what the first took), at most the source timeout.
constexpr uint64_t kExtraConnectMinNs = 2'000'000'000;
// The first bytes of an http(s):// source kept for its RangeCheck.
constexpr size_t kRangeCheckHeadBytes = size_t{64} << 10;
// Read buffers kept for reuse: what the copier keeps in flight by default.
constexpr size_t kPooledBufferBytes = size_t{64} << 20;
// The identity re-check's interval right after a source error (a failed
// read may be a source that changed under a live URL).
constexpr uint64_t kRecheckAfterErrorNs = 2'000'000'000;
// A re-check that cannot read its samples (a range the source keeps
// failing) is logged once, and again only when the error changes or after
// this long: every 2 s it would rotate the rest of the log away in a day.
constexpr uint64_t kRecheckWarningEveryNs = 600'000'000'000;

uint64_t MonoNow() { return Clock::Real()->NowNanos(); }

class NbdDevice final : public Device {
 public:
  NbdDevice(std::shared_ptr<NbdSourceState> state,
            std::vector<std::unique_ptr<NbdConnection>> conns, const NbdServerInfo& info,
            uint64_t max_request, uint64_t recheck_ns)
      : state_(std::move(state)),
        conns_(std::move(conns)),
        size_(info.size),
        extents_(info.extents),
        min_block_(std::max<uint64_t>(info.min_block, 1)),
        max_request_(max_request),
        recheck_ns_(recheck_ns) {
    state_->SetRehome([this](std::unique_ptr<NbdPiece> p) { return Rehome(std::move(p)); });
  }

  ~NbdDevice() override {
    StopRechecks();
    StopConnections();
  }

  uint64_t Size() const override { return size_; }
  bool ReadOnly() const override { return true; }
  const std::string& Name() const override { return state_->display; }
  bool AsyncReads() const override { return true; }
  // With several connections the copier never uses the first (a user's).
  bool SharesReadQueue() const override { return conns_.size() == 1; }
  bool RemoteHoleQueries() const override { return true; }

  Status Read(uint64_t off, void* buf, size_t len) override {
    CLONEFS_RETURN_IF_ERROR(CheckRead(off, len));
    if (len == 0) return Status::OK();
    ReleaseGate::Use use(&gate_);
    if (!use.ok()) return ReleasedError();
    std::shared_ptr<NbdOp> op = StartRead(off, buf, len, nullptr);
    CLONEFS_RETURN_IF_ERROR(WaitSync(*op));
    if (!Suspect(off, static_cast<const uint8_t*>(buf), len)) return Status::OK();
    uint8_t probed = 0;
    CLONEFS_RETURN_IF_ERROR(
        WaitSync(*StartRead(range_check_->probe_offset(), &probed, 1, nullptr)));
    return range_check_->ProbeSaysIgnored(probed) ? RangeIgnored(off, len) : Status::OK();
  }

  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    Status s = CheckRead(off, len);
    if (!s.ok() || len == 0) {
      done(std::move(s));
      return;
    }
    ReleaseGate::Use use(&gate_);
    if (!use.ok()) {
      done(ReleasedError());
      return;
    }
    if (range_check_ != nullptr) {
      done = CheckedDone(off, static_cast<const uint8_t*>(buf), len, std::move(done));
    }
    StartRead(off, buf, len, std::move(done));
  }

  // Arms the check of an http(s):// source's answers (RangeCheck). Called
  // once, by OpenNbdSource, before the device is handed out.
  void SetRangeCheck(std::unique_ptr<const RangeCheck> check) { range_check_ = std::move(check); }

  // Gives the validator every request carries (http_validator.h), so that
  // the re-check asks the server for it again first. Called once, by
  // OpenNbdSource, before the device is handed out.
  void SetValidator(const SourceSpec& spec, HttpValidator validator) {
    validated_spec_ = spec;
    validator_ = std::move(validator);
  }

  void Release() override;

  Status Write(uint64_t off, const void*, size_t) override { return ReadOnlyError("write", off); }
  Status Flush() override { return ReadOnlyError("flush", 0); }
  Status Zero(uint64_t off, uint64_t, ZeroMode) override { return ReadOnlyError("zero", off); }

  Result<uint64_t> NextData(uint64_t off) override { return Next(off, /*want_hole=*/false); }
  Result<uint64_t> NextHole(uint64_t off) override { return Next(off, /*want_hole=*/true); }

  Status CheckUnchanged() override {
    if (state_->has_fatal()) {
      cache_.Clear();  // what the server said about its extents no longer holds
      return state_->fatal();
    }
    MaybeRecheck();
    return Status::OK();
  }

  void SetIdentityCheck(IdentityCheck check) override;

  int64_t ServerMtimeNs() const override { return validator_.LastModifiedNs(); }

  SourceHealth Health() const override;

 private:
  Status ReleasedError() const {
    return Status::IoError("source " + state_->display +
                               " was released when the clone became complete: it is no longer read",
                           EIO);
  }

  Status CheckRead(uint64_t off, uint64_t len) const {
    if (state_->has_fatal()) return state_->fatal();
    if (off > size_ || len > size_ - off) {
      return Status::InvalidArgument(ReadWhat(off, len) + " is beyond the end of " +
                                     state_->display + " (" + std::to_string(size_) + " bytes)");
    }
    return Status::OK();
  }

  // True if a piece of the answer `data` to a read of `len` bytes at `off`
  // looks like the file's start (RangeCheck; each piece was its own HTTP
  // request).
  bool Suspect(uint64_t off, const uint8_t* data, size_t len) const {
    if (range_check_ == nullptr) return false;
    const uint64_t begin = off / min_block_ * min_block_;
    for (uint64_t ps = begin; ps < off + len; ps += max_request_) {
      if (ps < off) continue;  // its first bytes are not in `data`
      const uint64_t pe = std::min<uint64_t>(ps + max_request_, off + len);
      if (range_check_->LooksLikeTheStart(ps, data + (ps - off), pe - ps)) return true;
    }
    return false;
  }

  // `done` after the RangeCheck: a suspect answer is only passed on once a
  // probe read says the server honours Range; else done gets RangeIgnored.
  // Runs on an I/O thread (the probe is issued from there, as done may).
  ReadDone CheckedDone(uint64_t off, const uint8_t* data, size_t len, ReadDone done) {
    return [this, off, data, len, done = std::move(done)](Status s) mutable {
      if (!s.ok() || !Suspect(off, data, len)) {
        done(std::move(s));
        return;
      }
      auto probed = std::make_shared<uint8_t>(0);
      StartRead(range_check_->probe_offset(), probed.get(), 1,
                [this, probed, off, len, done = std::move(done)](Status ps) mutable {
                  if (ps.ok() && range_check_->ProbeSaysIgnored(*probed)) {
                    ps = RangeIgnored(off, len);
                  }
                  done(std::move(ps));
                });
    };
  }

  Status RangeIgnored(uint64_t off, size_t len) const {
    std::string msg = "the web server answered the read of " + std::to_string(len) + " bytes at " +
                      std::to_string(off) + " from " + state_->display +
                      " with the file's first bytes: it ignores HTTP Range requests (answers "
                      "with the whole file); nothing is kept from such answers";
    state_->RecordError(msg);
    return Status::IoError(msg, EIO);
  }

  static Status ReadOnlyError(const char* op, uint64_t off) {
    return Status::Permission(std::string(op) + " at " + std::to_string(off) +
                              ": a remote source is read-only");
  }

  friend class PinnedView;

  // `pinned`: every piece goes to that connection (an identity check's
  // reads), tagged `verify_gen`; else they are spread (Pick).
  std::shared_ptr<NbdOp> StartRead(uint64_t off, void* buf, size_t len, ReadDone done,
                                   NbdConnection* pinned = nullptr, uint64_t verify_gen = 0);
  // `background`: a ReadAsync (the copier's); it never goes to the first
  // connection when there are several, which stays free for foreground
  // reads (SPEC §4: a user's read must not queue behind the copier's bytes
  // in flight).
  void Queue(std::unique_ptr<NbdPiece> piece, bool background, NbdConnection* pinned);
  NbdConnection* Pick(bool background);
  // NbdSourceState::Rehome: `piece` waits on a connection that is down.
  std::unique_ptr<NbdPiece> Rehome(std::unique_ptr<NbdPiece> piece);
  Status WaitSync(NbdOp& op);
  Result<uint64_t> Next(uint64_t off, bool want_hole);
  Result<Extent> ExtentAt(uint64_t off);
  // Starts the identity re-check on the probe thread if one is due (see
  // nbd_device.h, IDENTITY).
  void MaybeRecheck();
  // `all_up`: every connection was up when it was started; else only the
  // validator is asked for (a connection's nbdkit cannot open a replaced
  // file: its own HEAD carries the precondition too).
  void Recheck(bool all_up);
  // The validator asked for again: Mismatch naming the change, OK if it is
  // unchanged or there is none, the fetch's error if it failed.
  Status CheckValidator();
  // The re-check through a connection of its own: a spawned source's, and
  // an NBD source's when the check through the device's failed.
  Status RecheckFresh();
  // Shutting down (Release, the destructor): no new identity re-check, and
  // a fresh connection's one stopped; then every connection stopped (their
  // handles closed, spawned nbdkits ended), the identity check cleared and
  // the re-check thread joined. REQUIRES: StopRechecks before
  // StopConnections.
  void StopRechecks();
  void StopConnections();

  const std::shared_ptr<NbdSourceState> state_;
  const std::vector<std::unique_ptr<NbdConnection>> conns_;
  const uint64_t size_;
  const bool extents_;
  const uint64_t min_block_;
  const uint64_t max_request_;  // a multiple of min_block_
  const uint64_t recheck_ns_;   // 0: never re-checked without a reconnect
  std::atomic<size_t> next_conn_{0};
  ExtentCache cache_;
  std::unique_ptr<const RangeCheck> range_check_;  // set before use; http(s) only
  SourceSpec validated_spec_;                      // set before use; http(s) only
  HttpValidator validator_;                        // set before use; empty: none
  std::atomic<bool> stop_validator_{false};        // StopRechecks: a HEAD gives up
  const std::shared_ptr<BufferPool> buffers_ = std::make_shared<BufferPool>(kPooledBufferBytes);

  // The identity re-check. LOCK ORDER: probe_mu_ before NbdConnection's.
  std::mutex probe_mu_;
  IdentityCheck check_;                  // GUARDED_BY(probe_mu_); set once
  bool probe_running_ = false;           // GUARDED_BY(probe_mu_)
  bool closing_ = false;                 // GUARDED_BY(probe_mu_)
  uint64_t last_probe_ns_ = 0;           // GUARDED_BY(probe_mu_); monotonic
  uint64_t errors_at_probe_ = 0;         // GUARDED_BY(probe_mu_)
  NbdConnection* probe_conn_ = nullptr;  // GUARDED_BY(probe_mu_); a fresh one's
  std::thread probe_thread_;             // GUARDED_BY(probe_mu_)
  // The last "could not re-check" warning and when: the probe thread's own
  // (one runs at a time; each starts after the last was joined).
  std::string last_warning_;
  uint64_t last_warning_ns_ = 0;

  // Release: every use of the connections (a Read, a block status query,
  // a ReadAsync being queued) is a ReleaseGate::Use; Release closes the
  // gate (waiting for the uses in progress), then stops the connections.
  ReleaseGate gate_;
};

// The source as seen through one connection, for an identity check: every
// read goes to that connection, tagged with the reconnect's verify_gen.
// Size() is what that connection reported.
class PinnedView final : public Device {
 public:
  PinnedView(NbdDevice& dev, NbdConnection* conn, uint64_t verify_gen, uint64_t size)
      : dev_(dev), conn_(conn), gen_(verify_gen), size_(size) {}

  uint64_t Size() const override { return size_; }
  bool ReadOnly() const override { return true; }
  const std::string& Name() const override { return dev_.Name(); }
  bool AsyncReads() const override { return true; }
  Status Read(uint64_t off, void* buf, size_t len) override {
    CLONEFS_RETURN_IF_ERROR(CheckRange(off, len));
    if (len == 0) return Status::OK();
    return dev_.WaitSync(*dev_.StartRead(off, buf, len, nullptr, conn_, gen_));
  }
  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    Status s = CheckRange(off, len);
    if (!s.ok() || len == 0) {
      done(std::move(s));
      return;
    }
    dev_.StartRead(off, buf, len, std::move(done), conn_, gen_);
  }
  Status Write(uint64_t off, const void*, size_t) override {
    return NbdDevice::ReadOnlyError("write", off);
  }
  Status Flush() override { return NbdDevice::ReadOnlyError("flush", 0); }
  Status Zero(uint64_t off, uint64_t, ZeroMode) override {
    return NbdDevice::ReadOnlyError("zero", off);
  }
  Result<uint64_t> NextData(uint64_t off) override { return std::min(off, size_); }
  Result<uint64_t> NextHole(uint64_t) override { return size_; }

 private:
  Status CheckRange(uint64_t off, uint64_t len) const {
    if (off > size_ || len > size_ - off || size_ != dev_.Size()) {
      return Status::InvalidArgument(ReadWhat(off, len) + " is beyond the end of " + Name());
    }
    return dev_.CheckRead(off, len);
  }

  NbdDevice& dev_;
  NbdConnection* const conn_;
  const uint64_t gen_;
  const uint64_t size_;
};

void NbdDevice::SetIdentityCheck(IdentityCheck check) {
  {
    std::lock_guard<std::mutex> l(probe_mu_);
    check_ = check;
    last_probe_ns_ = MonoNow();  // the mount has just checked it
    errors_at_probe_ = state_->errors.load(std::memory_order_relaxed);
  }
  state_->SetVerifier([this, check](NbdConnection* conn, uint64_t gen, uint64_t size) {
    PinnedView view(*this, conn, gen, size);
    return check(view);
  });
}

void NbdDevice::MaybeRecheck() {
  if (recheck_ns_ == 0) return;
  bool all_up = true;
  for (const auto& c : conns_) all_up = all_up && c->up();
  // A reconnect checks the source anyway, unless requests carry a
  // validator: a replaced file then fails every reconnect.
  if (!all_up && validator_.empty()) return;
  const uint64_t now = MonoNow();
  std::lock_guard<std::mutex> l(probe_mu_);
  if (!check_ || probe_running_ || closing_) return;
  const uint64_t errors = state_->errors.load(std::memory_order_relaxed);
  const uint64_t interval =
      errors != errors_at_probe_ ? std::min(recheck_ns_, kRecheckAfterErrorNs) : recheck_ns_;
  if (now - last_probe_ns_ < interval) return;
  last_probe_ns_ = now;
  errors_at_probe_ = errors;
  probe_running_ = true;
  if (probe_thread_.joinable()) probe_thread_.join();  // it has ended: probe_running_ was false
  probe_thread_ = std::thread([this, all_up] { Recheck(all_up); });
}

Status NbdDevice::CheckValidator() {
  if (validator_.empty()) return Status::OK();
  CLONEFS_ASSIGN_OR_RETURN(
      HttpValidator now, FetchHttpValidator(validated_spec_, state_->timeout_ns, &stop_validator_));
  const std::string change = ValidatorChange(validator_, now);
  return change.empty() ? Status::OK() : Status::Mismatch(change);
}

void NbdDevice::Recheck(bool all_up) {
  IdentityCheck check;
  {
    std::lock_guard<std::mutex> l(probe_mu_);
    check = check_;
  }
  Status s = CheckValidator();
  if (!s.IsMismatch() && all_up) s = state_->target.spawned() ? RecheckFresh() : check(*this);
  if (!state_->target.spawned() && !s.ok() && !s.IsMismatch() &&
      s.code() != Status::Code::kAborted && !gate_.closed()) {
    // An NBD server tells the size only at the handshake: an export that
    // shrank under the live connections answers the check's reads past its
    // new end with errors that say nothing. A fresh connection sees the
    // size it has now.
    Status fresh = RecheckFresh();
    if (fresh.ok() || fresh.IsMismatch()) s = fresh;
  }
  if (s.IsMismatch() && !state_->has_fatal()) {
    std::string msg = "source " + state_->display + " changed under the live clone: " + s.message();
    CLONEFS_LOG_ERROR("%s; every read of it now fails", msg.c_str());
    state_->RecordError(msg);
    state_->SetFatal(Status::Mismatch(msg));
    cache_.Clear();
  } else if (all_up && !s.ok() && !s.IsMismatch() && s.code() != Status::Code::kAborted &&
             !gate_.closed()) {
    // (With a connection down, the reconnect says why.)
    const uint64_t now = MonoNow();
    if (s.message() != last_warning_ || now - last_warning_ns_ >= kRecheckWarningEveryNs) {
      CLONEFS_LOG_WARN("could not re-check that %s is unchanged: %s", state_->display.c_str(),
                       s.message().c_str());
      last_warning_ = s.message();
      last_warning_ns_ = now;
    }
  }
  std::lock_guard<std::mutex> l(probe_mu_);
  probe_running_ = false;
}

Status NbdDevice::RecheckFresh() {
  // A spawned nbdkit learns the size once, at its own start (the curl
  // plugin's HEAD), and an NBD server tells it once per connection: only a
  // new one sees a resource that shrank or grew under its URL.
  auto conn = std::make_unique<NbdConnection>(state_, static_cast<int>(conns_.size()));
  {
    std::lock_guard<std::mutex> l(probe_mu_);
    if (closing_) return Status::Aborted("closing");
    probe_conn_ = conn.get();
    conn->Start();
  }
  NbdServerInfo info;
  Status s = conn->WaitConnected(MonoNow() + state_->timeout_ns, &info);
  if (s.ok() && info.size != size_) {
    s = Status::Mismatch("its size changed from " + std::to_string(size_) + " to " +
                         std::to_string(info.size) + " bytes");
  } else if (s.ok()) {
    IdentityCheck check;
    {
      std::lock_guard<std::mutex> l(probe_mu_);
      check = check_;
    }
    PinnedView view(*this, conn.get(), 0, size_);
    s = check(view);
  }
  {
    std::lock_guard<std::mutex> l(probe_mu_);
    probe_conn_ = nullptr;
  }
  conn->Stop();
  return s;
}

std::shared_ptr<NbdOp> NbdDevice::StartRead(uint64_t off, void* buf, size_t len, ReadDone done,
                                            NbdConnection* pinned, uint64_t verify_gen) {
  // The server sees whole minimum blocks; the last one may be cut by the end.
  const uint64_t begin = off / min_block_ * min_block_;
  const uint64_t end = std::min(size_, (off + len + min_block_ - 1) / min_block_ * min_block_);
  const int pieces = static_cast<int>((end - begin + max_request_ - 1) / max_request_);
  const bool background = static_cast<bool>(done);  // ReadAsync, not Read
  // A ReadAsync that covers whole server blocks is read straight into the
  // caller's buffer (nbd_request.h, BUFFERS): its done waits for libnbd.
  const bool direct = background && begin == off && end == off + len;
  auto op = std::make_shared<NbdOp>(NbdOp::Kind::kRead, off, len, buf,
                                    MonoNow() + state_->timeout_ns, std::move(done), pieces,
                                    direct ? pieces : 0);
  for (uint64_t s = begin; s < end; s += max_request_) {
    const uint64_t e = std::min(s + max_request_, end);
    const uint64_t cs = std::max(s, off);
    const uint64_t ce = std::min<uint64_t>(e, off + len);
    auto p = std::make_unique<NbdPiece>();
    p->op = op;
    p->srv_off = s;
    p->srv_len = e - s;
    p->skip = cs - s;
    p->op_off = cs - off;
    p->copy_len = ce - cs;
    p->verify_gen = verify_gen;
    if (direct) {
      p->direct = static_cast<uint8_t*>(buf) + p->op_off;
    } else {
      p->buf = buffers_->Get(p->srv_len);
    }
    Queue(std::move(p), background, pinned);
  }
  return op;
}

void NbdDevice::Queue(std::unique_ptr<NbdPiece> piece, bool background, NbdConnection* pinned) {
  piece->pinned = pinned != nullptr;
  piece->background = background;
  NbdConnection* conn = pinned != nullptr ? pinned : Pick(background);
  std::unique_ptr<NbdPiece> back = conn->Submit(std::move(piece));
  if (back) back->op->Finish(Status::Aborted("source " + state_->display + " is being closed"));
}

// The connection with the fewest pieces outstanding, preferring connected
// ones; ties go round-robin. Background pieces skip the first connection
// when there are several, unless it is the only one up: a copier that
// waited for the others (a server back with fewer client slots than
// before) might wait for good.
NbdConnection* NbdDevice::Pick(bool background) {
  const size_t first = background && conns_.size() > 1 ? 1 : 0;
  const size_t n = conns_.size() - first;
  const size_t start = next_conn_.fetch_add(1, std::memory_order_relaxed);
  NbdConnection* best = nullptr;
  bool best_up = false;
  int best_load = 0;
  for (size_t i = 0; i < n; ++i) {
    NbdConnection* c = conns_[first + (start + i) % n].get();
    const bool up = c->up();
    const int load = c->outstanding();
    if (best == nullptr || (up && !best_up) || (up == best_up && load < best_load)) {
      best = c;
      best_up = up;
      best_load = load;
    }
  }
  if (first == 1 && !best_up && conns_[0]->up()) return conns_[0].get();
  return best;
}

std::unique_ptr<NbdPiece> NbdDevice::Rehome(std::unique_ptr<NbdPiece> piece) {
  NbdConnection* conn = Pick(piece->background);
  if (conn == piece->conn || !conn->up()) return piece;
  return conn->Submit(std::move(piece));
}

Status NbdDevice::WaitSync(NbdOp& op) {
  return op.Wait(
      CurrentCancelToken(),
      [&] { return SourceTimedOut(op.What(), state_->display, state_->timeout_ns); },
      [&] { return SourceInterrupted(op.What(), state_->display); });
}

Result<uint64_t> NbdDevice::Next(uint64_t off, bool want_hole) {
  if (off >= size_) return size_;
  if (!extents_) return want_hole ? size_ : off;
  while (off < size_) {
    CLONEFS_ASSIGN_OR_RETURN(Extent e, ExtentAt(off));
    if (e.hole == want_hole) return off;
    off = e.end;
  }
  return size_;
}

Result<Extent> NbdDevice::ExtentAt(uint64_t off) {
  if (state_->has_fatal()) return state_->fatal();
  if (std::optional<Extent> e = cache_.Find(off)) return *e;
  ReleaseGate::Use use(&gate_);
  if (!use.ok()) return ReleasedError();
  const uint64_t begin = off / min_block_ * min_block_;
  const uint64_t len = std::min(kBlockStatusSpan, size_ - begin);
  auto op = std::make_shared<NbdOp>(NbdOp::Kind::kBlockStatus, begin, len, nullptr,
                                    MonoNow() + state_->timeout_ns, nullptr, 1);
  auto p = std::make_unique<NbdPiece>();
  p->op = op;
  p->srv_off = begin;
  p->srv_len = len;
  Queue(std::move(p), /*background=*/false, nullptr);
  CLONEFS_RETURN_IF_ERROR(WaitSync(*op));
  std::vector<Extent> extents = op->TakeExtents();
  for (Extent& e : extents) e.end = std::min(e.end, size_);
  cache_.Insert(extents);
  if (std::optional<Extent> e = cache_.Find(off)) return *e;
  return Status::IoError("block status at " + std::to_string(begin) + " from " + state_->display +
                         " described no extent at " + std::to_string(off));
}

void NbdDevice::StopRechecks() {
  std::lock_guard<std::mutex> l(probe_mu_);
  closing_ = true;  // no new identity re-check
  stop_validator_ = true;
  if (probe_conn_ != nullptr) probe_conn_->Stop();
}

void NbdDevice::StopConnections() {
  state_->SetRehome(nullptr);        // (a call in progress ends before Stop joins)
  for (auto& c : conns_) c->Stop();  // fails the reads of a running re-check
  state_->SetVerifier(nullptr);      // (Stop joined the connections' checks)
  std::thread probe;
  {
    std::lock_guard<std::mutex> l(probe_mu_);  // closing_: no new one starts
    probe = std::move(probe_thread_);
  }
  if (probe.joinable()) probe.join();  // it takes probe_mu_ as it ends
}

void NbdDevice::Release() {
  if (gate_.closed()) return;
  StopRechecks();
  // Reads in progress end by their deadline at the latest.
  if (!gate_.Close()) return;
  // The identity check stays set until then: a connection that reconnects
  // while reads end is still checked before it serves them.
  StopConnections();
  CLONEFS_LOG_INFO("source %s released: the clone is complete, its connections are closed",
                   state_->display.c_str());
}

SourceHealth NbdDevice::Health() const {
  SourceHealth h;
  uint64_t reconnecting = 0, stalled = 0, recovered = 0;
  bool any_up = false;
  for (const auto& c : conns_) {
    any_up = any_up || c->up();
    NbdConnection::HealthView v = c->health();
    // Down since the last of them dropped: until then the source was up.
    reconnecting = std::max(reconnecting, v.reconnecting_since_unix_ns);
    if (v.stalled_since_unix_ns != 0 && (stalled == 0 || v.stalled_since_unix_ns < stalled)) {
      stalled = v.stalled_since_unix_ns;
    }
    recovered = std::max(recovered, v.recovered_unix_ns);
    if (v.oldest_sent_unix_ns != 0 &&
        (h.oldest_request_unix_ns == 0 || v.oldest_sent_unix_ns < h.oldest_request_unix_ns)) {
      h.oldest_request_unix_ns = v.oldest_sent_unix_ns;
    }
  }
  if (gate_.closed()) {
    h.state = SourceHealth::State::kReleased;
    h.since_unix_ns = gate_.closed_unix_ns();
    h.oldest_request_unix_ns = 0;
  } else if (state_->has_fatal()) {
    // The connections may be up, but nothing they serve counts any more.
    h.state = SourceHealth::State::kChanged;
    h.since_unix_ns = state_->fatal_unix_ns();
    h.change = state_->fatal().message();
  } else if (reconnecting != 0 && !any_up) {
    // A connection that is up serves every piece (Rehome): the source is
    // down only when none is.
    h.state = SourceHealth::State::kReconnecting;
    h.since_unix_ns = reconnecting;
  } else if (stalled != 0) {
    h.state = SourceHealth::State::kStalled;
    h.since_unix_ns = stalled;
  } else {
    h.since_unix_ns = recovered;
  }
  state_->LastError(&h.last_error, &h.last_error_unix_ns);
  h.errors = state_->errors.load(std::memory_order_relaxed);
  h.retries = state_->retries.load(std::memory_order_relaxed);
  h.reconnects = state_->reconnects.load(std::memory_order_relaxed);
  h.requests = state_->requests.load(std::memory_order_relaxed);
  h.bytes_read = state_->bytes_read.load(std::memory_order_relaxed);
  h.guard = validator_.Precondition();
  return h;
}

std::string NbdkitBinary(const NbdSourceOptions& options) {
  if (!options.nbdkit_path.empty()) return options.nbdkit_path;
  const char* env = std::getenv("CLONEFS_NBDKIT");
  return env != nullptr && *env != '\0' ? env : "nbdkit";
}

// True if `binary` names an executable (looked up in PATH without a '/').
bool Executable(const std::string& binary) {
  if (binary.find('/') != std::string::npos) return ::access(binary.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t pos = 0;
  while (pos <= dirs.size()) {
    size_t colon = dirs.find(':', pos);
    if (colon == std::string::npos) colon = dirs.size();
    std::string dir = dirs.substr(pos, colon - pos);
    if (::access(((dir.empty() ? "." : dir) + "/" + binary).c_str(), X_OK) == 0) return true;
    pos = colon + 1;
  }
  return false;
}

// The validator of an http(s):// source (http_validator.h), or none, with a
// log line saying which and what it guards against. Errors: IoError
// (ETIMEDOUT) if the server did not answer within the source timeout:
// nbdkit would wait for it as long again.
Result<HttpValidator> LearnValidator(const SourceSpec& spec, const NbdSourceOptions& options) {
  Result<HttpValidator> v = FetchHttpValidator(spec, options.timeout_ns);
  if (!v.ok() && v.status().sys_errno() == ETIMEDOUT) {
    return Status::IoError("cannot connect to " + spec.display + ": no answer within " +
                               FormatTimeout(options.timeout_ns) + " (" + v.status().message() +
                               "); check that the server is running and reachable from here, "
                               "and the URI is right, or give a longer --source-timeout",
                           ETIMEDOUT);
  }
  if (!v.ok()) {
    // Refused, not found...: nbdkit's own attempt says why, with advice.
    CLONEFS_LOG_WARN("%s; a file replaced under the URL is found only by the identity re-checks",
                     v.status().message().c_str());
    return HttpValidator{};
  }
  if (v->empty()) {
    CLONEFS_LOG_WARN(
        "the web server gives neither a strong ETag nor a Last-Modified date for %s: a file "
        "replaced under the URL is found only by the identity re-checks",
        spec.display.c_str());
  } else {
    CLONEFS_LOG_INFO(
        "every request for %s carries '%s': the web server refuses it if the file "
        "under the URL is replaced",
        spec.display.c_str(), v->Precondition().c_str());
  }
  return *v;
}

Status CannotConnect(const SourceSpec& spec, const Status& why, const std::string& nbdkit_said) {
  std::string msg = "cannot connect to " + spec.display + ": ";
  std::string advice = "check that the server is running and the URI is right";
  if (!spec.nbdkit_argv.empty()) {
    // nbdkit says why its plugin failed on its standard error; libnbd only
    // sees the NBD side ("no export", "disconnected").
    const char* plugin = spec.kind == SourceSpec::Kind::kSsh ? "ssh" : "curl";
    msg += std::string("nbdkit's ") + plugin + " plugin could not open it: ";
    if (nbdkit_said.empty()) {
      msg += "nbdkit gave no reason (libnbd: " + why.message() + ")";
    } else {
      msg += nbdkit_said + " (libnbd: " + why.message() + ")";
      if (spec.kind == SourceSpec::Kind::kHttp) {
        std::string a = NbdkitAdvice(nbdkit_said);
        if (!a.empty()) advice = a;
      }
    }
  } else {
    msg += why.message();
  }
  return Status::IoError(msg + "; " + advice, why.sys_errno());
}

}  // namespace

Result<std::unique_ptr<Device>> OpenNbdSource(const SourceSpec& spec,
                                              const NbdSourceOptions& options) {
  if (!spec.IsRemote()) {
    return Status::InvalidArgument("'" + spec.display + "' is a file, not a remote source");
  }
  NbdTarget target;
  if (spec.nbdkit_argv.empty()) {
    target.uri = spec.uri;
  } else {
    target.argv = spec.nbdkit_argv;
    target.password = spec.nbdkit_password;
    target.argv[0] = NbdkitBinary(options);
    if (!Executable(target.argv[0])) {
      return Status::NotFound("cannot open " + spec.display + ": the nbdkit program ('" +
                              target.argv[0] +
                              "') was not found; install nbdkit or set CLONEFS_NBDKIT");
    }
    // The retry filter gives up about when clonefs's own deadline passes.
    const uint64_t seconds = std::max<uint64_t>(1, options.timeout_ns / 1'000'000'000);
    target.argv.push_back("retry-exponential=no");
    target.argv.push_back("retry-delay=1");
    target.argv.push_back("retries=" + std::to_string(seconds));
  }
  HttpValidator validator;
  if (spec.kind == SourceSpec::Kind::kHttp) {
    CLONEFS_ASSIGN_OR_RETURN(validator, LearnValidator(spec, options));
    if (!validator.empty()) target.argv.push_back("header=" + validator.Precondition());
  }
  auto state = std::make_shared<NbdSourceState>(spec.display, target, options.timeout_ns);

  std::vector<std::unique_ptr<NbdConnection>> conns;
  conns.push_back(std::make_unique<NbdConnection>(state, 0));
  const uint64_t start = MonoNow();
  conns[0]->Start();
  NbdServerInfo info;
  std::string said;
  Status s = conns[0]->WaitConnected(start + options.timeout_ns, &info, &said);
  if (!s.ok()) return CannotConnect(spec, s, said);

  int n = target.spawned() ? options.spawned_connections
                           : (info.multi_conn ? options.max_connections : 1);
  n = std::max(n, 1);
  std::vector<std::unique_ptr<NbdConnection>> extra;
  for (int i = 1; i < n; ++i) {
    extra.push_back(std::make_unique<NbdConnection>(state, i));
    extra.back()->Start();
  }
  // The connections after the first are a bonus: a server that offers
  // multi-conn may still limit its clients (qemu-nbd --shared=2 leaves the
  // others in its listen backlog, nbdkit's limit filter refuses them). The
  // clone goes on with those that connected in time.
  const uint64_t first_ns = MonoNow() - start;
  const uint64_t wait_ns = std::min(options.timeout_ns, std::max(kExtraConnectMinNs, 4 * first_ns));
  const uint64_t deadline = MonoNow() + wait_ns;
  std::string refused;
  for (auto& c : extra) {
    NbdServerInfo other;
    s = c->WaitConnected(deadline, &other, &said);
    if (!s.ok()) {
      c->Stop();
      if (refused.empty()) {
        refused =
            s.sys_errno() == ETIMEDOUT ? "no answer within " + FormatTimeout(wait_ns) : s.message();
        if (!said.empty()) refused += " (" + said + ")";
      }
      continue;
    }
    if (other.size != info.size) {
      return Status::IoError("connections to " + spec.display +
                             " disagree about its size: " + std::to_string(info.size) + " and " +
                             std::to_string(other.size) + " bytes");
    }
    conns.push_back(std::move(c));
  }
  if (!refused.empty()) {
    CLONEFS_LOG_WARN("%s: using %zu of %d connections: the server did not take more: %s",
                     spec.display.c_str(), conns.size(), n, refused.c_str());
  }

  const uint64_t min_block = std::max<uint64_t>(info.min_block, 1);
  uint64_t max_request =
      target.spawned() ? options.spawned_request_bytes : options.max_request_bytes;
  max_request = std::min<uint64_t>(max_request, kLibnbdMaxRequest);
  max_request =
      std::min(max_request, info.max_block != 0 ? info.max_block : kUnadvertisedMaxRequest);
  max_request = std::max(min_block, max_request / min_block * min_block);
  // Enough pieces per connection for kInflightBytesPerConnection, and at
  // least libnbd(3)'s suggested 64.
  state->max_inflight.store(std::max<uint64_t>(64, kInflightBytesPerConnection / max_request));
  auto dev = std::make_unique<NbdDevice>(state, std::move(conns), info, max_request,
                                         options.identity_recheck_ns);
  if (spec.kind == SourceSpec::Kind::kHttp && info.size > 1) {
    std::vector<uint8_t> head(std::min<uint64_t>(info.size, kRangeCheckHeadBytes));
    CLONEFS_RETURN_IF_ERROR(dev->Read(0, head.data(), head.size()));
    dev->SetRangeCheck(std::make_unique<const RangeCheck>(std::move(head)));
  }
  if (!validator.empty()) dev->SetValidator(spec, std::move(validator));
  return std::unique_ptr<Device>(std::move(dev));
}

}  // namespace clonefs
