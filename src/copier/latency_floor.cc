#include "copier/latency_floor.h"

#include <algorithm>

namespace clonefs {

void LatencyFloor::Rotate(uint64_t now_ns) const {
  // A time before the window's start is a caller that read the clock
  // before another one rotated: it belongs to this window, not a new one.
  if (now_ns < start_ns_ || now_ns - start_ns_ < kWindowNanos) return;
  if (current_ != kNone) previous_ = current_;
  current_ = kNone;
  start_ns_ = now_ns;
}

void LatencyFloor::Note(uint64_t latency_ns, uint64_t now_ns) {
  std::lock_guard<std::mutex> l(mu_);
  Rotate(now_ns);
  current_ = std::min(current_, latency_ns);
}

uint64_t LatencyFloor::Get(uint64_t now_ns) const {
  std::lock_guard<std::mutex> l(mu_);
  Rotate(now_ns);
  const uint64_t m = std::min(current_, previous_);
  return m == kNone ? 0 : m;
}

}  // namespace clonefs
