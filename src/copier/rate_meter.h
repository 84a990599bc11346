// RateMeter: a smoothed rate of bytes per second that falls to 0 when
// nothing moves.
//
// An exponentially weighted moving average with time constant window():
// bytes added `age` ago count with weight e^(-age/window), and the sum is
// divided by the time the meter has been measuring, weighted the same way
// (window * (1 - e^(-elapsed/window))), so the first seconds after start are
// not read low. The caller chooses the window: a few times the interval
// between the additions it expects (the copier's pieces at the rate in
// force), so a paced copier's rate stays steady between its pieces. Rate()
// reads exactly 0 once nothing was added for longer than the idle limit the
// caller gives. Bytes added after more than two windows without any start a
// new measurement (as at start), so a copier that resumes after a pause
// reads its rate again within a piece or two instead of ramping up over a
// window.
//
// Pure arithmetic over caller-supplied time (the Clock seam).
// THREAD SAFETY: all methods are safe to call concurrently (internal mutex).
#pragma once

#include <cstdint>
#include <mutex>

namespace clonefs {

class RateMeter {
 public:
  static constexpr uint64_t kDefaultWindowNanos = 5'000'000'000;  // 5 s
  // The measuring time is never taken as shorter than this (no huge rates
  // from the first few milliseconds).
  static constexpr uint64_t kMinElapsedNanos = 100'000'000;  // 0.1 s

  explicit RateMeter(uint64_t start_ns) : start_ns_(start_ns) {}

  // The time constant; at least 1 ms. Takes effect at once (what was added
  // is re-weighted with it). Default: kDefaultWindowNanos.
  void SetWindow(uint64_t window_ns);
  uint64_t window() const;

  void Add(uint64_t bytes, uint64_t now_ns);
  // Bytes per second at now_ns; 0 if nothing was ever added, or nothing
  // within the last `idle_ns`.
  uint64_t Rate(uint64_t now_ns, uint64_t idle_ns) const;
  // Rate(now_ns, 2 * window()).
  uint64_t Rate(uint64_t now_ns) const;

 private:
  mutable std::mutex mu_;
  uint64_t start_ns_;                         // GUARDED_BY(mu_); the measurement's start
  uint64_t window_ns_ = kDefaultWindowNanos;  // GUARDED_BY(mu_)
  double acc_ = 0;                            // GUARDED_BY(mu_); decayed bytes at last_ns_
  uint64_t last_ns_ = 0;                      // GUARDED_BY(mu_); time of the last Add
  bool any_ = false;                          // GUARDED_BY(mu_); something was added
};

}  // namespace clonefs
