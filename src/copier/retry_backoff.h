// RetryBackoff: which regions failed to copy and when they may be tried again.
//
// Each failed region gets an entry whose delay starts at `initial_ns` and
// doubles on every further failure of that region, capped at `cap_ns`. A
// success removes the entry. The table holds at most `max_entries` regions;
// past that (a source that fails everywhere) a global pause with the same
// doubling applies instead, so memory stays bounded and the source is not
// hammered.
//
// Pure bookkeeping over caller-supplied time.
//
// THREAD SAFETY: not thread-safe; the copier guards it with its mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

namespace clonefs {

class RetryBackoff {
 public:
  static constexpr uint64_t kDefaultCapNanos = 60'000'000'000ull;  // 60 s
  static constexpr size_t kDefaultMaxEntries = 16384;

  RetryBackoff(uint64_t initial_ns, uint64_t cap_ns = kDefaultCapNanos,
               size_t max_entries = kDefaultMaxEntries);

  // Records a failed attempt at copying regions [first, first+count).
  void RecordFailure(uint64_t first, uint64_t count, uint64_t now_ns);
  // Records a successful copy of [first, first+count).
  void RecordSuccess(uint64_t first, uint64_t count);

  // True if region r must not be tried at `now_ns`.
  bool Blocked(uint64_t r, uint64_t now_ns) const;
  // True if region r has failed before (and not succeeded since): the copier
  // then retries it alone, so one bad region does not sink its neighbours.
  bool HasFailed(uint64_t r) const { return entries_.count(r) != 0; }
  // Earliest time at which something blocked becomes retryable, or
  // UINT64_MAX if nothing is blocked.
  uint64_t NextRetryNanos() const;
  // Delay that region r waits after its last failure (0 if none); for tests.
  uint64_t DelayOf(uint64_t r) const;
  size_t size() const { return entries_.size(); }
  // Regions that failed (and have not succeeded since) for which
  // `pred(region)` is true.
  template <typename Pred>
  uint64_t CountFailed(Pred pred) const {
    uint64_t n = 0;
    for (const auto& e : entries_) n += pred(e.first) ? 1 : 0;
    return n;
  }

 private:
  struct Entry {
    uint64_t retry_at_ns;
    uint64_t delay_ns;
  };
  uint64_t Next(uint64_t delay) const;

  uint64_t initial_ns_;
  uint64_t cap_ns_;
  size_t max_entries_;
  std::map<uint64_t, Entry> entries_;
  uint64_t global_retry_at_ns_ = 0;
  uint64_t global_delay_ns_ = 0;
};

}  // namespace clonefs
