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

}  // namespace clonefs
