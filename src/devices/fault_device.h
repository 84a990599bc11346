// FaultDevice: wraps a Device to inject errors and to model power loss.
//
// Errors: rules match an operation and a byte range and fail matching calls
// with a given Status (optionally only the first `count` matches).
//
// Power loss: the wrapper keeps every write (and zero) that has not been
// followed by a successful Flush aside, in an overlay; reads see the overlay.
// Flush applies the overlay to the wrapped ("durable") device. Crash()
// discards the overlay (everything unsynced is lost), or with
// CrashKeepRandom(seed) keeps a random subset of unsynced writes at 512-byte
// sector granularity (a disk may persist some unsynced data, in any order).
//
// THREAD SAFETY: all methods are safe to call concurrently.
#pragma once

#include <functional>

#include "devices/device.h"

namespace clonefs {

enum class DeviceOp { kRead, kWrite, kFlush, kZero, kAny };

struct FaultRule {
  DeviceOp op = DeviceOp::kAny;
  uint64_t offset = 0;                 // range the call must overlap
  uint64_t length = UINT64_MAX;
  Status error = Status::IoError("injected fault", 5 /*EIO*/);
  uint64_t count = UINT64_MAX;         // fail this many matching calls, then stop
};

class FaultDevice : public Device {
 public:
  // Error rules only; writes pass through to `base` immediately.
  static std::unique_ptr<FaultDevice> Wrap(std::shared_ptr<Device> base);
  // Error rules and power-loss modelling (unsynced writes kept aside).
  static std::unique_ptr<FaultDevice> WrapVolatile(std::shared_ptr<Device> base);

  virtual void AddRule(const FaultRule& rule) = 0;
  virtual void ClearRules() = 0;
  // Number of calls that have failed because of a rule.
  virtual uint64_t InjectedFailures() const = 0;

  // Power loss (WrapVolatile only): drop all / keep a random subset of
  // unsynced writes. Afterwards the base device holds the post-crash image.
  virtual void Crash() = 0;
  virtual void CrashKeepRandom(uint64_t seed) = 0;
  // Bytes written but not yet flushed.
  virtual uint64_t UnsyncedBytes() const = 0;

  // Called before every operation with (op, offset, length); tests use it for
  // kill points and to count calls. Default: none.
  virtual void SetHook(std::function<void(DeviceOp, uint64_t, uint64_t)> hook) = 0;
};

}  // namespace clonefs
