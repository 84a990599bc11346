#include "copier/region_locks.h"

#include <algorithm>
#include <cassert>
#include <chrono>

namespace clonefs {

RegionLockTable::RegionLockTable() = default;

void RegionLockTable::Lock(uint64_t r) {
  Shard& s = ShardOf(r);
  std::unique_lock<std::mutex> l(s.mu);
  if (s.held.count(r) != 0) {
    ++s.wanted[r];
    waiting_.fetch_add(1, std::memory_order_relaxed);
    while (s.held.count(r) != 0) {
      ++s.waiters;
      s.cv.wait(l);
      --s.waiters;
    }
    if (--s.wanted[r] == 0) s.wanted.erase(r);
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }
  s.held.insert(r);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
}

RegionLockTable::Wait RegionLockTable::LockFor(uint64_t r, uint64_t timeout_ns,
                                               const CancelToken* token) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + std::chrono::nanoseconds(timeout_ns);
  Shard& s = ShardOf(r);
  std::unique_lock<std::mutex> l(s.mu);
  Wait result = Wait::kTaken;
  if (s.held.count(r) != 0) {
    ++s.wanted[r];
    waiting_.fetch_add(1, std::memory_order_relaxed);
    while (s.held.count(r) != 0) {
      if (token != nullptr && token->cancelled()) {
        result = Wait::kCancelled;
        break;
      }
      const Clock::time_point now = Clock::now();
      if (now >= deadline) {
        result = Wait::kTimedOut;
        break;
      }
      ++s.waiters;
      s.cv.wait_for(l, std::min<Clock::duration>(deadline - now, std::chrono::milliseconds(50)));
      --s.waiters;
    }
    if (--s.wanted[r] == 0) s.wanted.erase(r);
    waiting_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (result != Wait::kTaken) return result;
  s.held.insert(r);
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  return result;
}

bool RegionLockTable::TryLock(uint64_t r) {
  Shard& s = ShardOf(r);
  std::lock_guard<std::mutex> l(s.mu);
  if (!s.held.insert(r).second) return false;
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void RegionLockTable::Unlock(uint64_t r) {
  Shard& s = ShardOf(r);
  bool wake;
  {
    std::lock_guard<std::mutex> l(s.mu);
    [[maybe_unused]] size_t erased = s.held.erase(r);
    assert(erased == 1);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    wake = s.waiters != 0;
  }
  if (wake) s.cv.notify_all();
}

void RegionLockTable::UnlockRun(uint64_t first, uint64_t count) {
  for (uint64_t r = first; r < first + count; ++r) Unlock(r);
}

bool RegionLockTable::IsLocked(uint64_t r) const {
  const Shard& s = ShardOf(r);
  std::lock_guard<std::mutex> l(s.mu);
  return s.held.count(r) != 0;
}

bool RegionLockTable::AnyWaiting(uint64_t first, uint64_t count) const {
  if (waiting_.load(std::memory_order_relaxed) == 0) return false;
  for (uint64_t r = first; r < first + count; ++r) {
    const Shard& s = ShardOf(r);
    std::lock_guard<std::mutex> l(s.mu);
    if (s.wanted.count(r) != 0) return true;
  }
  return false;
}

}  // namespace clonefs
