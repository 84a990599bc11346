#include "sources/timed_device.h"

#include <atomic>
#include <memory>
#include <mutex>

#include "base/cancel.h"
#include "base/clock.h"
#include "base/log.h"
#include "sources/read_pool.h"
#include "sources/release_gate.h"
#include "sources/source_wait.h"

namespace clonefs {
namespace {

// Monotonic ns -> wall-clock ns since the Unix epoch.
uint64_t MonoToWall(uint64_t mono_ns) {
  const uint64_t now_mono = Clock::Real()->NowNanos();
  const uint64_t now_wall = WallNowNanos();
  return now_wall - (now_mono - mono_ns);
}

class TimedDevice final : public Device {
 public:
  TimedDevice(std::shared_ptr<Device> inner, const TimedSourceOptions& options)
      : inner_(inner),
        size_(inner->Size()),
        read_only_(inner->ReadOnly()),
        name_(inner->Name()),
        timeout_ns_(options.timeout_ns),
        recheck_ns_(options.identity_recheck_ns),
        pool_(ReadPool::Create(std::move(inner), options.threads)) {}

  ~TimedDevice() override {
    if (pool_ != nullptr) pool_->Shutdown();  // else Release did
  }

  uint64_t Size() const override { return size_; }
  bool ReadOnly() const override { return read_only_; }
  const std::string& Name() const override { return name_; }
  int SpliceFd() const override {
    ReleaseGate::Use use(&gate_);
    return use.ok() ? inner_->SpliceFd() : -1;
  }
  bool AsyncReads() const override { return true; }

  Status Read(uint64_t off, void* buf, size_t len) override {
    Forget();
    CLONEFS_RETURN_IF_ERROR(CheckRange(off, len));
    if (len == 0) return Status::OK();
    ReleaseGate::Use use(&gate_);
    if (!use.ok()) return ReleasedError();
    Status checked;
    Status s = pool_->Read(off, buf, len, timeout_ns_, CurrentCancelToken(), name_, &checked);
    if (s.ok()) {
      last_check_.device = id_;
      last_check_.status = std::move(checked);
    }
    return s;
  }

  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    Forget();
    Status s = CheckRange(off, len);
    if (!s.ok() || len == 0) {
      done(std::move(s));
      return;
    }
    ReleaseGate::Use use(&gate_);
    if (!use.ok()) {
      done(ReleasedError());
      return;
    }
    pool_->ReadAsync(off, buf, len, std::move(done));
  }

  // The pool's threads and descriptor are closed once every use of them in
  // progress has ended (a Read waits at most the timeout); a pool thread
  // left behind in a stuck read closes the file when that read returns.
  void Release() override {
    if (!gate_.Close()) return;
    pool_->Shutdown();
    pool_.reset();
    inner_.reset();
    CLONEFS_LOG_INFO("source %s released: the clone is complete, the source is closed",
                     name_.c_str());
  }

  Status Write(uint64_t off, const void* buf, size_t len) override {
    ReleaseGate::Use use(&gate_);
    return use.ok() ? inner_->Write(off, buf, len) : ReleasedError();
  }
  Status Flush() override {
    ReleaseGate::Use use(&gate_);
    return use.ok() ? inner_->Flush() : ReleasedError();
  }
  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    ReleaseGate::Use use(&gate_);
    return use.ok() ? inner_->Zero(off, len, mode) : ReleasedError();
  }
  Result<uint64_t> NextData(uint64_t off) override { return Seek(off, /*hole=*/false); }
  Result<uint64_t> NextHole(uint64_t off) override { return Seek(off, /*hole=*/true); }
  Status CheckUnchanged() override {
    if (last_check_.device == id_) {  // made by this thread's read, just now
      Status s = std::move(last_check_.status);
      Forget();
      return s;
    }
    ReleaseGate::Use use(&gate_);
    if (!use.ok()) return Status::OK();  // no longer read: nothing to look at
    CLONEFS_RETURN_IF_ERROR(pool_->Call([](Device& inner) { return inner.CheckUnchanged(); },
                                        timeout_ns_, CurrentCancelToken(), name_,
                                        "the check that it is unchanged"));
    return MaybeCheckIdentity();
  }

  void SetIdentityCheck(IdentityCheck check) override {
    std::lock_guard<std::mutex> l(check_mu_);
    check_ = std::make_shared<IdentityCheck>(std::move(check));
    last_check_ns_ = Clock::Real()->NowNanos();  // the mount has just checked it
  }

  SourceHealth Health() const override {
    ReleaseGate::Use use(&gate_);
    if (!use.ok()) {
      SourceHealth released;
      released.state = SourceHealth::State::kReleased;
      released.since_unix_ns = gate_.closed_unix_ns();
      return released;
    }
    SourceHealth h = inner_->Health();
    uint64_t stalled = 0, recovered = 0, oldest = 0;
    pool_->Stall(timeout_ns_, &stalled, &recovered, &oldest);
    if (oldest != 0) h.oldest_request_unix_ns = MonoToWall(oldest);
    if (stalled != 0) {
      h.state = SourceHealth::State::kStalled;
      h.since_unix_ns = MonoToWall(stalled);
    } else if (recovered != 0 && h.up()) {
      h.since_unix_ns = MonoToWall(recovered);
    }
    return h;
  }

 private:
  // The unchanged check a Read's job made after reading, for the next
  // CheckUnchanged on the same thread (see timed_device.h).
  struct LastCheck {
    uint64_t device = 0;  // whose (id_); 0: none
    Status status;
  };
  static thread_local LastCheck last_check_;
  static std::atomic<uint64_t> next_id_;
  void Forget() {
    if (last_check_.device == id_) last_check_ = LastCheck();
  }

  // CONTENT (timed_device.h): the identity check, when one is due.
  // REQUIRES: a ReleaseGate::Use held.
  Status MaybeCheckIdentity() {
    std::shared_ptr<IdentityCheck> check;
    {
      std::lock_guard<std::mutex> l(check_mu_);
      if (!changed_.ok()) return changed_;
      const uint64_t now = Clock::Real()->NowNanos();
      if (!check_ || checking_ || now - last_check_ns_ < recheck_ns_) return Status::OK();
      checking_ = true;
      last_check_ns_ = now;
      check = check_;
    }
    Status s = pool_->Call([check](Device& inner) { return (*check)(inner); }, timeout_ns_,
                           CurrentCancelToken(), name_, "the check that its content is unchanged");
    std::lock_guard<std::mutex> l(check_mu_);
    checking_ = false;
    if (s.IsMismatch()) {
      changed_ = Status::Mismatch(name_ + " was rewritten: " + s.message());
      return changed_;
    }
    if (!s.ok()) {
      CLONEFS_LOG_WARN("could not re-check that %s is unchanged: %s", name_.c_str(),
                       s.message().c_str());
    }
    return Status::OK();
  }

  // NextData / NextHole on the pool, under the timeout.
  Result<uint64_t> Seek(uint64_t off, bool hole) {
    Forget();
    ReleaseGate::Use use(&gate_);
    if (!use.ok()) return ReleasedError();
    auto found = std::make_shared<uint64_t>(0);  // the call may outlive this frame
    Status s = pool_->Call(
        [found, off, hole](Device& inner) -> Status {
          Result<uint64_t> r = hole ? inner.NextHole(off) : inner.NextData(off);
          if (!r.ok()) return r.status();
          *found = *r;
          return Status::OK();
        },
        timeout_ns_, CurrentCancelToken(), name_,
        std::string(hole ? "the search for a hole" : "the search for data") + " at " +
            std::to_string(off));
    if (!s.ok()) return s;
    return *found;
  }

  Status CheckRange(uint64_t off, uint64_t len) const {
    if (off > size_ || len > size_ - off) {
      return Status::InvalidArgument(ReadWhat(off, len) + " is beyond the end of " + name_ + " (" +
                                     std::to_string(size_) + " bytes)");
    }
    return Status::OK();
  }

  Status ReleasedError() const {
    return Status::IoError(
        "source " + name_ + " was released when the clone became complete: it is no longer read",
        EIO);
  }

  // Reset by Release, once no use is in progress (gate_); every other
  // reader holds a ReleaseGate::Use.
  std::shared_ptr<Device> inner_;
  const uint64_t size_;
  const bool read_only_;
  const std::string name_;
  const uint64_t timeout_ns_;
  const uint64_t recheck_ns_;
  std::shared_ptr<ReadPool> pool_;
  // The identity check (CONTENT), its schedule and its sticky finding.
  std::mutex check_mu_;
  std::shared_ptr<IdentityCheck> check_;  // GUARDED_BY(check_mu_)
  uint64_t last_check_ns_ = 0;            // GUARDED_BY(check_mu_)
  bool checking_ = false;                 // GUARDED_BY(check_mu_)
  Status changed_;                        // GUARDED_BY(check_mu_)
  mutable ReleaseGate gate_;
  // Unique for the process's life (an address may be reused by a later
  // device; a thread's LastCheck must never answer for it).
  const uint64_t id_ = ++next_id_;
};

thread_local TimedDevice::LastCheck TimedDevice::last_check_;
std::atomic<uint64_t> TimedDevice::next_id_{0};

}  // namespace

std::unique_ptr<Device> MakeTimedSource(std::unique_ptr<Device> inner, TimedSourceOptions options) {
  return std::make_unique<TimedDevice>(std::shared_ptr<Device>(std::move(inner)), options);
}

}  // namespace clonefs
