#include "devices/fault_device.h"

#include <atomic>
#include <mutex>
#include <vector>

#include "base/log.h"
#include "devices/write_overlay.h"

namespace clonefs {

namespace {

using Hook = std::function<void(DeviceOp, uint64_t, uint64_t)>;

// STRUCTURE: rules_ and hook_ apply in both modes; overlay_ exists only when
// volatile (power-loss modelling), and then every data operation goes through
// it under mu_. Without the overlay, operations pass straight through to
// base_ after the rule check, keeping the base's concurrency.
//
// THREAD SAFETY: rules_mu_ guards rules_ and change_; hook_mu_ guards hook_ (the hook is
// copied out and called with no lock held, so it may call back into this
// device, e.g. Crash()); mu_ guards overlay_ and serializes volatile
// operations. LOCK ORDER: never more than one of these mutexes at a time.
class FaultDeviceImpl final : public FaultDevice {
 public:
  FaultDeviceImpl(std::shared_ptr<Device> base, bool is_volatile)
      : base_(std::move(base)),
        overlay_(is_volatile ? std::make_unique<WriteOverlay>(base_.get()) : nullptr) {}

  uint64_t Size() const override { return base_->Size(); }
  bool ReadOnly() const override { return base_->ReadOnly(); }
  const std::string& Name() const override { return base_->Name(); }
  // No splicing: it would bypass the rules and the overlay.
  int SpliceFd() const override { return -1; }
  // The page-cache hint reaches a non-volatile base; the overlay has no cache.
  bool PageCached() const override { return !overlay_ && base_->PageCached(); }
  void DropCached(uint64_t off, uint64_t len) override {
    if (!overlay_) base_->DropCached(off, len);
  }

  Status Read(uint64_t off, void* buf, size_t len) override {
    CLONEFS_RETURN_IF_ERROR(Enter(DeviceOp::kRead, off, len));
    const uint64_t shrunk = shrunk_to_.load();
    if (len != 0 && off + len > shrunk) {
      return Status::IoError("short read from " + Name() + " at " + std::to_string(off) +
                                 ": end of file at " + std::to_string(shrunk) +
                                 " (did the file shrink?)",
                             5 /*EIO*/);
    }
    if (!overlay_) return base_->Read(off, buf, len);
    std::lock_guard lock(mu_);
    CLONEFS_RETURN_IF_ERROR(base_->Read(off, buf, len));
    overlay_->Apply(off, static_cast<uint8_t*>(buf), len);
    return Status::OK();
  }

  Status Write(uint64_t off, const void* buf, size_t len) override {
    return AnyWrite(off, buf, len, /*cached=*/false);
  }
  // The same rules as Write (a cached write is a write); the volatile model
  // keeps it aside like any other write until Flush.
  Status WriteCached(uint64_t off, const void* buf, size_t len) override {
    return AnyWrite(off, buf, len, /*cached=*/true);
  }

  Status Flush() override {
    CLONEFS_RETURN_IF_ERROR(Enter(DeviceOp::kFlush, 0, Size()));
    if (!overlay_) return base_->Flush();
    std::lock_guard lock(mu_);
    CLONEFS_RETURN_IF_ERROR(overlay_->ReplayOntoBase());
    return base_->Flush();
  }

  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    CLONEFS_RETURN_IF_ERROR(Enter(DeviceOp::kZero, off, len));
    if (!overlay_) return base_->Zero(off, len, mode);
    CLONEFS_RETURN_IF_ERROR(CheckWrite("zero", off, len));
    std::lock_guard lock(mu_);
    return overlay_->AddZero(off, len, mode);
  }

  // With pending writes the base's allocation is stale: answer "all data".
  Result<uint64_t> NextData(uint64_t off) override {
    if (off >= shrunk_to_.load()) return Size();  // the careless answer: "a hole"
    if (overlay_) {
      std::lock_guard lock(mu_);
      if (!overlay_->empty()) return std::min(off, Size());
    }
    return base_->NextData(off);
  }
  Result<uint64_t> NextHole(uint64_t off) override {
    const uint64_t shrunk = shrunk_to_.load();
    if (off >= shrunk) return off;
    if (overlay_) {
      std::lock_guard lock(mu_);
      if (!overlay_->empty()) return std::min(Size(), shrunk);
    }
    CLONEFS_ASSIGN_OR_RETURN(uint64_t h, base_->NextHole(off));
    return std::min(h, shrunk);
  }

  Status CheckUnchanged() override {
    const uint64_t shrunk = shrunk_to_.load();
    if (shrunk != UINT64_MAX) {
      return Status::Mismatch(Name() + " shrank from " + std::to_string(Size()) + " to " +
                              std::to_string(shrunk) + " bytes");
    }
    {
      std::lock_guard lock(rules_mu_);
      if (!change_.ok()) return change_;
    }
    return base_->CheckUnchanged();
  }
  Result<uint64_t> CutGrowth() override { return base_->CutGrowth(); }
  void SimulateChange(Status change) override {
    std::lock_guard lock(rules_mu_);
    change_ = std::move(change);
  }
  void SimulateShrink(uint64_t new_size) override { shrunk_to_.store(new_size); }

  void AddRule(const FaultRule& rule) override {
    std::lock_guard lock(rules_mu_);
    rules_.push_back(rule);
  }
  void ClearRules() override {
    std::lock_guard lock(rules_mu_);
    rules_.clear();
  }
  uint64_t InjectedFailures() const override { return injected_.load(); }

  void Crash() override {
    if (!overlay_) return;
    std::lock_guard lock(mu_);
    overlay_->Clear();
  }
  void CrashKeepRandom(uint64_t seed) override {
    if (!overlay_) return;
    std::lock_guard lock(mu_);
    Status s = overlay_->ApplyRandomSubset(seed);
    if (!s.ok()) CLONEFS_LOG_ERROR("crash model: %s", s.ToString().c_str());
  }
  uint64_t UnsyncedBytes() const override {
    if (!overlay_) return 0;
    std::lock_guard lock(mu_);
    return overlay_->pending_bytes();
  }

  void SetHook(Hook hook) override {
    std::lock_guard lock(hook_mu_);
    hook_ = hook ? std::make_shared<const Hook>(std::move(hook)) : nullptr;
  }

 private:
  // Write and WriteCached: the rules, then the base's own call of the same
  // kind, or the overlay.
  Status AnyWrite(uint64_t off, const void* buf, size_t len, bool cached) {
    CLONEFS_RETURN_IF_ERROR(Enter(DeviceOp::kWrite, off, len));
    if (!overlay_) return cached ? base_->WriteCached(off, buf, len) : base_->Write(off, buf, len);
    CLONEFS_RETURN_IF_ERROR(CheckWrite("write", off, len));
    std::lock_guard lock(mu_);
    return overlay_->AddWrite(off, static_cast<const uint8_t*>(buf), len);
  }

  // Calls the hook, then fails the call if a rule matches.
  Status Enter(DeviceOp op, uint64_t off, uint64_t len) {
    std::shared_ptr<const Hook> hook;
    {
      std::lock_guard lock(hook_mu_);
      hook = hook_;
    }
    if (hook) (*hook)(op, off, len);
    std::lock_guard lock(rules_mu_);
    for (FaultRule& r : rules_) {
      if (r.count == 0 || (r.op != DeviceOp::kAny && r.op != op)) continue;
      uint64_t rule_end = r.offset + std::min(r.length, UINT64_MAX - r.offset);
      uint64_t call_end = off + std::max<uint64_t>(1, std::min(len, UINT64_MAX - off));
      if (off >= rule_end || r.offset >= call_end) continue;
      if (r.count != UINT64_MAX) r.count--;
      injected_.fetch_add(1);
      return r.error;
    }
    return Status::OK();
  }

  // The checks the base would make, made before anything is kept aside.
  Status CheckWrite(const char* op, uint64_t off, uint64_t len) const {
    if (base_->ReadOnly()) {
      return Status::Permission(std::string(op) + " " + Name() + ": the device is read-only");
    }
    if (off > Size() || len > Size() - off) {
      return Status::InvalidArgument(std::string(op) + " of " + std::to_string(len) + " bytes at " +
                                     std::to_string(off) + " is beyond the end of " + Name() +
                                     " (" + std::to_string(Size()) + " bytes)");
    }
    return Status::OK();
  }

  const std::shared_ptr<Device> base_;
  mutable std::mutex mu_;
  const std::unique_ptr<WriteOverlay> overlay_;  // GUARDED_BY(mu_); null unless volatile
  std::mutex rules_mu_;
  std::vector<FaultRule> rules_;  // GUARDED_BY(rules_mu_)
  Status change_;                 // GUARDED_BY(rules_mu_); SimulateChange
  std::atomic<uint64_t> shrunk_to_{UINT64_MAX};  // SimulateShrink; UINT64_MAX: not shrunk
  std::mutex hook_mu_;
  std::shared_ptr<const Hook> hook_;  // GUARDED_BY(hook_mu_)
  std::atomic<uint64_t> injected_{0};
};

}  // namespace

std::unique_ptr<FaultDevice> FaultDevice::Wrap(std::shared_ptr<Device> base) {
  return std::make_unique<FaultDeviceImpl>(std::move(base), false);
}

std::unique_ptr<FaultDevice> FaultDevice::WrapVolatile(std::shared_ptr<Device> base) {
  return std::make_unique<FaultDeviceImpl>(std::move(base), true);
}

}  // namespace clonefs
