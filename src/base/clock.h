// Clock: the seam through which the engine and copier read time and sleep,
// so component tests can inject a manual clock.
//
// THREAD SAFETY: implementations must be safe to call from any thread.
#pragma once

#include <chrono>
#include <cstdint>

namespace clonefs {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time in nanoseconds since an arbitrary epoch.
  virtual uint64_t NowNanos() = 0;
  // Returns the process-wide real clock (steady_clock). Never null.
  static Clock* Real();
};

// Wall-clock time (system_clock) in nanoseconds since the Unix epoch: when
// something happened, for status and messages (never for intervals, which
// use Clock).
uint64_t WallNowNanos();

}  // namespace clonefs
