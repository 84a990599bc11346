// BackgroundCopier: hydrates the regions no one has written, in the
// background, within the knobs (SPEC §4), keeping enough bytes in flight to
// fill a remote source's link (SPEC §9, Pipelining).
//
// STRUCTURE (a pipeline: fetches are decoupled from writes)
//   - The issuer thread picks units and issues their reads. A unit is a run
//     of contiguous regions that are unhydrated, not in flight and not
//     backing off, at most min(batch, threshold - regions in flight, one
//     unit of the rate ceiling in whole regions but at least one region),
//     locked in the RegionLockTable. Hydrator::PlanRun splits it into the
//     source's holes and data; data is read in pieces of at most
//     min(kMaxCopyChunk, one unit of the rate) into pooled buffers
//     (CopyBufferPool), holes go straight to the writers. A piece
//     is issued only while the bytes in flight (read or being read from the
//     source, not yet written) stay within `inflight_bytes` (one piece may
//     always be in flight, however large); the rate ceiling is charged for
//     each piece as it is issued.
//
// RATE CEILING (TokenBucket; docs/design.md, "Rate ceiling")
//   Every piece the copier reads from the source waits for the rate bucket
//   (the profile's units too; not the read-ahead: READ-AHEAD), and no piece
//   holds more than
//   TokenBucket::UnitBytes(rate) (~1 s of rate, at least 4 KiB): over any
//   interval T the copier reads at most rate*T + 100 ms of rate + one unit.
//   At low rates a unit is one region, and a region larger than a unit is
//   copied in several pieces under its lock and marked after the last. A
//   unit waiting for the rate (or the pace) between its pieces is given up
//   (abandoned unmarked, its issued pieces land first) as soon as a user
//   request waits for one of its regions (RegionLockTable::AnyWaiting), and
//   when copying is stopped (disable, threshold 0, a mode change, Stop).
//   - Reads: source->ReadAsync where the source overlaps reads
//     (AsyncReads(): a remote source); otherwise `workers` reader threads of
//     our own (ReaderPool) call Read, and at most 2 x workers pieces are in
//     flight (reading or waiting for a writer), which bounds memory for a
//     local source that reads faster than dest writes. A queued read whose
//     unit has failed, or issued before the source was seen to change, is
//     dropped by the reader that takes it; the issuer issues nothing once
//     the source changed (SPEC §7a).
//   - `writer_threads` writer threads take finished reads from a queue
//     (pieces of prefetch and copy-on-read units, which a reader may be
//     waiting for, from a queue of their own first):
//     write the piece through the page cache (Device::WriteCached, even
//     for an O_DIRECT dest: a writer never waits for the disk or for a
//     commit's dest flush, which on some disks stalls direct writes for the
//     whole flush; all-zero 4 KiB blocks are punched, not written;
//     Hydrator::WriteFetched) or punch the hole, release its budget. The
//     CacheDropper writes back and evicts what they wrote beyond
//     cache_lag_bytes. The
//     writer that completes a unit's last piece finishes it:
//     Hydrator::FinishRun (source re-checked), the "copier.after_copy" kill
//     point, mark, unlock. So a region is marked only after all of its data
//     is in dest and the source was seen unchanged afterwards (SPEC §5).
//   - About once a second, while regions remain, the issuer re-examines the
//     source (check_source); may_copy is false once it changed. It
//     re-examines dest (check_dest) as often, also once the clone is
//     complete. Once every region is hydrated and committed
//     (complete_committed), it releases the source (Device::Release), once.
//
// ORDER (SPEC §10; docs/design.md, "Hydration order")
//   PickUnit takes, in this order: the access profile being replayed
//   (SetProfile: its runs in order, from a profile cursor; what the workload
//   will read), the read-ahead windows of sequential readers (ReadHints; a
//   guess, taken only once the profile cursor has reached the profile's
//   end), the units around recent reads of unhydrated regions (ReadHints,
//   "near"), then the cursor that walks the bitmap and wraps. Every candidate is re-checked as
//   before (unhydrated, not locked, not backing off).
//
// READ-AHEAD (SPEC §10: buffered readers get readahead comparable to
//   reading the source directly; docs/design.md, "Read-ahead is the
//   reader's")
//   The read-ahead window of a dense sequential reader (one whose reads
//   cover at least half of what it moves over: ReadHints) holds what the
//   reader reads next: the copier fetches it on the reader's behalf, like
//   the read it saves, not as background copying. (A sparse reader's window
//   is mostly what it skips: it is taken in the background order only, under
//   the rate, the threshold and enable/disable.) Before anything else (unless the
//   profile is being replayed, or, while background copying runs, a probe
//   of a source-wide backoff is due), the issuer takes a read-ahead unit
//   (PickUnit, Scope::kAhead) while the prefetch bytes in flight are below
//   PrefetchRoom() (ReadAheadDue), and issues its pieces unpaced, without
//   waiting for or charging the rate bucket, and without the threshold's
//   limit (a unit is at most `batch` regions). It goes on while background
//   copying is disabled or its threshold is 0 (the profile, near hints and
//   the cursor then copy nothing; a unit of theirs being issued is
//   abandoned as before), and under any rate (which bounds the rest). It is
//   bounded by the readers: at most kStreams windows of at most
//   ReadHints::kMaxWindow, only while a reader keeps meeting unhydrated
//   regions, and PrefetchRoom() plus one piece in flight. Not in read-only
//   mode, nor once the source changed (may_copy), nor while the source is
//   down (SourceGate). Its units are finished like any other (SPEC §5).
//
// COPY-ON-READ (SPEC §10): AdoptFetched takes regions a user's read has
//   just fetched from the source (the caller held them in the lock table
//   across the read) and hands their bytes to the writers as a one-piece
//   unit: written, source re-checked, "read.after_cor_write" kill point,
//   marked, unlocked -- exactly a copy's finish. The reader never waits for
//   the dest write. Bounded: refused beyond twice the byte target in flight.
//
// FOREGROUND FIRST (docs/design.md)
//   While user I/O is in flight or ended less than foreground_idle_ns ago,
//   one unit is copied at a time, one piece at a time, paced at
//   min_pace_bytes_per_s by its own token bucket (as before the pipeline:
//   user latency sees at most one piece of competing I/O; hydration never
//   stops under continuous load). When user I/O stops, copying returns to
//   full speed (the rate ceiling, the threshold and the byte target apply).
//   Prefetch units -- read-ahead of a sequential reader, and the replayed
//   profile -- are the workload's next reads, fetched early: while user I/O
//   is busy they are issued without the pace (the profile's never without
//   the rate ceiling; READ-AHEAD), up to PrefetchRoom() in flight, beside the one paced unit
//   (which takes near hints and the cursor), with PrefetchRoom() of the
//   byte budget of their own. While the profile is being replayed its units
//   hold at most PrefetchRoom() when no one is busy too: more arrives no
//   sooner on a copier bound by CPU and fresh memory (docs/performance.md
//   §8), and competes with the regions the workload reads next. The room is
//   the source's bandwidth-delay product for a workload reading at 1 GiB/s
//   over the shortest time the source took to answer recently (LatencyFloor;
//   the floor, not the mean, so the room's own queueing does not grow it),
//   between 16 and 64 MiB: a source 50 ms away needs ~50 MiB in flight to
//   stay ahead of such a workload, a near one no more than the 16 MiB.
//   IsPrefetching tells the engine which regions such a unit holds once all
//   its reads are issued, so a reader waits for that copy instead of
//   fetching the region again.
//
// SHARED LINK (SPEC §4, foreground first; docs/design.md, "A shared link")
//   When a user's read of the source waits behind the copier's reads (a
//   remote source reached over one connection: Device::SharesReadQueue),
//   the byte target is not kept in flight: a read issued while 64 MiB of
//   copies are queued ahead of it would wait for all of them (seconds on a
//   slow link). The copier keeps SourceWindow() in flight instead, a
//   window sized like a congestion window from what the link delivers
//   (LinkWindow: about two round trips of the link's rate; probed every
//   few seconds so queueing at the server cannot ratchet it up), and its
//   pieces hold at most LinkWindow::PieceCap (small on a slow link). The
//   prefetch room is at most the window too (on top of the copies' budget,
//   as always: at most twice the window in all).
//
// FAILURES
//   - Isolated: a failed unit stays unhydrated and its regions back off
//     (RetryBackoff: doubling from retry_backoff_initial_ms); a failed
//     region is retried alone. Logged at most once per 10 s.
//   - Source-wide (SourceBackoff): when a read fails and source->Health() is
//     not up, the copier pauses as a whole: no reads; it re-checks health
//     every kSourcePollNanos and resumes at once when up. When reads fail
//     while the source claims to be up, SourceBackoff::kFailuresToBackOff
//     failures in a row (of regions that had not failed before) make it back
//     off source-wide: one probe region at a time, the delay doubling from
//     100 ms to 1 s, back to full speed at the first success. Regions that
//     failed because of the source as a whole get no per-region backoff, so
//     the copier resumes at full speed. Logged once per change of state.
//   - A source whose health says kChanged is not paused for: check_source
//     records the change and copying stops for good (SourceWatch).
//
// THREAD SAFETY: every public method may be called from any thread. Knob
//   setters take effect at the issuer's next loop (it never sleeps longer
//   than kMaxSleepNanos without re-checking; setters wake it).
// LIFECYCLE: Start() spawns the threads (idempotent); Stop() (or the
//   destructor) stops issuing, waits until the `done` of every read in
//   flight has been called, lets the writers finish what was read (units
//   not fully issued are dropped unmarked), and joins every thread.
// LOCK ORDER: mu_ before the RegionLockTable's shard mutexes (PickUnit);
//   q_mu_, pf_mu_ and Unit::mu are leaves (nothing is locked while holding them);
//   no lock is held while calling into the source or dest.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "copier/cache_dropper.h"
#include "copier/copy_buffer_pool.h"
#include "copier/foreground.h"
#include "copier/hydrator.h"
#include "copier/latency_floor.h"
#include "copier/link_window.h"
#include "copier/read_hints.h"
#include "copier/reader_pool.h"
#include "copier/region_locks.h"
#include "copier/retry_backoff.h"
#include "copier/source_backoff.h"
#include "copier/token_bucket.h"
#include "metadata/metadata.h"

namespace clonefs {

struct CopierOptions {
  // Most regions in flight at once, write-triggered hydrations and the
  // read-ahead's included (which it does not limit: READ-AHEAD); 0 stops
  // background copying. With 64 KiB regions the default allows 64 MiB, so
  // the byte target below is what binds. Default: 1024 (docs/design.md).
  uint32_t hydration_threshold = 1024;
  // Most contiguous regions per unit; 0 is taken as 1. Also the size of the
  // copier's source reads (1 MiB with 64 KiB regions). Default: 16.
  uint32_t hydration_batch_size = 16;
  // Target bytes in flight: read or being read from the source and not yet
  // written to dest. Enough for a source 50 ms away at ~700 MiB/s (its
  // bandwidth-delay product is 35 MiB) with room for the writes. Default:
  // 64 MiB (docs/design.md).
  uint64_t inflight_bytes = 64ull << 20;
  // Most bytes the writers wrote (Device::WriteCached) that stay in the
  // page cache before they are evicted (cache_dropper.h). Default: 64 MiB.
  uint64_t cache_lag_bytes = 64ull << 20;
  // Ceiling in bytes/s on data read from the source, but for the read-ahead
  // of sequential readers (READ-AHEAD); 0 = none. Default: 0.
  uint64_t rate_bytes_per_s = 0;
  // Background copying on; the read-ahead runs either way (READ-AHEAD).
  // Default: true.
  bool enabled = true;
  // Pace kept under continuous user I/O. Default: 8 MiB/s.
  uint64_t min_pace_bytes_per_s = 8ull << 20;
  // First retry delay of a failed region; doubles per failure, capped at
  // 60 s. Default: 100 ms.
  uint64_t retry_backoff_initial_ms = 100;
  // Reader threads for a source without overlapped reads (a local file);
  // unused for a source whose AsyncReads() is true. Default: 4.
  uint32_t workers = 4;
  // Threads that write finished reads into dest. Default: 2 (docs/design.md).
  uint32_t writer_threads = 2;
  // User I/O that ended less than this ago still counts as "busy".
  // Default: 20 ms.
  uint64_t foreground_idle_ns = 20'000'000;
};

// Why a unit is copied (for status: the hydration order in effect).
enum class CopyOrigin { kCursor, kAhead, kNear, kProfile, kCopyOnRead };
inline constexpr int kCopyOrigins = 5;
const char* CopyOriginName(CopyOrigin o);

// Counters of one origin since Start.
struct OriginStats {
  uint64_t source_bytes = 0;  // bytes read from the source for it
  uint64_t regions = 0;       // regions it marked hydrated
};

struct CopierContext {
  metadata::Metadata* md = nullptr;
  Hydrator* hydrator = nullptr;  // its source() is the one the copier reads
  RegionLockTable* locks = nullptr;
  ForegroundMonitor* foreground = nullptr;
  Clock* clock = nullptr;
  // Whether copying is allowed now (the engine is in read-write mode).
  // Called from the issuer thread. Required.
  std::function<bool()> may_copy;
  // Called once, from the issuer thread, the first time it finds every
  // region hydrated in core (the engine then commits promptly). Optional.
  std::function<void()> on_all_hydrated;
  // Re-examines the source (SourceWatch::Check). Called from the issuer
  // thread about once per kSourceCheckNanos while regions remain
  // unhydrated, whether copying is enabled or not. Optional.
  std::function<void()> check_source;
  // Re-examines dest (DestWatch::Check). Called from the issuer thread
  // about once per kSourceCheckNanos, also once every region is hydrated.
  // Optional.
  std::function<void()> check_dest;
  // Whether every region is hydrated and committed (the source is no
  // longer needed). Once it says so, the issuer calls the source's Release
  // (Device::Release), once, on its own thread. Optional: never released.
  std::function<bool()> complete_committed;
};

// Whether background copying is paused for the source as a whole.
struct CopierPause {
  SourceBackoff::State state = SourceBackoff::State::kRunning;
  uint64_t since_ns = 0;       // the copier's clock; 0 while running
  uint64_t since_unix_ns = 0;  // wall clock; 0 while running
  std::string reason;          // the source's state or error; empty while running
  uint64_t probe_delay_ns = 0;  // kFailing: the current delay between probes
  bool paused() const { return state != SourceBackoff::State::kRunning; }
};

class BackgroundCopier {
 public:
  // The issuer re-checks its conditions at least this often.
  static constexpr uint64_t kMaxSleepNanos = 50'000'000;
  // How often an idle or busy copier re-examines the source.
  static constexpr uint64_t kSourceCheckNanos = 1'000'000'000;
  // How often a copier paused for a down source asks it whether it is up.
  static constexpr uint64_t kSourcePollNanos = 50'000'000;
  // How long the issuer stays idle before the copy buffers are freed.
  static constexpr uint64_t kPoolTrimIdleNanos = 10'000'000'000;
  // Prefetch bytes in flight (read-ahead, the profile) allowed beside the
  // paced unit while user I/O is busy; the replayed profile's units never
  // hold more, busy or not (FOREGROUND FIRST): the source's bandwidth-delay
  // product at kPrefetchBytesPerSecond over its latency floor, at least
  // kPrefetchBusyBytes and at most kPrefetchMaxBytes (PrefetchRoom).
  static constexpr uint64_t kPrefetchBusyBytes = 16ull << 20;
  static constexpr uint64_t kPrefetchMaxBytes = 64ull << 20;
  // The rate the room is sized for: a workload reading at local-disk speed.
  static constexpr uint64_t kPrefetchBytesPerSecond = 1ull << 30;
  // The smoothing window for the copy rate at this ceiling (0: none): 8 times the time one piece takes at the
  // ceiling (pieces: TokenBucket::UnitBytes, ~1 s of rate; a 4 KiB block
  // below 4 KiB/s), at least RateMeter::kDefaultWindowNanos (5 s). So a
  // paced copier's rate reads steady between its pieces: 8 s at 100 KiB/s,
  // ~9 hours at 1 byte/s.
  static uint64_t CopyRateWindowNanos(uint64_t rate_bytes_per_s);

  // Borrows everything in ctx; it must outlive the copier.
  BackgroundCopier(const CopierContext& ctx, const CopierOptions& options);
  ~BackgroundCopier();
  BackgroundCopier(const BackgroundCopier&) = delete;
  BackgroundCopier& operator=(const BackgroundCopier&) = delete;

  void Start();
  void Stop();
  // Makes the issuer re-evaluate its conditions now (e.g. after a mode
  // change).
  void Wake();

  void SetThreshold(uint32_t n);
  void SetBatchSize(uint32_t n);
  void SetRate(uint64_t bytes_per_s);
  void Enable(bool on);
  uint32_t threshold() const { return threshold_.load(); }
  uint32_t batch_size() const { return batch_.load(); }
  uint64_t rate() const { return rate_.rate(); }
  bool enabled() const { return enabled_.load(); }
  uint64_t inflight_target() const { return options_.inflight_bytes; }

  // Units copied and failed by the background copier since Start.
  uint64_t units_copied() const { return units_copied_.load(); }
  uint64_t unit_failures() const { return unit_failures_.load(); }
  // Units given up unmarked, while paced, because a user request waited for
  // one of their regions.
  uint64_t units_yielded() const { return units_yielded_.load(); }
  // Source reads of the background copier that failed, since Start.
  uint64_t failed_reads() const { return failed_reads_.load(); }
  // Bytes read or being read from the source and not yet written to dest.
  uint64_t inflight_bytes() const { return inflight_bytes_.load(); }
  // Idle copy buffers kept for reuse (see Idle()).
  uint64_t pooled_bytes() const { return pool_.idle_bytes(); }
  // Prefetch bytes allowed in flight now (see kPrefetchBusyBytes), within
  // the byte target, and the source latency floor it is sized by (0 until a
  // read completed).
  uint64_t PrefetchRoom() const;
  uint64_t source_latency_floor() const { return latency_.Get(ctx_.clock->NowNanos()); }
  // The bytes the copier may keep in flight now (SHARED LINK): the byte
  // target, or on a shared link the window sized by the source's delivery
  // rate and latency floor. Both PrefetchRoom() and the background budget
  // stay within it on a shared link.
  uint64_t SourceWindow() const;
  // What background copies (not prefetch) may keep in flight: SourceWindow(),
  // and under a rate ceiling at most kRateWindowSeconds of the rate.
  uint64_t BackgroundWindow() const;
  static constexpr uint64_t kRateWindowSeconds = 2;
  // Whether the source's user reads queue behind the copier's
  // (Device::SharesReadQueue), as seen at Start.
  bool shared_link() const { return shared_link_.load(std::memory_order_relaxed); }
  // Whether data the writers wrote through the page cache may still be
  // there (CacheDropper::AnyPending): until the CacheDropper evicts it,
  // which it does for all of it once every region is hydrated.
  bool MayHaveCachedWrites() const { return dropper_.AnyPending(); }
  // The source-wide pause, if any.
  CopierPause pause() const;
  // Unhydrated regions whose last copy failed, retried with backoff (a
  // region hydrated since by other means, a write, is not counted).
  uint64_t FailingRegions() const;

  // --- read-driven hydration (SPEC §10) ---
  // Records a user read for the hints (ReadHints::NoteRead) and wakes the
  // issuer when a sequential reader moved its read-ahead window. Returns
  // whether the read continues a sequential stream.
  bool NoteRead(uint64_t off, uint64_t len, bool unhydrated);
  void SetHints(bool on) { hints_.SetEnabled(on); }
  bool hints_enabled() const { return hints_.enabled(); }
  const ReadHints& hints() const { return hints_; }
  // Sequential readers the copier reads ahead of now (for status): those of
  // the hints, also while background copying is disabled or its threshold
  // is 0 (READ-AHEAD), but none while a replayed profile is still being
  // fetched (see ORDER).
  int ReadAheadStreams(uint64_t now_ns) const;
  // The access profile to replay (regions in order), before the cursor.
  // Call before Start.
  void SetProfile(std::vector<RegionRun> runs);
  // Profile progress: regions of the profile marked hydrated (in core) and
  // in all. Walks the profile: for status, not for hot paths.
  void ProfileProgress(uint64_t* hydrated, uint64_t* total) const;
  // Copy-on-read: see ORDER above. REQUIRES: the caller holds regions
  // [first, first+count) in the lock table, they are unhydrated, `data` is
  // their full bytes as just read from the source (and found unchanged),
  // and their length is at most kMaxCopyChunk. Returns true if the copier
  // took them over (it unlocks them); false if it refused (the caller still
  // holds them).
  bool AdoptFetched(uint64_t first, uint64_t count, const uint8_t* data);
  // Whether region r is held by a prefetch unit (read-ahead or profile) in
  // flight. A relaxed atomic load when none is.
  bool IsPrefetching(uint64_t r) const;
  bool AnyPrefetching() const { return prefetch_units_.load(std::memory_order_relaxed) != 0; }
  OriginStats origin_stats(CopyOrigin o) const;

 private:
  struct Unit;
  struct Piece;
  struct Run {
    uint64_t first = 0;
    uint64_t count = 0;
  };
  enum class Pick { kPicked, kNoRoom, kNothing };
  static bool IsPrefetch(CopyOrigin o) { return o == CopyOrigin::kAhead || o == CopyOrigin::kProfile; }

  // --- issuer (background_copier.cc) ---
  void IssuerLoop();
  // 0 if the issuer may go on (*probe: the next unit is the one probe of a
  // source-wide backoff), else how long to wait.
  uint64_t SourceGate(uint64_t now, bool* probe);
  bool BusyAllowsIssue() const;
  // Whether a piece of `len` bytes may be issued now: within
  // BackgroundWindow(); `prefetch`: for a prefetch unit, which has
  // PrefetchRoom() of its own on top.
  bool HaveRoom(uint64_t len, bool prefetch) const;
  // What PickUnit may take: everything in the ORDER; the prefetch only
  // (the profile and read-ahead windows); read-ahead windows only.
  enum class Scope { kAll, kPrefetch, kAhead };
  // At most max_regions regions (and batch, and the threshold's room, except
  // for kAhead: READ-AHEAD).
  Pick PickUnit(bool probe, Scope scope, uint64_t max_regions, Run* out, CopyOrigin* origin);
  // The next unit of the profile, from the profile cursor. REQUIRES: mu_ held.
  Pick TakeProfile(uint64_t max, uint64_t now, int* budget, Run* out, CopyOrigin* origin);
  // The first region in [from, end) that may be copied now (unhydrated, not
  // backing off, locked here), and the run of at most `max` such regions
  // from it within [.., end). *next: where to look on the next call.
  // REQUIRES: mu_ held.
  bool TakeRunIn(uint64_t from, uint64_t end, uint64_t max, uint64_t now, int* budget,
                 Run* out, uint64_t* next);
  // Picks and plans a new current_ unit of at most max_bytes (rounded down
  // to whole regions, at least one); returns how long to wait (0: go on).
  uint64_t StartUnit(bool probe, Scope scope, uint64_t max_bytes);
  // Whether background copying may run: enabled, threshold not 0.
  bool BackgroundAllowed() const { return enabled_.load() && threshold_.load() != 0; }
  // Whether a dense sequential reader is read ahead of now and the prefetch
  // room has room for more (READ-AHEAD).
  bool ReadAheadDue(uint64_t now_ns) const;
  // The most bytes one unit or piece may hold: a unit of the rate ceiling,
  // and of the minimum pace too when `paced` (TokenBucket::UnitBytes).
  uint64_t UnitCap(bool paced) const;
  // The most bytes one piece may hold on a shared link (SHARED LINK);
  // kMaxCopyChunk elsewhere.
  uint64_t PieceCap() const;
  // Issues the next piece of current_; returns how long to wait (0: go on).
  uint64_t IssueNext(bool busy, uint64_t now);
  void StartRead(std::unique_ptr<Piece> p);
  // Drops the issuer's reference to current_ (abandoning what it has not
  // issued if `abandon`).
  void DropCurrent(bool abandon);
  // The issuer found nothing to copy (or may not copy): once that has lasted
  // kPoolTrimIdleNanos with no piece in flight, the buffer pool is freed
  // (until then it is kept: fresh memory is dear, copy_buffer_pool.h).
  void Idle();
  // Sleeps up to ns (capped at kMaxSleepNanos) or until woken or stopped.
  void Sleep(uint64_t ns, uint64_t gen);
  void BumpAndNotify();
  // About once per kSourceCheckNanos: check_dest, and check_source unless
  // every region is hydrated (`complete`: the source no longer matters).
  void MaybeCheckDevices(bool complete);

  // --- completions and writers (copier_writer.cc) ---
  void Complete(Piece* p);  // a read's `done`: queues the piece for a writer
  void Enqueue(std::unique_ptr<Piece> p);
  void WriterLoop();
  void Process(std::unique_ptr<Piece> p);
  void OnReadOk();
  // A source read of `u` at image offset `off` failed.
  void OnReadFailed(Unit* u, uint64_t off, const Status& read_error);
  // Drops one reference; the last one finishes the unit (on a writer:
  // inline; on the issuer: queued for a writer).
  void Unref(Unit* u, bool on_writer);
  void FinishUnit(Unit* u);
  void ForgiveStreakLocked();
  void LogPauseLocked();
  void LogRegionFailureLocked(const Status& s, uint64_t first, uint64_t now);

  const CopierContext ctx_;
  const CopierOptions options_;
  Device* const source_;

  std::atomic<uint32_t> threshold_;
  std::atomic<uint32_t> batch_;
  std::atomic<bool> enabled_;
  TokenBucket rate_;  // the user's ceiling
  TokenBucket pace_;  // the minimum pace, used only while user I/O is busy
  CopyBufferPool pool_;
  LatencyFloor latency_;  // of the copier's source reads (PrefetchRoom, SourceWindow)
  LinkWindow link_;       // SHARED LINK (SourceWindow, PieceCap); borrows latency_
  // What the writers wrote leaves a page-cached dest (cache_dropper.h).
  CacheDropper dropper_;
  std::atomic<bool> all_hydrated_reported_{false};
  bool source_released_ = false;     // issuer thread only
  std::atomic<bool> killed_{false};  // a kill point fired: this "process" is gone
  std::atomic<uint64_t> units_copied_{0};
  std::atomic<uint64_t> unit_failures_{0};
  std::atomic<uint64_t> units_yielded_{0};
  std::atomic<uint64_t> failed_reads_{0};
  std::atomic<uint64_t> last_device_check_ns_{0};  // 0: never
  std::atomic<uint64_t> inflight_bytes_{0};        // data pieces issued, not yet released
  std::atomic<uint32_t> data_pieces_{0};           // their number
  std::atomic<uint32_t> units_open_{0};            // units picked and not finished
  std::atomic<uint32_t> paced_open_{0};            // of those, the ones foreground-first paces
  std::atomic<uint64_t> prefetch_bytes_{0};        // prefetch data pieces in flight
  std::atomic<uint32_t> prefetch_units_{0};        // prefetch units picked, not finished
  std::atomic<bool> profile_pending_{false};       // the profile cursor has not reached its end
  std::atomic<uint64_t> origin_bytes_[kCopyOrigins] = {};
  std::atomic<uint64_t> origin_regions_[kCopyOrigins] = {};
  std::atomic<bool> source_trouble_{false};        // src_ not running, or streak_ not empty
  bool async_reads_ = false;                       // set by Start before any thread runs
  std::atomic<bool> shared_link_{false};           // likewise (read by status too)

  // Issuer thread only.
  Unit* current_ = nullptr;  // the unit being issued
  uint64_t idle_since_ns_ = 0;  // when Idle() began a stretch of idleness; 0: busy

  mutable std::mutex mu_;
  std::condition_variable cv_;  // the issuer sleeps on it
  bool stop_ = false;            // GUARDED_BY(mu_)
  uint64_t wake_gen_ = 0;        // GUARDED_BY(mu_); bumped on every wake-up event
  uint64_t cursor_ = 0;          // GUARDED_BY(mu_)
  ReadHints hints_;              // its own lock (a leaf); taken under mu_ by PickUnit
  std::vector<RegionRun> profile_;  // set before Start, then read-only
  size_t profile_idx_ = 0;          // GUARDED_BY(mu_); the profile cursor: run...
  mutable std::mutex pf_mu_;        // a leaf lock
  std::map<uint64_t, uint64_t> prefetching_;  // GUARDED_BY(pf_mu_); prefetch units: first -> count
  uint64_t profile_pos_ = 0;        // GUARDED_BY(mu_); ...and region to look at next
  RetryBackoff backoff_;         // GUARDED_BY(mu_); per-region
  SourceBackoff src_;            // GUARDED_BY(mu_); source-wide
  uint64_t paused_since_unix_ns_ = 0;  // GUARDED_BY(mu_)
  uint64_t failed_reads_at_pause_ = 0;  // GUARDED_BY(mu_)
  std::vector<Run> streak_;             // GUARDED_BY(mu_); failed since the last success
  uint64_t last_failure_log_ns_ = 0;    // GUARDED_BY(mu_)
  uint64_t failures_since_log_ = 0;     // GUARDED_BY(mu_)

  std::mutex q_mu_;
  std::condition_variable q_cv_;        // writers wait for pieces
  std::condition_variable drained_cv_;  // Stop waits for reads_in_flight_ == 0
  std::deque<std::unique_ptr<Piece>> queue_;  // GUARDED_BY(q_mu_)
  // Pieces someone may be waiting for (prefetch, copy-on-read): written
  // before anything in queue_.
  std::deque<std::unique_ptr<Piece>> urgent_;  // GUARDED_BY(q_mu_)
  std::deque<std::unique_ptr<Piece>>& QueueFor(const Unit* u) {
    return IsPrefetch(UnitOrigin(u)) || UnitOrigin(u) == CopyOrigin::kCopyOnRead ? urgent_ : queue_;
  }
  static CopyOrigin UnitOrigin(const Unit* u);
  uint64_t reads_in_flight_ = 0;              // GUARDED_BY(q_mu_)
  bool writers_exit_ = false;                 // GUARDED_BY(q_mu_)
  bool accepting_ = false;                    // GUARDED_BY(q_mu_); writers run, not exiting

  // Touched only by Start/Stop (under lifecycle_mu_).
  std::mutex lifecycle_mu_;
  std::thread issuer_;
  std::vector<std::thread> writers_;
  std::unique_ptr<ReaderPool> readers_;
};

}  // namespace clonefs
