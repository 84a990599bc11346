// LatencyFloor: the shortest time a source took to answer a read recently:
// its round trip without the queueing that bytes in flight add to it (the
// copier sizes its prefetch room by it: BackgroundCopier::PrefetchRoom).
//
// The minimum over the current window of kWindowNanos and the one before
// it, so a link that got slower is seen within two windows. When a whole
// window passes without a read, the last window that had one still counts:
// an idle source keeps its last known floor rather than none.
//
// Pure arithmetic over caller-supplied time (the Clock seam).
// THREAD SAFETY: all methods are safe to call concurrently (internal mutex).
#pragma once

#include <cstdint>
#include <mutex>

namespace clonefs {

class LatencyFloor {
 public:
  static constexpr uint64_t kWindowNanos = 5'000'000'000;  // 5 s

  // A read answered latency_ns after it was issued, at now_ns.
  void Note(uint64_t latency_ns, uint64_t now_ns);
  // The floor at now_ns; 0 until a read was noted.
  uint64_t Get(uint64_t now_ns) const;

 private:
  static constexpr uint64_t kNone = UINT64_MAX;
  // Starts a new window if the current one is over. REQUIRES: mu_ held.
  void Rotate(uint64_t now_ns) const;

  mutable std::mutex mu_;
  mutable uint64_t start_ns_ = 0;      // GUARDED_BY(mu_); the current window's start
  mutable uint64_t current_ = kNone;   // GUARDED_BY(mu_); its minimum
  mutable uint64_t previous_ = kNone;  // GUARDED_BY(mu_); the last window's with a read
};

}  // namespace clonefs
