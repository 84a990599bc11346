// ForegroundMonitor: is user I/O going on right now? The engine brackets
// every user request with Begin/End; the background copier asks Busy() to
// decide whether to yield (docs/design.md, "Foreground first").
//
// "Busy" means a request is in flight, or one ended less than `idle_ns` ago
// (so that a queue-depth-1 client, which has nothing in flight between two
// requests, still counts as busy).
//
// THREAD SAFETY: lock-free; all methods may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>

#include "base/clock.h"

namespace clonefs {

class ForegroundMonitor {
 public:
  explicit ForegroundMonitor(Clock* clock) : clock_(clock) {}

  void Begin() { in_flight_.fetch_add(1, std::memory_order_relaxed); }
  void End() {
    last_end_ns_.store(clock_->NowNanos(), std::memory_order_relaxed);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
  }
  // A request that ends as it begins (its I/O is not the engine's to wait for).
  void Note() {
    Begin();
    End();
  }
  bool Busy(uint64_t now_ns, uint64_t idle_ns) const {
    if (in_flight_.load(std::memory_order_relaxed) != 0) return true;
    uint64_t last = last_end_ns_.load(std::memory_order_relaxed);
    return last != 0 && now_ns < last + idle_ns;
  }
  uint64_t in_flight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  Clock* const clock_;
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> last_end_ns_{0};
};

// Brackets one user request.
class ForegroundScope {
 public:
  explicit ForegroundScope(ForegroundMonitor* m) : m_(m) { m_->Begin(); }
  ~ForegroundScope() { m_->End(); }
  ForegroundScope(const ForegroundScope&) = delete;
  ForegroundScope& operator=(const ForegroundScope&) = delete;

 private:
  ForegroundMonitor* m_;
};

}  // namespace clonefs
