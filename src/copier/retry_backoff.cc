#include "copier/retry_backoff.h"

#include <algorithm>

namespace clonefs {

RetryBackoff::RetryBackoff(uint64_t initial_ns, uint64_t cap_ns, size_t max_entries)
    : initial_ns_(std::max<uint64_t>(initial_ns, 1)),
      cap_ns_(std::max(cap_ns, initial_ns_)),
      max_entries_(max_entries) {}

uint64_t RetryBackoff::Next(uint64_t delay) const {
  if (delay == 0) return initial_ns_;
  return delay >= cap_ns_ / 2 ? cap_ns_ : delay * 2;
}

void RetryBackoff::RecordFailure(uint64_t first, uint64_t count, uint64_t now_ns) {
  for (uint64_t r = first; r < first + count; ++r) {
    auto it = entries_.find(r);
    if (it == entries_.end()) {
      if (entries_.size() >= max_entries_) {
        global_delay_ns_ = Next(global_delay_ns_);
        global_retry_at_ns_ = now_ns + global_delay_ns_;
        return;
      }
      it = entries_.emplace(r, Entry{0, 0}).first;
    }
    it->second.delay_ns = Next(it->second.delay_ns);
    it->second.retry_at_ns = now_ns + it->second.delay_ns;
  }
}

void RetryBackoff::RecordSuccess(uint64_t first, uint64_t count) {
  entries_.erase(entries_.lower_bound(first), entries_.lower_bound(first + count));
  global_delay_ns_ = 0;
  global_retry_at_ns_ = 0;
}

bool RetryBackoff::Blocked(uint64_t r, uint64_t now_ns) const {
  if (now_ns < global_retry_at_ns_) return true;
  auto it = entries_.find(r);
  return it != entries_.end() && now_ns < it->second.retry_at_ns;
}

uint64_t RetryBackoff::NextRetryNanos() const {
  uint64_t t = UINT64_MAX;
  if (global_retry_at_ns_ != 0) t = global_retry_at_ns_;
  for (const auto& [r, e] : entries_) t = std::min(t, e.retry_at_ns);
  return t;
}

uint64_t RetryBackoff::DelayOf(uint64_t r) const {
  auto it = entries_.find(r);
  return it == entries_.end() ? 0 : it->second.delay_ns;
}

}  // namespace clonefs
