// Hydrator: the mechanics of hydration, shared by the engine's
// write-triggered path and the background copier.
//
//   - CopyRun: copies a run of regions source -> dest in chunks of at most
//     kMaxCopyChunk; ranges that are holes in the source (NextData/NextHole)
//     are hydrated by punching dest instead of reading (SPEC §4, sparse
//     sources).
//   - HydrateRegion: copies one region while merging a user write or zero
//     into it, so the region is written once (SPEC §3, partial writes).
//   - Both copy paths check the source (SourceWatch) after copying, before
//     the caller can mark anything: data read from a source that changed is
//     never marked; once the source changed they refuse at once (IoError,
//     EIO), and a failed source read is reported as the change if it was one.
//   - Mark: marks regions hydrated in the metadata, through a gate that
//     CloseMarksAndSetReadOnly shuts: after it returns, no mark is running and
//     none can start (the metadata's Abort requires exactly that).
//
// It takes no region locks: callers hold the regions they hydrate in the
// RegionLockTable, and re-check the hydration state under that lock.
//
// THREAD SAFETY: all methods may be called concurrently (the devices and the
// metadata marks are thread-safe; counters are atomic; the mark gate is a
// shared_mutex: marks share it, CloseMarksAndSetReadOnly takes it exclusive).
// LIFECYCLE: borrows every pointer; they must outlive the Hydrator.
#pragma once

#include <atomic>
#include <cstdint>
#include <shared_mutex>

#include "base/clock.h"
#include "base/result.h"
#include "base/status.h"
#include "copier/copy_buffer.h"
#include "copier/rate_meter.h"
#include "copier/source_watch.h"
#include "devices/device.h"
#include "metadata/metadata.h"
#include "regions/region_math.h"

namespace clonefs {

// What a triggered hydration merges into the region: `data` (a write) or, if
// data is nullptr, zeros made with `zero_mode`. [offset, offset+length) lies
// inside the region being hydrated.
struct Overlay {
  uint64_t offset = 0;
  uint64_t length = 0;
  const uint8_t* data = nullptr;
  ZeroMode zero_mode = ZeroMode::kWriteZeros;
};

// What a copy moved: bytes read from the source (and written to dest), and
// bytes hydrated by zeroing dest without reading.
struct CopyOutcome {
  uint64_t bytes_read = 0;
  uint64_t bytes_zeroed = 0;
};

class Hydrator {
 public:
  // `watch` watches `source` (SPEC §7a).
  Hydrator(Device* source, Device* dest, metadata::Metadata* md, const RegionGeometry& geo,
           Clock* clock, SourceWatch* watch);

  // Copies regions [first, first+count) into dest. Does not mark them.
  // REQUIRES: the caller holds those regions. Errors: the device's, with the
  // run in the message, or IoError(ENOMEM) if `buf` cannot grow, or the
  // SourceWatch's refusal (IoError, EIO) if the source changed; counted in
  // copy_failures. Never throws.
  Result<CopyOutcome> CopyRun(uint64_t first, uint64_t count, CopyBuffer* buf);

  // Hydrates region r with `ov` merged in: every byte of the region ends up
  // in dest exactly once, from `ov` where it covers, else from the source.
  // Does not mark. REQUIRES: the caller holds r; ov lies inside region r.
  // Errors: as CopyRun's (IoError(ENOMEM) when no copy buffer can be had).
  Status HydrateRegion(uint64_t r, const Overlay& ov);

  // Marks [first, first+count) hydrated (regions already hydrated are left
  // alone). Errors: the metadata's (ReadOnly after CloseMarksAndSetReadOnly).
  Status Mark(uint64_t first, uint64_t count);
  // Counts `bytes` hydrated without a copy (a full-region zero) in the stats.
  void CountZeroHydrated(uint64_t bytes);

  // Waits for running marks, puts the metadata in read-only mode (so every
  // later mark fails with ReadOnly) and returns.
  void CloseMarksAndSetReadOnly();

  uint64_t bytes_copied() const { return bytes_copied_.load(std::memory_order_relaxed); }
  uint64_t bytes_zeroed() const { return bytes_zeroed_.load(std::memory_order_relaxed); }
  uint64_t copy_failures() const { return copy_failures_.load(std::memory_order_relaxed); }
  // Recent hydration rate (bytes copied + zero-hydrated per second).
  uint64_t rate(uint64_t now_ns) const { return rate_.Rate(now_ns); }

  const RegionGeometry& geometry() const { return geo_; }

 private:
  Status CopyData(uint64_t off, uint64_t len, CopyBuffer* buf);
  Status ReadSource(uint64_t off, void* buf, size_t len);
  Status Failed(const Status& s, uint64_t first, uint64_t count);

  Device* const source_;
  Device* const dest_;
  metadata::Metadata* const md_;
  const RegionGeometry geo_;
  Clock* const clock_;
  SourceWatch* const watch_;

  std::shared_mutex mark_gate_;  // marks: shared; CloseMarksAndSetReadOnly: exclusive
  std::atomic<uint64_t> bytes_copied_{0};
  std::atomic<uint64_t> bytes_zeroed_{0};
  std::atomic<uint64_t> copy_failures_{0};
  RateMeter rate_;
};

}  // namespace clonefs
