// Hydrator: the mechanics of hydration, shared by the engine's
// write-triggered path and the background copier.
//
//   - The background copier's pipeline (background_copier.h) copies a run of
//     regions in steps: PlanRun says which stretches of the run are holes in
//     the source (NextData/NextHole; SPEC §4, sparse sources) and which are
//     data; the copier reads the data itself (pipelined, into its own
//     buffers) and hands each piece to WriteFetched, which writes it to dest
//     with all-zero 4 KiB blocks punched instead of written (SPEC §9, Holes);
//     ZeroHole punches the source's holes; FinishRun checks the source and
//     counts the run. RunFailed names and counts a failed run.
//   - HydrateRegion: copies one region while merging a user write or zero
//     into it, so the region is written once (SPEC §3, partial writes).
//     Synchronous; used by the request path.
//   - Both paths check the source (SourceWatch) after copying, before the
//     caller can mark anything: data read from a source that changed is
//     never marked; once the source changed they refuse at once (IoError,
//     EIO), and a failed source read is reported as the change if it was one
//     (SourceReadFailed).
//   - Both paths check dest (DestWatch) before a copy writes anything, and
//     the copier's runs again before marking: a copy never extends a dest
//     truncated under the clone (which would read as zeros where hydrated
//     data was); a failed dest write is reported as the change if it was one.
//   - Every dest error of a copy is reported to the HealthTracker (with
//     what failed and where), and so is every source read error of
//     HydrateRegion and SourceReadFailed; a finished copy tells it that dest
//     takes new data (DestHydrated).
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
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "base/status.h"
#include "copier/copy_buffer.h"
#include "copier/dest_watch.h"
#include "copier/health_tracker.h"
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

// What a copy moved: bytes read from the source and written to dest as
// data, and bytes hydrated by zeroing dest (holes in the source, and blocks
// read from it that were all zeros).
struct CopyOutcome {
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t bytes_zeroed = 0;
};

// A stretch of a run as the source describes it: a hole (hydrated by
// punching dest, never read) or data (read and written).
struct RunSegment {
  uint64_t offset = 0;
  uint64_t length = 0;
  bool hole = false;
};

class Hydrator {
 public:
  // `watch` watches `source` (SPEC §7a); `health` hears of dest and source
  // errors and of finished copies. `zeros`: how a copy makes the zeros of
  // the source in dest -- kPunch deallocates them (discard passdown, the
  // default), kWriteZeros writes them and keeps the space allocated
  // (`no_discard_passdown`: SPEC §3 and §9).
  Hydrator(Device* source, Device* dest, metadata::Metadata* md, const RegionGeometry& geo,
           Clock* clock, SourceWatch* watch, DestWatch* dest_watch, HealthTracker* health,
           ZeroMode zeros = ZeroMode::kPunch);

  // --- the background copier's steps (REQUIRES for all: the caller holds
  // the run's regions; none of them marks anything) ---

  // The holes and data of regions [first, first+count), in order, covering
  // the run exactly. Where the source cannot say (or its answer is an
  // error), data. The last hole and data extents the source reported are
  // remembered, so planning the units of one long extent asks the source
  // once (what was planned is trusted only if the source is unchanged
  // afterwards: FinishRun). Errors: the SourceWatch's refusal (IoError, EIO)
  // if the source changed; not counted (RunFailed counts).
  Result<std::vector<RunSegment>> PlanRun(uint64_t first, uint64_t count);
  // Writes `len` bytes read from the source at image offset `off` into dest:
  // runs of all-zero 4 KiB blocks are zeroed with the `zeros` mode (punched
  // by default, as holes are), the rest is written with Device::WriteCached: no user waits for
  // these bytes, so the writer need not wait for the disk (durable at the
  // next commit's dest flush, like every write). Adds to *out. Errors: dest's.
  Status WriteFetched(uint64_t off, const uint8_t* data, size_t len, CopyOutcome* out);
  // Punches a hole of the source into dest, unless dest has no data there
  // already (Device::NextData); with kWriteZeros, zeroes it in dest keeping
  // the space allocated, hole or not. Adds to *out. Errors: dest's.
  Status ZeroHole(uint64_t off, uint64_t len, CopyOutcome* out);
  // For a failed source read at `off`: the SourceWatch's refusal if the
  // source changed (the likely cause of a short read), else `read_error`.
  Status SourceReadFailed(uint64_t off, const Status& read_error);
  // Whether the source was seen to change under the clone (sticky).
  bool source_changed() const { return watch_->changed(); }
  // OK while the source is not known to have changed; the SourceWatch's
  // refusal (IoError, EIO) once it has. Does no I/O.
  Status RefuseIfChanged() const { return watch_->changed() ? watch_->Refusal() : Status::OK(); }
  // After every piece of the run is in dest: checks that the source is still
  // the one the clone was made from (what was read, and what looked like
  // holes -- a shrunken tail may -- is trusted only then) and adds `out` to
  // the stats; tells the HealthTracker that dest took the run
  // (`dest_errors_at_start`: its DestErrors() when the run began). Errors:
  // the SourceWatch's (not counted).
  Status FinishRun(const CopyOutcome& out, uint64_t dest_errors_at_start);
  // Counts a failed run in copy_failures and returns `s` naming the run.
  Status RunFailed(const Status& s, uint64_t first, uint64_t count);

  // Hydrates region r with `ov` merged in: every byte of the region ends up
  // in dest exactly once, from `ov` where it covers, else from the source.
  // Does not mark. REQUIRES: the caller holds r; ov lies inside region r.
  // Errors: the devices' with the region in the message, IoError(ENOMEM)
  // when no copy buffer can be had, the SourceWatch's refusal (IoError, EIO)
  // if the source changed; counted in copy_failures. What it reads from the
  // source is counted in overlay_source_bytes, failed or not. Never throws.
  Status HydrateRegion(uint64_t r, const Overlay& ov);

  // Marks [first, first+count) hydrated (regions already hydrated are left
  // alone). Errors: the metadata's (ReadOnly after CloseMarksAndSetReadOnly).
  Status Mark(uint64_t first, uint64_t count);
  // Counts `bytes` hydrated without a copy (a full-region zero) in the stats.
  void CountZeroHydrated(uint64_t bytes);

  // Waits for running marks, puts the metadata in read-only mode (so every
  // later mark fails with ReadOnly) and returns.
  void CloseMarksAndSetReadOnly();

  // Bytes written to dest as data by copies (background and triggered).
  uint64_t bytes_copied() const { return bytes_copied_.load(std::memory_order_relaxed); }
  uint64_t bytes_zeroed() const { return bytes_zeroed_.load(std::memory_order_relaxed); }
  uint64_t copy_failures() const { return copy_failures_.load(std::memory_order_relaxed); }
  // Bytes HydrateRegion read from the source (for users' partial writes and
  // zeros), successful reads only.
  uint64_t overlay_source_bytes() const {
    return overlay_source_bytes_.load(std::memory_order_relaxed);
  }
  // Smoothed copy rate: bytes read from the source and written into dest
  // per second by copies (background pieces as each is written,
  // write-triggered hydrations, copy-on-read). 0 once nothing was copied
  // for `idle_ns`.
  uint64_t copy_rate(uint64_t now_ns, uint64_t idle_ns) const {
    return copy_meter_.Rate(now_ns, idle_ns);
  }
  // Smoothed zero rate: bytes hydrated without reading the source (its
  // holes, whole regions zeroed by users) per second; 0 after `idle_ns`.
  uint64_t zero_rate(uint64_t now_ns, uint64_t idle_ns) const {
    return zero_meter_.Rate(now_ns, idle_ns);
  }
  // The copy meter's window (RateMeter::SetWindow); the zero meter keeps
  // RateMeter::kDefaultWindowNanos.
  void SetCopyRateWindow(uint64_t window_ns) { copy_meter_.SetWindow(window_ns); }
  uint64_t copy_rate_window() const { return copy_meter_.window(); }

  const RegionGeometry& geometry() const { return geo_; }
  Device* source() const { return source_; }
  Device* dest() const { return dest_; }
  HealthTracker* health() const { return health_; }

 private:
  Status ReadSource(uint64_t off, void* buf, size_t len);
  // dest_->Write (WriteCached if `cached`) / dest_->Zero, reporting a
  // failure to health_ as `op`.
  Status DestWrite(const char* op, uint64_t off, const uint8_t* data, size_t len,
                   bool cached = false);
  Status DestZero(const char* op, uint64_t off, uint64_t len, ZeroMode mode);
  // What a copy's zeroing is called in messages, after zeros_.
  const char* ZeroOp() const {
    return zeros_ == ZeroMode::kPunch ? "copy punch in dest" : "copy zero in dest";
  }
  // Where the source's data or hole that contains `pos` ends (at most
  // `end`), from the remembered extents or by asking the source.
  uint64_t ExtentEnd(uint64_t pos, uint64_t end, bool* hole);
  Status Failed(const Status& s, uint64_t first, uint64_t count);

  Device* const source_;
  Device* const dest_;
  metadata::Metadata* const md_;
  const RegionGeometry geo_;
  Clock* const clock_;
  SourceWatch* const watch_;
  DestWatch* const dest_watch_;
  HealthTracker* const health_;
  const ZeroMode zeros_;

  std::shared_mutex mark_gate_;  // marks: shared; CloseMarksAndSetReadOnly: exclusive
  // The last extents the source reported: [hole_from_, hole_to_) is a hole,
  // [data_from_, data_to_) is data (empty when from == to).
  std::mutex extent_mu_;
  uint64_t hole_from_ = 0, hole_to_ = 0;  // GUARDED_BY(extent_mu_)
  uint64_t data_from_ = 0, data_to_ = 0;  // GUARDED_BY(extent_mu_)
  std::atomic<uint64_t> bytes_copied_{0};
  std::atomic<uint64_t> bytes_zeroed_{0};
  std::atomic<uint64_t> copy_failures_{0};
  std::atomic<uint64_t> overlay_source_bytes_{0};
  RateMeter copy_meter_;
  RateMeter zero_meter_;
};

}  // namespace clonefs
