// TokenBucket: a bytes-per-second ceiling, charged after the fact.
//
// The copier asks WaitNanos() before a unit and Charge()s the bytes the unit
// actually moved afterwards, so the balance may go negative ("debt") and the
// next unit waits until it is paid back. Over any interval T the bytes
// charged are at most burst + rate*T + one unit per concurrent charger. The
// burst is kBurstNanos worth of rate.
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

  // rate 0 = unlimited.
  explicit TokenBucket(uint64_t bytes_per_s = 0);

  // Changes the rate; takes effect for the next WaitNanos. The balance is
  // clipped to the new burst.
  void SetRate(uint64_t bytes_per_s);
  uint64_t rate() const;

  // 0 if a unit may start at `now_ns`, otherwise how long until it may.
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
