// TokenBucket: a bytes-per-second ceiling, charged as work is issued.
//
// The copier asks WaitNanos() before a piece and Charge()s the piece's bytes
// when it issues it, so the balance may go negative ("debt") and the next
// piece waits until it is paid back. The burst is kBurstNanos worth of rate.
// A caller that never charges more than UnitBytes(rate) at once moves, over
// any interval T, at most
//     rate * T + burst + UnitBytes(rate)
// bytes (one charger; each further concurrent charger adds one unit). That
// is why the copier sizes its units and pieces with UnitBytes: a unit larger
// than that would be a burst of its own, followed by a long silence.
//
// Pure arithmetic over caller-supplied time (the Clock seam): no sleeping.
//
// THREAD SAFETY: all methods are safe to call concurrently (internal mutex).
#pragma once

#include <cstdint>
#include <mutex>

namespace clonefs {

class TokenBucket {
 public:
  // 100 ms worth of rate may be spent at once after an idle period.
  static constexpr uint64_t kBurstNanos = 100'000'000;
  // A unit (what one charge may hold) is this much time's worth of rate...
  static constexpr uint64_t kUnitNanos = 1'000'000'000;
  // ...in whole blocks of this size (the alignment of dest I/O), and at
  // least one block: at a few bytes per second, one 4 KiB block is copied
  // and then paid back over ~4096 s / rate.
  static constexpr uint64_t kUnitAlign = 4096;

  // rate 0 = unlimited.
  explicit TokenBucket(uint64_t bytes_per_s = 0);

  // The most bytes one charge should hold at `bytes_per_s`: kUnitNanos of
  // rate rounded down to kUnitAlign, at least kUnitAlign; UINT64_MAX when
  // unlimited (0).
  static uint64_t UnitBytes(uint64_t bytes_per_s);

  // Changes the rate; takes effect for the next WaitNanos. The balance is
  // clipped to the new burst, and a debt to one unit at the new rate (so
  // lowering the rate after a large charge never waits longer than one
  // unit's time at the new rate).
  void SetRate(uint64_t bytes_per_s);
  uint64_t rate() const;
  // UnitBytes(rate()).
  uint64_t unit_bytes() const { return UnitBytes(rate()); }

  // 0 if a piece may start at `now_ns`, otherwise how long until it may.
  uint64_t WaitNanos(uint64_t now_ns);
  // Records `bytes` moved at `now_ns`.
  void Charge(uint64_t bytes, uint64_t now_ns);

 private:
  void RefillLocked(uint64_t now_ns);

  mutable std::mutex mu_;
  uint64_t rate_ = 0;       // GUARDED_BY(mu_); 0 = unlimited
  double balance_ = 0;      // GUARDED_BY(mu_); bytes, may be negative
  uint64_t last_ns_ = 0;    // GUARDED_BY(mu_); time of the last refill
  bool started_ = false;    // GUARDED_BY(mu_); last_ns_ is meaningful
};

}  // namespace clonefs
