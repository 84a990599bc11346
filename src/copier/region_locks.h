// RegionLockTable: the regions that have a hydration (a copy, or a
// full-region overwrite that stands in for one) in flight. At most one holder
// per region (SPEC §3: "at most one hydration per region is ever in flight").
//
// STRUCTURE
//   A small hash of held regions, split into shards by region number; each
//   shard has a mutex, the set of held regions and one condition variable on
//   which waiters for any of its regions sleep. Memory is proportional to the
//   number of regions held, never to the image size.
//
// LOCKING DISCIPLINE (deadlock freedom)
//   A thread that holds several regions must have acquired them in ascending
//   region order, and may block in Lock() only for a region above every
//   region it holds. TryLock never blocks. Holders never wait for anything
//   else in this table.
//
// THREAD SAFETY: every method may be called from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/cancel.h"

namespace clonefs {

class RegionLockTable {
 public:
  RegionLockTable();
  RegionLockTable(const RegionLockTable&) = delete;
  RegionLockTable& operator=(const RegionLockTable&) = delete;

  // Blocks until no one holds region r, then takes it.
  void Lock(uint64_t r);
  // Lock for a request that must not wait for good (SPEC §7a: the holder
  // may be a copy whose source read never returns): gives up once
  // `timeout_ns` has passed or `token` (may be null) is cancelled, polled
  // every 50 ms. Same discipline as Lock.
  enum class Wait { kTaken, kTimedOut, kCancelled };
  Wait LockFor(uint64_t r, uint64_t timeout_ns, const CancelToken* token);
  // Takes region r if no one holds it. Returns whether it did.
  bool TryLock(uint64_t r);
  // REQUIRES: the caller holds r.
  void Unlock(uint64_t r);
  // Unlocks every region in [first, first+count). REQUIRES: caller holds them.
  void UnlockRun(uint64_t first, uint64_t count);

  bool IsLocked(uint64_t r) const;
  // Whether someone is blocked in Lock() for a region of [first,
  // first+count): a holder that is in no hurry (the background copier,
  // pacing a unit) gives such regions up. One relaxed atomic load when no
  // one waits for any region.
  bool AnyWaiting(uint64_t first, uint64_t count) const;
  // Number of regions held right now.
  uint64_t InFlight() const { return in_flight_.load(std::memory_order_relaxed); }

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    mutable std::mutex mu;
    std::condition_variable cv;        // signalled when a region with waiters is freed
    std::unordered_set<uint64_t> held;  // GUARDED_BY(mu)
    uint32_t waiters = 0;               // GUARDED_BY(mu)
    std::unordered_map<uint64_t, uint32_t> wanted;  // GUARDED_BY(mu); region -> waiters
  };
  Shard& ShardOf(uint64_t r) { return shards_[r % kShards]; }
  const Shard& ShardOf(uint64_t r) const { return shards_[r % kShards]; }

  Shard shards_[kShards];
  std::atomic<uint64_t> in_flight_{0};
  std::atomic<uint64_t> waiting_{0};  // threads blocked in Lock(), all shards
};

// Holds one region of a RegionLockTable for a scope.
class RegionLockGuard {
 public:
  RegionLockGuard(RegionLockTable* t, uint64_t r) : t_(t), r_(r) { t_->Lock(r_); }
  // Takes over region r, which the caller holds already.
  RegionLockGuard(RegionLockTable* t, uint64_t r, std::adopt_lock_t) : t_(t), r_(r) {}
  ~RegionLockGuard() { t_->Unlock(r_); }
  RegionLockGuard(const RegionLockGuard&) = delete;
  RegionLockGuard& operator=(const RegionLockGuard&) = delete;

 private:
  RegionLockTable* t_;
  uint64_t r_;
};

}  // namespace clonefs
