// Engine: one clone. Everything between "a read / write / zero / fsync request
// at this offset" and the devices and metadata (SPEC §3-§5). Knows nothing of
// FUSE; the FUSE layer and the control channel call it.
//
// STRUCTURE
//   - Router: splits each request at region boundaries (regions/) and handles
//     each piece by hydration state (SPEC §3 table).
//   - Region lock table: at most one hydration in flight per region; writers
//     and zeroers of a region being hydrated wait for it.
//   - Committer: one thread; group commit (Freeze -> dest Flush ->
//     PersistFrozen) for fsyncs, O_SYNC writes, the 1 s timer, status queries
//     and shutdown. On failure: Abort, read-only (or fail) mode.
//   - Copier: background hydration (src/copier), pipelined (a byte target
//     of reads in flight, writes decoupled from reads), throttled by the
//     knobs, yielding to user I/O with a guaranteed minimum pace, pausing as
//     a whole while the source is down or failing.
//
// MODES (SPEC §5)
//   kReadWrite: normal.
//   kReadOnly: reads work; writes/zeros to hydrated regions work; anything
//     that needs a hydration, and every fsync that needs a commit, fails with
//     Status::ReadOnly (EIO at the FUSE edge); background hydration stops.
//     Every Fsync needs one here: the rolled-back transaction may have held
//     writes that were answered, so no later fsync may claim they are
//     durable. An O_SYNC write to a hydrated region still succeeds (dest is
//     flushed; in this mode the in-core bitmap is the durable one).
//   kFail: every I/O fails with Status::Failed (EIO).
//
// SOURCE CHANGES (SPEC §7a): a source that shrinks, grows or is modified
//   under the clone (Device::CheckUnchanged, checked after every source read,
//   after every copy before its mark, and about once a second by the copier)
//   puts the engine in a sticky "source changed" state, independent of the
//   mode: nothing read after the change is marked; background copying stops;
//   reads of unhydrated regions, writes and zeros that need a hydration, and
//   SEEK_DATA/SEEK_HOLE over unhydrated regions fail with IoError (EIO);
//   hydrated regions and whole-region writes keep working. Logged once at
//   error level; Stats().source_change says what changed.
//
// DEST CHANGES (SPEC §7a): dest truncated or resized by another program
// under the clone (DestWatch: after a failed dest read or write, before
// every copy and before its mark, before an fsync's commit, and about once
// a second by the copier, also once complete) puts the engine in a sticky
// "dest changed" state: every request fails with IoError (EIO) naming the
// change, copying stops, fsync fails. Logged once at error level;
// Stats().dest_change says what changed.
//
// THREAD SAFETY: every public method is safe to call concurrently from any
// number of threads (the FUSE worker threads, the control thread). Callbacks
// in EngineOptions are called from the committer thread.
//
// LIFECYCLE: Open() -> Start() -> I/O ... -> Shutdown() -> destroy. Shutdown
// stops the copier and the timer, makes a final commit and joins every thread
// the engine started; the destructor calls it if the caller did not.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "base/status.h"
#include "devices/device.h"
#include "devices/io_health.h"
#include "devices/source_health.h"
#include "metadata/metadata.h"
#include "regions/region_run.h"

namespace clonefs {

enum class EngineMode { kReadWrite, kReadOnly, kFail };
// "rw", "ro", "Fail" (dm-clone's words).
const char* EngineModeName(EngineMode m);

// Hydration knobs; all changeable at runtime (SPEC §4).
struct HydrationKnobs {
  // Most regions being hydrated at once, write-triggered ones included; 0
  // stops background copying (not the read-ahead of sequential readers,
  // which this does not limit: docs/design.md, "Read-ahead is the
  // reader's"). With 64 KiB regions the default allows 64 MiB
  // in flight, so that the copier's byte target (copier_inflight_bytes) is
  // what binds: enough to fill a remote source's link. Default: 1024, see
  // docs/design.md.
  uint32_t hydration_threshold = 1024;
  // Most contiguous regions copied as one unit (also the size of the
  // copier's source reads: 1 MiB with 64 KiB regions). Default: 16, see
  // docs/design.md.
  uint32_t hydration_batch_size = 16;
  // Background copy ceiling in bytes/second (not the read-ahead of
  // sequential readers); 0 = unlimited. Default: 0.
  uint64_t rate_bytes_per_s = 0;
  // Background hydration on/off (enable_hydration/disable_hydration); the
  // read-ahead of sequential readers runs either way. Default: true.
  bool hydration_enabled = true;
};

struct EngineOptions {
  HydrationKnobs knobs;
  // Punch-hole passes down to dest as deallocation (true) or writes zeros
  // (false, `no_discard_passdown`). Default: true.
  bool discard_passdown = true;
  // Commit every this many ms while something changed; 0 disables the timer.
  // Default: 1000.
  uint64_t commit_interval_ms = 1000;
  // Background copying keeps at least this pace (bytes/s) even under
  // continuous user I/O, unless disabled or rate-limited below it.
  // Default: 8 MiB/s.
  uint64_t min_background_pace_bytes_per_s = 8ull << 20;
  // First retry delay after a failed background copy; doubles per failure of
  // the same run, capped at 60 s. Default: 100 ms.
  uint64_t retry_backoff_initial_ms = 100;
  // Longest a request waits for a copy of its region already in flight
  // (whose source read may never return: SPEC §7a) while the source is not
  // up (stalled, reconnecting) before it fails with EIO (ETIMEDOUT); a FUSE
  // interrupt ends the wait at once (EINTR). The mount's --source-timeout.
  // Default: 30 s.
  uint64_t source_timeout_ns = 30'000'000'000;
  // Reader threads of the background copier for a source without
  // overlapped reads (a local file); a remote source overlaps its own.
  // Default: 4, see docs/design.md.
  uint32_t copier_threads = 4;
  // Threads of the background copier that write what it read into dest.
  // Default: 2, see docs/design.md.
  uint32_t copier_writer_threads = 2;
  // Bytes the background copier keeps in flight (read or being read from
  // the source, not yet in dest), within hydration_threshold. Default:
  // 64 MiB, enough for a source 50 ms away at ~700 MiB/s; see docs/design.md.
  uint64_t copier_inflight_bytes = 64ull << 20;
  // At most this much of what the copier wrote (through the page cache,
  // Device::WriteCached, with or without --buffered) stays cached before it
  // is evicted
  // (copier/cache_dropper.h). Default: 64 MiB.
  uint64_t copier_cache_lag_bytes = 64ull << 20;
  // User I/O that ended less than this ago still counts as "busy" for the
  // copier's foreground-first policy (so a queue-depth-1 client, idle between
  // its requests for microseconds, is seen as busy). Default: 20 ms.
  uint64_t foreground_idle_ms = 20;
  // Time source. Default: Clock::Real().
  Clock* clock = nullptr;
  // Called once, from the committer thread, after the commit that made every
  // region hydrated durably; not called for a clone that was already
  // complete when opened. Default: none.
  std::function<void()> on_complete;
  // Called from the committer thread whenever the mode changes. Default: none.
  std::function<void(EngineMode)> on_mode_change;
  // Watch dest for writes by other programs (Device::WatchForeignWrites)
  // from Start until the clone is complete (then dest alone is the image,
  // and the watch's cost per write ends) or Shutdown: one makes dest
  // changed (DestWatch::Written). Default: true.
  bool watch_dest_writers = true;
  // With that watch, refuse other programs' opens of dest (the watch's OPEN
  // GUARD: where the daemon has the privilege; logged). Default: true.
  bool guard_dest_opens = true;
  // Called once, from the watch's thread (or the copier's, for
  // dest_bypass), at the first write by another program before completion,
  // with the change (EngineStats::dest_change, or that write if dest had
  // already changed size): for the mount to remember it past this engine.
  // Default: none.
  std::function<void(const std::string& change)> on_dest_written;
  // Asked about once a second (the copier's look at dest) until the clone
  // is complete: how dest can be written without the clone seeing it ("is
  // the backing file of loop device /dev/loop0"), or "" (nothing). A
  // non-empty answer makes dest changed (DestWatch::Bypassed) and is told
  // to on_dest_written. Default: none.
  std::function<std::string()> dest_bypass;

  // --- read-driven hydration (SPEC §10; docs/design.md, "Hydration order") ---
  // Copy-on-read: whole regions a user read fetches from the source are
  // written to dest and marked (by the copier's writers, off the reader's
  // path). Changeable at runtime. Default: false (the mount turns it on for
  // remote sources).
  bool copy_on_read = false;
  // Read hints: the copier hydrates ahead of sequential readers and around
  // recent reads before its cursor, and a sequential reader that meets a
  // region being copied waits for the copy instead of fetching it again.
  // Changeable at runtime. Default: true.
  bool read_hints = true;
  // An access profile to replay: regions hydrated in this order after the
  // hints and before the cursor. Default: none.
  std::vector<RegionRun> profile_order;
  // Where to record this clone's access profile (regions in the order first
  // read or written), written at Shutdown; empty: not recorded. Default: "".
  std::string record_profile_path;
  // What an earlier mount of this clone recorded into record_profile_path
  // (in this clone's regions, in order): the recording continues after it,
  // so the file written at Shutdown keeps those first touches. Default: none.
  std::vector<RegionRun> recorded_before;
  // The source's identity, written into a recorded profile.
  uint64_t profile_source_size = 0, profile_source_fp1 = 0, profile_source_fp2 = 0;
};

// How long a status query waits for its commit (Engine::CommitAndStats).
inline constexpr uint64_t kStatusCommitWaitNanos = 2'000'000'000;

struct EngineStats {
  uint64_t image_size = 0;
  uint64_t region_size = 0;
  uint64_t nr_regions = 0;
  uint64_t hydrated_regions = 0;            // in core
  uint64_t committed_hydrated_regions = 0;  // durable
  uint64_t hydrating_regions = 0;           // copies in flight now
  uint64_t hydrated_bytes = 0;              // bytes of image in hydrated regions
  uint64_t bytes_copied = 0;                // copied from source since Start
  uint64_t bytes_zeroed = 0;                // hydrated by zeroing (sparse/discard)
  // Smoothed copy rate: bytes read from the source and written into dest
  // per second (background pieces, write-triggered hydrations,
  // copy-on-read), over copy_rate_window_ns (longer at low rate ceilings:
  // BackgroundCopier::CopyRateWindowNanos). 0 once nothing was copied for
  // twice the window, or for 1 s while background copying is stopped
  // (copy_stopped non-empty) or every region is hydrated.
  uint64_t copy_rate_bytes_per_s = 0;
  uint64_t copy_rate_window_ns = 0;
  // Smoothed zero rate: bytes hydrated without reading the source (its
  // holes, regions zeroed whole by users) per second, over 5 s; 0 after
  // 10 s without any (1 s while copying is stopped).
  uint64_t zero_rate_bytes_per_s = 0;
  // What is left to copy: unhydrated bytes the source holds data for. An
  // estimate: the unhydrated runs are checked against the source's holes
  // (NextData/NextHole) up to kRemainingQueries queries or 100 ms of them
  // (fewer for a remote source, none while the source is not up or has left
  // a request unanswered for a second); what is not checked counts as
  // data. At most the unhydrated bytes.
  uint64_t remaining_copy_bytes = 0;
  // How long the source has been silent when these stats were taken: the
  // oldest request still waiting for its answer
  // (SourceHealth::oldest_request_unix_ns) has waited that long, and
  // nothing more was delivered (copies, users' reads, a remote source's
  // answered bytes) since an earlier look saw the same figure (a Stats(),
  // or the copier's look at the source every second). 0 when no
  // request waits, or when answers keep coming (a slow link whose pieces
  // queue at the server).
  uint64_t source_silent_ns = 0;
  // Why background copying is stopped right now; empty while it runs (or
  // everything is hydrated): "hydration disabled", "hydration_threshold 0",
  // "metadata read-only", "fail mode", "source changed", or "waiting for the
  // source (<copier_pause>: <reason>)".
  std::string copy_stopped;
  uint64_t copy_failures = 0;               // failed copies since Start
  // Unhydrated regions whose last copy failed: the copier retries each with
  // backoff (BackgroundCopier::FailingRegions).
  uint64_t copy_failing_regions = 0;
  uint64_t commits = 0;                     // commits that persisted something
  uint64_t commit_failures = 0;
  // The commit running now: its step ("flushing the destination", "writing
  // the metadata", "rolling back to the last commit") and how long it has
  // been at it; empty / 0 when no commit runs.
  std::string commit_step;
  uint64_t commit_step_ns = 0;
  bool hydration_done = false;              // every region hydrated and committed
  EngineMode mode = EngineMode::kReadWrite;
  HydrationKnobs knobs;
  bool discard_passdown = true;
  metadata::SpaceInfo metadata_space;
  // Empty while the source is what the clone was made from; otherwise what
  // changed ("<source> shrank from A to B bytes", ...). Once set, nothing
  // more is hydrated and requests that need the source fail (SPEC §7a).
  // Set as soon as either the engine or the source device saw the change,
  // except for a complete clone (its source is no longer needed).
  std::string source_change;
  // Empty while dest is the size it had when the clone opened it; otherwise
  // what changed ("<dest> shrank from A to B bytes"). Once set, every
  // request fails with EIO and nothing more is copied (SPEC §7a).
  std::string dest_change;
  // The source's reachability (Device::Health): a remote source that is
  // reconnecting, or any source whose reads wait past the source timeout;
  // kChanged (with what changed) whenever source_change is set, and also
  // once a complete clone's remote source was found changed.
  SourceHealth source_health;
  // Whether dest takes new data (HealthTracker): ok, full (ENOSPC/EDQUOT)
  // or failing with I/O errors, until a copy succeeds again.
  DestCondition dest_condition = DestCondition::kOk;
  // The most recent device or metadata error, and how many of its kind.
  LastError last_error;
  // Background copier: bytes read (or being read) from the source and not
  // yet written to dest, and source reads that failed since Start.
  uint64_t copier_inflight_bytes = 0;
  uint64_t copier_failed_reads = 0;
  // Idle copy buffers the copier keeps for reuse (CopyBufferPool): freed
  // once it has been idle for BackgroundCopier::kPoolTrimIdleNanos.
  uint64_t copier_pooled_bytes = 0;
  // Prefetch bytes (read-ahead, the replayed profile) the copier allows in
  // flight now, and the source latency floor that sizes it (0 until one of
  // the copier's reads completed): BackgroundCopier::PrefetchRoom.
  uint64_t copier_prefetch_room_bytes = 0;
  uint64_t source_latency_floor_ns = 0;
  // Whether the source's user reads queue behind the copier's, and the
  // bytes background copies may keep in flight now
  // (BackgroundCopier::BackgroundWindow: the byte target unless the link is
  // shared, and at most two seconds of the rate ceiling).
  bool source_link_shared = false;
  uint64_t copier_window_bytes = 0;
  // Empty while the copier runs; "source down" or "source failing" while
  // it is paused for the source as a whole (SPEC §9, Reconnect), since when
  // (wall clock, ns since the Unix epoch) and why.
  std::string copier_pause;
  uint64_t copier_paused_since_unix_ns = 0;
  std::string copier_pause_reason;

  // Read-driven hydration (SPEC §10).
  bool copy_on_read = false;
  bool read_hints = false;
  // Bytes read from the source for users' requests (their reads, and the
  // copies their partial writes and zeros of unhydrated regions need), and
  // by the copier.
  uint64_t user_source_bytes = 0;
  uint64_t copier_source_bytes = 0;
  // Regions hydrated since Start, by why they were copied: read-ahead of
  // sequential readers, near recent reads, the replayed profile, the
  // cursor, and copy-on-read (from user reads, no extra source read).
  uint64_t ahead_regions = 0, near_regions = 0, profile_regions = 0, cursor_regions = 0,
           cor_regions = 0;
  // Bytes the copier read from the source for read-ahead and near hints.
  uint64_t ahead_source_bytes = 0, near_source_bytes = 0;
  // Sequential readers being read ahead of now, and pending near hints.
  uint64_t sequential_readers = 0;
  uint64_t near_hints = 0;
  // The replayed profile: regions of it hydrated (in core) and in all (0:
  // no profile).
  uint64_t profile_hydrated = 0, profile_total = 0;
  // The profile being recorded: where, and regions recorded so far.
  std::string record_profile_path;
  uint64_t profile_recorded = 0;
};

class Engine {
 public:
  // Takes ownership of all three. REQUIRES: source->Size() ==
  // md->superblock().image_size; dest->Size() >= image size; source is
  // read-only. Errors: InvalidArgument naming what does not fit.
  static Result<std::unique_ptr<Engine>> Open(std::unique_ptr<Device> source,
                                              std::unique_ptr<Device> dest,
                                              std::unique_ptr<metadata::Metadata> md,
                                              const EngineOptions& options);
  virtual ~Engine() = default;

  // Starts the committer and the copier. Idempotent.
  virtual Status Start() = 0;
  // Stops the copier, commits, joins all threads. Idempotent; returns the
  // final commit's status.
  virtual Status Shutdown() = 0;
  // Whether Shutdown wrote the access profile being recorded
  // (EngineOptions::record_profile_path): OK if it did, if nothing is
  // recorded or before Shutdown; otherwise Save's error (the recording is
  // lost: the caller tells the user, not only the log). Default: OK.
  virtual Status ProfileWritten() const { return Status::OK(); }

  // --- I/O (SPEC §3). Requests must lie inside the image: InvalidArgument
  // otherwise. ---
  virtual Status Read(uint64_t off, void* buf, size_t len) = 0;
  // For a transport that can read a file itself (the FUSE io_uring queues):
  // if a read of [off, off+len) needs nothing of the engine but dest's
  // bytes -- every region in it hydrated, no copied data still in the page
  // cache, dest able to serve the range to a page-aligned buffer
  // (Device::DirectReadFd) -- notes the read as Read would (foreground
  // activity, profile, sequential-read tracking) and returns the
  // descriptor to pread the range from. Otherwise -1, and nothing is noted:
  // call Read. A read that then fails or comes back short is retried with
  // Read, which reports the error. Default: -1.
  virtual int DirectReadFd(uint64_t /*off*/, size_t /*len*/) { return -1; }
  // The same for a write that is not `sync`: if it needs nothing of the
  // engine but landing in dest -- every region in it hydrated, read-write
  // mode, dest in good health (nothing to recover), dest able to take the
  // range from a page-aligned buffer (Device::DirectWriteFd), no test kill
  // hook installed -- notes it as Write would and returns the descriptor to
  // pwrite it to; otherwise -1: call Write. A write that then fails or comes
  // back short is retried with Write, which reports the error. Default: -1.
  virtual int DirectWriteFd(uint64_t /*off*/, size_t /*len*/) { return -1; }
  // `sync`: the write came with O_SYNC/O_DSYNC; it is durable (data and
  // metadata) before this returns.
  virtual Status Write(uint64_t off, const void* buf, size_t len, bool sync) = 0;
  // Makes [off, off+len) read back as zeros. `punch`: FALLOC_FL_PUNCH_HOLE
  // (deallocate in dest when discard passdown is on), otherwise ZERO_RANGE.
  virtual Status Zero(uint64_t off, uint64_t len, bool punch) = 0;
  // fsync/fdatasync: a commit (group commit; concurrent callers share one).
  virtual Status Fsync() = 0;

  // --- control ---
  virtual EngineStats Stats() const = 0;
  // Commits (as a status query does in dm-clone), then returns Stats(). Waits
  // for that commit at most kStatusCommitWaitNanos: a commit still running
  // then (a dest whose flush hangs) shows in Stats().commit_step instead of
  // holding the caller.
  virtual Result<EngineStats> CommitAndStats() = 0;
  virtual EngineMode mode() const = 0;
  // Every region hydrated *and committed* (Stats().hydration_done), without
  // building the stats: cheap enough for every FUSE open. Once true, stays
  // true.
  virtual bool hydration_done() const = 0;
  // Bytes of the image that may hold data, for the exposed file's
  // st_blocks (what du, cp --sparse=auto and rsync --sparse look at before
  // they ask SEEK_DATA/SEEK_HOLE): dest's allocation plus every unhydrated
  // byte, taken as data (the source is not asked), at most image_size().
  // Once every region is hydrated that is dest's allocation alone.
  // image_size() where dest's allocation is not known (a block device).
  // Cheap: an fstat and a counter.
  virtual uint64_t AllocatedBytes() const { return image_size(); }
  // Whether dest changed under the clone (Stats().dest_change non-empty),
  // cheaply. Once true, stays true.
  virtual bool dest_changed() const { return false; }
  // The FUSE layer passed an open with write access through to dest (FUSE
  // passthrough): from then on the kernel writes dest itself, and cannot
  // refuse a write past the image's end (EFBIG through the daemon), which
  // extends dest. Such growth is then cut back to the image's size rather
  // than taken for a change by another program (DestWatch). Default: nothing.
  virtual void WritesPassedThrough() {}
  virtual void SetHydrationThreshold(uint32_t n) = 0;
  virtual void SetHydrationBatchSize(uint32_t n) = 0;
  virtual void SetRate(uint64_t bytes_per_s) = 0;
  virtual void EnableHydration(bool on) = 0;
  virtual void SetCopyOnRead(bool on) = 0;
  virtual void SetReadHints(bool on) = 0;
  virtual uint64_t image_size() const = 0;

  // SEEK_DATA / SEEK_HOLE over the image as the user sees it: hydrated
  // regions take dest's allocation, unhydrated ones the source's. SeekData
  // returns the first data offset >= off, or image_size() if there is none
  // (the FUSE layer answers ENXIO then, as it must for off >= image_size()).
  // SeekHole returns the first hole offset >= off; the end of the image
  // counts as a hole, so it returns image_size() at most. Errors: the
  // devices'; Failed in fail mode.
  virtual Result<uint64_t> SeekData(uint64_t off) = 0;
  virtual Result<uint64_t> SeekHole(uint64_t off) = 0;

 protected:
  Engine() = default;
};

}  // namespace clonefs
