#include "copier/dest_full_gate.h"

#include <algorithm>

namespace clonefs {

bool DestFullGate::MayCopy(DestCondition c, uint64_t now_ns) {
  std::lock_guard<std::mutex> l(mu_);
  if (c != DestCondition::kFull) {
    interval_ns_ = 0;
    return true;
  }
  if (interval_ns_ == 0) {  // just found full: the failing copy was the first probe
    interval_ns_ = kFirstProbeNanos;
    next_probe_ns_ = now_ns + interval_ns_;
    return false;
  }
  if (now_ns < next_probe_ns_) return false;
  interval_ns_ = std::min(2 * interval_ns_, kMaxProbeNanos);
  next_probe_ns_ = now_ns + interval_ns_;
  return true;
}

uint64_t DestFullGate::NextProbeIn(uint64_t now_ns) const {
  std::lock_guard<std::mutex> l(mu_);
  if (interval_ns_ == 0) return 0;
  return next_probe_ns_ > now_ns ? next_probe_ns_ - now_ns : 0;
}

}  // namespace clonefs
