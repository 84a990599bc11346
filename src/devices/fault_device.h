// FaultDevice: wraps a Device to inject errors and to model power loss.
//
// Errors: rules match an operation and a byte range and fail matching calls
// with a given Status (optionally only the first `count` matches). A call
// matches a rule if the rule's op is kAny or the call's op, and the call's
// range [off, off+len) overlaps the rule's [offset, offset+length) (a call of
// length 0 counts as one byte; a Flush covers the whole device). The first
// matching rule with count > 0 decides; its count drops by one (UINT64_MAX
// means forever). A failed call has no effect on the device.
// NextData/NextHole, Size, ReadOnly and Name are never failed.
//
// Power loss: the wrapper keeps every write (and zero) that has not been
// followed by a successful Flush aside, in an overlay; reads see the overlay.
// Flush applies the overlay to the wrapped ("durable") device, in the order
// the operations were issued (a punch stays a punch), then flushes it; if a
// rule fails the Flush, nothing is applied. Crash() discards the overlay
// (everything unsynced is lost), or with CrashKeepRandom(seed) keeps a random
// subset of unsynced writes at 512-byte sector granularity (a disk may
// persist some unsynced data, in any order): each sector that has pending
// writes independently ends up either with its durable content or with its
// content after some prefix of its pending writes (uniformly among those
// choices, from the seed) -- never anything else. While writes are pending,
// NextData/NextHole answer "all data" (the base's allocation is stale).
// The overlay is meant for tests: it costs ~600 bytes per pending sector.
//
// Source changes (SPEC §7a): SimulateChange makes CheckUnchanged answer a
// given error from then on. SimulateShrink models a file truncated under the
// clone, in its worst form: reads reaching past the new end fail as short
// reads (IoError, EIO), NextHole stops at the new end, NextData past it
// answers Size() -- the tail looks like a hole, as a careless device would
// say -- and CheckUnchanged reports the shrink. Otherwise CheckUnchanged is
// the base's.
//
// SpliceFd() is -1: splicing from the base would bypass rules and overlay.
//
// THREAD SAFETY: all methods are safe to call concurrently. Without the
// overlay (Wrap), calls reach the base concurrently; with it (WrapVolatile),
// data operations are serialized.
#pragma once

#include <functional>

#include "devices/device.h"

namespace clonefs {

enum class DeviceOp { kRead, kWrite, kFlush, kZero, kAny };

struct FaultRule {
  DeviceOp op = DeviceOp::kAny;
  uint64_t offset = 0;  // range the call must overlap
  uint64_t length = UINT64_MAX;
  Status error = Status::IoError("injected fault", 5 /*EIO*/);
  uint64_t count = UINT64_MAX;  // fail this many matching calls, then stop
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

  // Power loss (WrapVolatile only; no-ops for Wrap): drop all / keep a random
  // subset of unsynced writes. Afterwards the base device holds the
  // post-crash image and this device keeps working on top of it.
  virtual void Crash() = 0;
  virtual void CrashKeepRandom(uint64_t seed) = 0;
  // Bytes written but not yet flushed.
  virtual uint64_t UnsyncedBytes() const = 0;

  // Called before every Read, Write, Flush and Zero, before the rules are
  // checked and with no lock held, with (op, offset, length); a Flush passes
  // (kFlush, 0, Size()). Called on the caller's thread; it may call back into
  // this device (e.g. Crash()). Tests use it for kill points and to count
  // calls. nullptr removes it. Default: none.
  virtual void SetHook(std::function<void(DeviceOp, uint64_t, uint64_t)> hook) = 0;

  // Source changes (above). `change` must not be OK.
  virtual void SimulateChange(Status change) = 0;
  // REQUIRES: new_size < Size().
  virtual void SimulateShrink(uint64_t new_size) = 0;
};

}  // namespace clonefs
