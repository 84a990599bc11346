// ProgressWatch: how long `clonefs wait` has seen no hydration progress
// (for --stall-timeout). Progress is any growth of the hydrated bytes or of
// the committed regions between two polls.
//
// THREAD SAFETY: a value; one thread.
#pragma once

#include <cstdint>

namespace clonefs::control {

class ProgressWatch {
 public:
  // Notes a poll at `now_s` (monotonic seconds, non-decreasing) that saw
  // these figures. The first poll starts the clock.
  void Observe(double now_s, uint64_t hydrated_bytes, uint64_t committed_regions) {
    if (!seen_ || hydrated_bytes > bytes_ || committed_regions > committed_) {
      since_s_ = now_s;
    }
    seen_ = true;
    if (hydrated_bytes > bytes_) bytes_ = hydrated_bytes;
    if (committed_regions > committed_) committed_ = committed_regions;
  }
  // Seconds from the last poll that saw progress (or the first poll) to
  // `now_s`; 0 before any poll.
  double StalledFor(double now_s) const { return seen_ ? now_s - since_s_ : 0; }

 private:
  bool seen_ = false;
  double since_s_ = 0;
  uint64_t bytes_ = 0;
  uint64_t committed_ = 0;
};

}  // namespace clonefs::control
