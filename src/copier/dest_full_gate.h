// DestFullGate: background copying while dest is full (SPEC §7a).
//
// A full dest refuses every copy after the copier has read its data from
// the source: without a gate the copier sweeps the image again and again,
// reading the source (for a remote one, downloading) only to throw it away.
// So once dest is full, copying pauses and is probed: one unit per probe
// interval, 1 s at first, doubling up to a minute. A copy that lands brings
// dest's condition back to kOk (HealthTracker::DestHydrated), and copying
// resumes at full speed. Users' writes are not gated: they get ENOSPC.
//
// THREAD SAFETY: all methods may be called from any thread (mu_).
#pragma once

#include <cstdint>
#include <mutex>

#include "devices/io_health.h"

namespace clonefs {

class DestFullGate {
 public:
  static constexpr uint64_t kFirstProbeNanos = 1'000'000'000;
  static constexpr uint64_t kMaxProbeNanos = 60'000'000'000;

  // Whether the copier may start a unit at `now_ns`, dest being in
  // condition `c`. While full: false, except once per probe interval.
  bool MayCopy(DestCondition c, uint64_t now_ns);
  // Nanoseconds from `now_ns` to the next probe while full; 0 otherwise.
  uint64_t NextProbeIn(uint64_t now_ns) const;

 private:
  mutable std::mutex mu_;
  uint64_t interval_ns_ = 0;    // GUARDED_BY(mu_); 0: not full
  uint64_t next_probe_ns_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace clonefs
