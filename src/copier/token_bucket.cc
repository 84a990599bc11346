#include "copier/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace clonefs {

TokenBucket::TokenBucket(uint64_t bytes_per_s) { SetRate(bytes_per_s); }

uint64_t TokenBucket::UnitBytes(uint64_t bytes_per_s) {
  if (bytes_per_s == 0) return UINT64_MAX;
  const double per_unit = static_cast<double>(bytes_per_s) * kUnitNanos / 1e9;
  if (per_unit >= static_cast<double>(UINT64_MAX / 2)) return UINT64_MAX / 2;
  const uint64_t n = static_cast<uint64_t>(per_unit) / kUnitAlign * kUnitAlign;
  return std::max<uint64_t>(n, kUnitAlign);
}

void TokenBucket::SetRate(uint64_t bytes_per_s) {
  std::lock_guard<std::mutex> l(mu_);
  rate_ = bytes_per_s;
  double burst = static_cast<double>(rate_) * kBurstNanos / 1e9;
  if (!started_) balance_ = burst;  // start with a full bucket
  balance_ = std::min(balance_, burst);
  if (rate_ != 0) balance_ = std::max(balance_, -static_cast<double>(UnitBytes(rate_)));
}

uint64_t TokenBucket::rate() const {
  std::lock_guard<std::mutex> l(mu_);
  return rate_;
}

void TokenBucket::RefillLocked(uint64_t now_ns) {
  if (!started_) {
    started_ = true;
    last_ns_ = now_ns;
    return;
  }
  if (now_ns <= last_ns_) return;
  double burst = static_cast<double>(rate_) * kBurstNanos / 1e9;
  balance_ += static_cast<double>(now_ns - last_ns_) * static_cast<double>(rate_) / 1e9;
  balance_ = std::min(balance_, burst);
  last_ns_ = now_ns;
}

uint64_t TokenBucket::WaitNanos(uint64_t now_ns) {
  std::lock_guard<std::mutex> l(mu_);
  if (rate_ == 0) return 0;
  RefillLocked(now_ns);
  if (balance_ >= 0) return 0;
  double ns = std::ceil(-balance_ * 1e9 / static_cast<double>(rate_));
  return std::max<uint64_t>(1, static_cast<uint64_t>(ns));
}

void TokenBucket::Charge(uint64_t bytes, uint64_t now_ns) {
  std::lock_guard<std::mutex> l(mu_);
  if (rate_ == 0) return;
  RefillLocked(now_ns);
  balance_ -= static_cast<double>(bytes);
}

}  // namespace clonefs
