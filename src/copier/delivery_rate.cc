#include "copier/delivery_rate.h"

#include <algorithm>

namespace clonefs {

void DeliveryRate::Advance(uint64_t bucket) const {
  // A time older than the newest bucket (another thread read the clock
  // first) counts in the newest bucket.
  if (bucket <= head_) return;
  const uint64_t gone = std::min(bucket - head_, kBuckets);
  for (uint64_t i = 1; i <= gone; ++i) {
    uint64_t& b = bytes_[(head_ + i) % kBuckets];
    total_ -= b;
    b = 0;
  }
  head_ = bucket;
}

void DeliveryRate::Note(uint64_t bytes, uint64_t now_ns) {
  std::lock_guard<std::mutex> l(mu_);
  Advance(now_ns / kBucketNanos);
  bytes_[head_ % kBuckets] += bytes;
  total_ += bytes;
}

uint64_t DeliveryRate::Max(uint64_t span_ns, uint64_t now_ns) const {
  const uint64_t span = std::clamp<uint64_t>((span_ns + kBucketNanos - 1) / kBucketNanos, 1,
                                             kMaxSpanNanos / kBucketNanos);
  std::lock_guard<std::mutex> l(mu_);
  Advance(now_ns / kBucketNanos);
  if (total_ == 0) return 0;
  // Slide a window of `span` buckets over the history, oldest first.
  uint64_t sum = 0, best = 0;
  const uint64_t oldest = head_ + 1;  // (mod kBuckets) the oldest bucket kept
  for (uint64_t i = 0; i < kBuckets; ++i) {
    sum += bytes_[(oldest + i) % kBuckets];
    if (i >= span) sum -= bytes_[(oldest + i - span) % kBuckets];
    best = std::max(best, sum);
  }
  const double rate = static_cast<double>(best) * 1e9 / static_cast<double>(span * kBucketNanos);
  return static_cast<uint64_t>(rate);
}

}  // namespace clonefs
