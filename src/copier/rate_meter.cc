#include "copier/rate_meter.h"

#include <algorithm>

namespace clonefs {

void RateMeter::Add(uint64_t bytes, uint64_t now_ns) {
  uint64_t epoch = now_ns / kSlotNanos;
  std::lock_guard<std::mutex> l(mu_);
  Slot& s = slots_[epoch % kSlots];
  if (s.epoch != epoch) {
    s.epoch = epoch;
    s.bytes = 0;
  }
  s.bytes += bytes;
}

uint64_t RateMeter::Rate(uint64_t now_ns) const {
  uint64_t epoch = now_ns / kSlotNanos;
  uint64_t sum = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const Slot& s : slots_) {
      if (s.epoch != UINT64_MAX && s.epoch <= epoch && epoch - s.epoch < kSlots) sum += s.bytes;
    }
  }
  // The window covers the full past slots plus the part of the current one,
  // but never more than the time since the meter started.
  uint64_t window = (kSlots - 1) * kSlotNanos + now_ns % kSlotNanos;
  window = std::min(window, now_ns > start_ns_ ? now_ns - start_ns_ : 0);
  window = std::max<uint64_t>(window, kSlotNanos / 10);  // avoid huge rates from a tiny window
  return static_cast<uint64_t>(static_cast<double>(sum) * 1e9 / static_cast<double>(window));
}

}  // namespace clonefs
