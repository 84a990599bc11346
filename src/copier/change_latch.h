// ChangeLatch: a reason recorded once, for the life of its owner, and read
// as a flag on the I/O paths (SourceWatch, DestWatch).
//
// THREAD SAFETY: all methods may be called from any thread. set_ goes from
// false to true once, after reason_ is written under mu_.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/clock.h"

namespace clonefs {

class ChangeLatch {
 public:
  bool set() const { return set_.load(std::memory_order_acquire); }
  // The recorded reason; empty while not set.
  std::string reason() const {
    if (!set()) return {};
    std::lock_guard<std::mutex> l(mu_);
    return reason_;
  }
  // Wall-clock time (ns since the Unix epoch) the reason was recorded; 0
  // while not set.
  uint64_t set_unix_ns() const {
    if (!set()) return 0;
    std::lock_guard<std::mutex> l(mu_);
    return set_unix_ns_;
  }
  // Records `reason` unless one was recorded; returns whether this call did
  // (the caller then logs it, once).
  bool Set(std::string reason) {
    std::lock_guard<std::mutex> l(mu_);
    if (set()) return false;
    reason_ = std::move(reason);
    set_unix_ns_ = WallNowNanos();
    set_.store(true, std::memory_order_release);
    return true;
  }

 private:
  std::atomic<bool> set_{false};
  mutable std::mutex mu_;
  std::string reason_;        // GUARDED_BY(mu_); written once
  uint64_t set_unix_ns_ = 0;  // GUARDED_BY(mu_); written once
};

}  // namespace clonefs
