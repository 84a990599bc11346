#include "copier/rate_meter.h"

#include <algorithm>
#include <cmath>

namespace clonefs {

void RateMeter::SetWindow(uint64_t window_ns) {
  std::lock_guard<std::mutex> l(mu_);
  window_ns_ = std::max<uint64_t>(window_ns, 1'000'000);
}

uint64_t RateMeter::window() const {
  std::lock_guard<std::mutex> l(mu_);
  return window_ns_;
}

void RateMeter::Add(uint64_t bytes, uint64_t now_ns) {
  std::lock_guard<std::mutex> l(mu_);
  if (any_ && now_ns > last_ns_ + 2 * window_ns_) {
    // Idle for two windows: what came before says nothing about now.
    acc_ = 0;
    start_ns_ = now_ns;
  } else if (any_ && now_ns > last_ns_) {
    acc_ *= std::exp(-static_cast<double>(now_ns - last_ns_) / static_cast<double>(window_ns_));
  }
  acc_ += static_cast<double>(bytes);
  last_ns_ = std::max(last_ns_, now_ns);
  any_ = true;
}

uint64_t RateMeter::Rate(uint64_t now_ns) const { return Rate(now_ns, 2 * window()); }

uint64_t RateMeter::Rate(uint64_t now_ns, uint64_t idle_ns) const {
  std::lock_guard<std::mutex> l(mu_);
  if (!any_) return 0;
  const uint64_t idle = now_ns > last_ns_ ? now_ns - last_ns_ : 0;
  if (idle > idle_ns) return 0;
  const double w = static_cast<double>(window_ns_);
  const double v = acc_ * std::exp(-static_cast<double>(idle) / w);
  const uint64_t elapsed = std::max(now_ns > start_ns_ ? now_ns - start_ns_ : 0, kMinElapsedNanos);
  const double measured = w * -std::expm1(-static_cast<double>(elapsed) / w);  // ns
  return static_cast<uint64_t>(v * 1e9 / measured);
}

}  // namespace clonefs
