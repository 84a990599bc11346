// ReadHints: what users read, turned into the background copier's order
// (SPEC §10, Hints; docs/design.md, "Hydration order").
//
// Two kinds of hint, both bounded in memory whatever the workload:
//   - Read-ahead of sequential readers. Up to kStreams streams, each the
//     byte offset just past its reader's last read. A read that starts
//     within kSlack of a stream's end continues it: readers with several
//     requests in flight arrive slightly out of order, and a reader that
//     moves forward with small gaps (a file system check walking its
//     metadata, a boot reading files laid out together) is served best by
//     hydrating ahead of it too. A read that moves the end
//     forward counts as a hit. A stream with at least kMinHits (4) hits that has moved
//     forward by kMinSequentialBytes is sequential; every further hit
//     doubles its window, from kMinWindow to kMaxWindow bytes, its end
//     rounded up to a whole unit (unit_regions). Only a stream that read an
//     unhydrated region in the last kMissNanos is read ahead of: a reader
//     that finds everything hydrated (a replayed profile fetched it) needs
//     no guesses. (A reader
//     going round a few regions is not sequential: it never moves forward.) The window ahead of a
//     sequential stream, [end, end + window), is what the copier hydrates first, so the reader
//     finds it in dest. A sequential stream is DENSE while its reads covered
//     at least half of the bytes it moved over (Dense); a sparse one (a
//     reader taking 4 KiB every 320 KiB) reads little of its window, so
//     fetching that window is background copying by another name: the
//     copier takes it only in the background order, as it takes the units
//     near recent reads, under the rate and the threshold
//     (AheadWindows(kDenseOnly) is the reader's own read-ahead).
//     A stream no read continued for kStreamIdleNanos is
//     forgotten; a read that continues no stream replaces the least recently
//     used one.
//   - Near recent reads: a read of an unhydrated region that continues no
//     sequential stream leaves the aligned unit around it (unit_regions
//     regions) in a ring of at most kMaxNear entries, newest first; the
//     oldest is dropped when it is full. The copier takes these after the
//     read-ahead windows and before its cursor.
//
// Hints are only an order: the copier re-checks hydration, locks and backoff
// for every region it takes from them.
//
// THREAD SAFETY: every method may be called from any thread; one internal
// mutex (a leaf lock).
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <vector>

#include "regions/region_math.h"
#include "regions/region_run.h"

namespace clonefs {

class ReadHints {
 public:
  static constexpr int kStreams = 8;
  static constexpr uint64_t kSlack = 4ull << 20;
  static constexpr uint64_t kMinWindow = 1ull << 20;
  static constexpr uint64_t kMinSequentialBytes = 1ull << 20;
  // Hits before a stream counts as sequential. Random reads land within
  // kSlack ahead of one of kStreams streams now and then (a 4 KiB random
  // reader of 4 GiB, about 1.6% of its reads); a stream lives a few of them
  // before it is replaced, so 2 such hits happened about once a second at
  // 7000 IOPS and made the copier read ahead of no one. 4 do not happen.
  static constexpr uint32_t kMinHits = 4;
  static constexpr uint64_t kMaxWindow = 32ull << 20;
  static constexpr uint64_t kStreamIdleNanos = 2'000'000'000;
  static constexpr uint64_t kMissNanos = 1'000'000'000;
  static constexpr size_t kMaxNear = 1024;

  // unit_regions: the size of a "near" hint, in regions (>= 1).
  ReadHints(const RegionGeometry& geo, uint64_t unit_regions);

  // A new unit size (hydration_batch_size changed at runtime; 0 counts as
  // 1), for hints made from now on; hints already made keep theirs.
  void SetUnitRegions(uint64_t unit_regions);

  // Hints on or off (off: NoteRead does nothing and every hint is dropped).
  void SetEnabled(bool on);
  bool enabled() const;

  // Records a user read of [off, off+len) at `now_ns`. `unhydrated`: the
  // read touched at least one unhydrated region. Returns whether the read
  // continues a sequential stream (one seen at least twice before).
  bool NoteRead(uint64_t off, uint64_t len, bool unhydrated, uint64_t now_ns);

  // Which streams: every sequential one, only the dense ones, or only the
  // sparse ones (see above).
  enum class Streams { kAll, kDenseOnly, kSparseOnly };
  // The read-ahead windows of the sequential streams active at now_ns, as
  // region runs clipped to the image, the most recently read first.
  std::vector<RegionRun> AheadWindows(uint64_t now_ns, Streams which = Streams::kAll) const;

  // The newest "near" hint, if any (false: none).
  bool FrontNear(RegionRun* out) const;
  // Replaces the newest near hint by what is left of it to consider:
  // [from, its end); drops it if nothing is left.
  void AdvanceNear(uint64_t from);

  // Counters for status: near hints pending; sequential streams being read
  // ahead of (see kMissNanos).
  size_t near_size() const;
  int sequential_streams(uint64_t now_ns, Streams which = Streams::kAll) const;

 private:
  struct Stream {
    uint64_t start = 0;     // where its first read started
    uint64_t end = 0;       // byte offset just past the last read
    uint64_t window = 0;    // bytes hydrated ahead of `end` once sequential
    uint32_t hits = 0;      // reads that continued it (1: just started)
    uint64_t read = 0;      // bytes of the reads that continued it (and started it)
    uint64_t last_ns = 0;   // when it was last read; 0: free slot
    uint64_t miss_ns = 0;   // when a read of it last touched an unhydrated region; 0: never
  };
  // Readers take the time before the lock, so a stream may carry a stamp
  // later than `now_ns` (a reader that came second took the lock first): it
  // is active, not 2^64 ns idle. Comparisons, never differences.
  bool Active(const Stream& s, uint64_t now_ns) const {
    return s.last_ns != 0 && now_ns < s.last_ns + kStreamIdleNanos;
  }
  static bool Sequential(const Stream& s) {
    return s.hits >= kMinHits && s.end - s.start >= kMinSequentialBytes;
  }
  // Its reads covered at least half of what it moved over.
  static bool Dense(const Stream& s) { return s.read >= (s.end - s.start) / 2; }
  bool ReadAhead(const Stream& s, uint64_t now_ns, Streams which) const {
    return Active(s, now_ns) && Sequential(s) && s.miss_ns != 0 &&
           now_ns < s.miss_ns + kMissNanos &&
           (which == Streams::kAll || Dense(s) == (which == Streams::kDenseOnly));
  }

  const RegionGeometry geo_;
  mutable std::mutex mu_;
  uint64_t unit_regions_;           // GUARDED_BY(mu_)
  bool enabled_ = true;             // GUARDED_BY(mu_)
  Stream streams_[kStreams];        // GUARDED_BY(mu_)
  std::deque<RegionRun> near_;      // GUARDED_BY(mu_); newest at the front
};

}  // namespace clonefs
