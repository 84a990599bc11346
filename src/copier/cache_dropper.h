// CacheDropper: keeps what the background copier writes through the page
// cache (Device::WriteCached: with --buffered, and also for an O_DIRECT dest)
// from staying there.
//
// Why: the copier writes whole units (up to megabytes) with buffered
// writes, which leave large folios of data nobody asked to read. A clone
// of a big image then evicts the host's useful cache, and the user's later
// 4 KiB writes into those large folios cost several times a write into
// small ones (measured: 4 KiB random writes at QD16 on a just-hydrated
// --buffered clone ran at ~0.55x the same clone after its cache was
// dropped; docs/performance.md).
//
// How: once more than `lag_bytes` written by the copier are pending, the
// dropper's own thread writes the oldest ranges back, waits for that and
// evicts them (Device::DropCached), so the copier's writers do not wait for
// the disk on its account -- unless the disk falls far behind: Written waits
// while more than kPendingCapFactor x lag_bytes are pending. Then the disk is
// what limits hydration anyway, and the cap bounds the copier's dirty pages
// (and so what a commit's dest flush, a user's fsync, must write back).
// (Starting each range's writeback as soon as it was written, in the
// writer, made hydration slower: measured.) Never a durability point, and it
// never hides a write-back error from the next commit (DropCached's
// contract).
//
// THREAD SAFETY: Written and DropAll may be called from any threads. The
// waits and evictions run on the dropper's thread, outside the lock.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

#include "devices/device.h"

namespace clonefs {

class CacheDropper {
 public:
  // `dest` outlives the dropper. Does nothing unless dest->PageCached().
  CacheDropper(Device* dest, uint64_t lag_bytes);
  ~CacheDropper();  // evicts what is pending, then joins the thread
  CacheDropper(const CacheDropper&) = delete;
  CacheDropper& operator=(const CacheDropper&) = delete;

  bool active() const { return active_; }

  // Most bytes pending, as a multiple of the lag, before Written waits.
  static constexpr uint64_t kPendingCapFactor = 8;

  // [off, off+len) of dest was just written by the copier. Waits while more
  // than kPendingCapFactor x lag_bytes (at least 1 MiB) are pending.
  void Written(uint64_t off, uint64_t len);
  // Evicts every pending range and returns once that is done (the copier
  // is stopping).
  void DropAll();

  // Bytes written and not yet evicted (tests).
  uint64_t pending_bytes() const;
  // Whether any written range may still be cached (a relaxed atomic load,
  // for hot paths: Device::ReadFromCache is worth asking only then).
  bool AnyPending() const { return pending_any_.load(std::memory_order_relaxed); }

 private:
  using Range = std::pair<uint64_t, uint64_t>;  // offset, length
  void Run();

  Device* const dest_;
  const bool active_;
  const uint64_t lag_bytes_;
  const uint64_t cap_bytes_;  // Written waits above this
  mutable std::mutex mu_;
  std::condition_variable cv_;  // work for the thread, or work done (room, drained)
  std::deque<Range> pending_;   // GUARDED_BY(mu_), oldest first
  uint64_t pending_bytes_ = 0;  // GUARDED_BY(mu_): in pending_ and being evicted
  std::atomic<bool> pending_any_{false};  // pending_bytes_ != 0, written under mu_
  uint64_t drain_gen_ = 0;      // GUARDED_BY(mu_): DropAll requests
  bool exit_ = false;           // GUARDED_BY(mu_)
  std::thread thread_;          // only when active_
};

}  // namespace clonefs
