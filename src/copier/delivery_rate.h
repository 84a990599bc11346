// DeliveryRate: how fast a source has been delivering the copier's reads
// lately -- the highest rate seen over spans of a given length, so that a
// link the copier keeps busy is measured at its capacity, not at the
// average of its busy and idle moments (the copier sizes the bytes it keeps
// in flight on a shared link by it: BackgroundCopier::SourceWindow).
//
// Completed bytes are added into buckets of kBucketNanos; the history holds
// the last kBuckets of them (kHistoryNanos). Max(span) is the largest sum
// over `span` consecutive whole buckets of the history (the bucket in
// progress included), divided by the span. A source idle for the whole
// history measures 0.
//
// Pure arithmetic over caller-supplied time (the Clock seam).
// THREAD SAFETY: all methods are safe to call concurrently (internal mutex).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

namespace clonefs {

class DeliveryRate {
 public:
  static constexpr uint64_t kBucketNanos = 10'000'000;  // 10 ms
  static constexpr uint64_t kBuckets = 400;
  static constexpr uint64_t kHistoryNanos = kBucketNanos * kBuckets;  // 4 s
  // The longest span Max measures over: half the history.
  static constexpr uint64_t kMaxSpanNanos = kHistoryNanos / 2;

  // `bytes` of a read were delivered at now_ns.
  void Note(uint64_t bytes, uint64_t now_ns);
  // The highest delivery rate in bytes/s over any `span_ns` (rounded up to
  // whole buckets, at least one, at most kMaxSpanNanos) within the history
  // at now_ns. 0 when nothing was delivered in the history.
  uint64_t Max(uint64_t span_ns, uint64_t now_ns) const;

 private:
  // Clears the buckets that fell out of the history by `bucket` (an index
  // of kBucketNanos since the clock's epoch). REQUIRES: mu_ held.
  void Advance(uint64_t bucket) const;

  mutable std::mutex mu_;
  mutable std::array<uint64_t, kBuckets> bytes_{};  // GUARDED_BY(mu_); by bucket % kBuckets
  mutable uint64_t head_ = 0;                       // GUARDED_BY(mu_); newest bucket index
  mutable uint64_t total_ = 0;                      // GUARDED_BY(mu_); bytes in the history
};

}  // namespace clonefs
