// EngineImpl: the Engine of engine.h. Internal header of the engine library.
//
// STRUCTURE (members, in construction order)
//   geo_, source_, dest_, md_  the clone's geometry, devices and metadata
//   source_watch_  SourceWatch: whether the source changed under the clone
//   dest_watch_    DestWatch: whether dest changed (its size, or another
//                  program wrote it) under the clone (then
//                  every request fails with EIO and copying stops)
//   health_     HealthTracker: dest's condition and the last error (status)
//   dest_full_gate_  DestFullGate: background copying paused and probed
//               while dest is full
//   locks_      RegionLockTable: regions with a hydration in flight
//   foreground_ ForegroundMonitor: user requests in flight, for the copier
//   hydrator_   Hydrator: copies and marks (shared with the copier)
//   committer_  Committer: the commit thread, group commit and the mode
//   copier_     BackgroundCopier: background hydration (issuer, readers, writers)
//   io_errors_  IoErrorLog: rate-limited warnings for device errors that
//               reach a request
//   foreign_watch_  ForeignWriteWatch: other programs writing dest (then
//               dest_watch_ latches the change), from Start until the clone
//               is complete
//
// REQUEST PATH (io_path.cc; SPEC §3)
//   Read: pieces grouped into runs of equal hydration state; hydrated runs
//     read dest, the others the source (also while a copy is in flight: the
//     source is immutable). A source read is trusted only if the source is
//     unchanged afterwards (SourceWatch::Check); once it changed, runs that
//     need the source fail with EIO and hydrated runs keep working.
//   Write / Zero: pieces are grouped into "stretches" sent to dest in one
//     call: pieces of hydrated regions, and whole full-size pieces of
//     unhydrated regions (no copy needed). Unhydrated regions of a stretch
//     are locked (ascending) before the dest call and marked after it, so a
//     background copy of the same region cannot land on top of the new data.
//     A partial piece of an unhydrated region (at most the first and the last
//     piece of a request, and the last partial region) is hydrated under its
//     region lock with the user's bytes merged in (Hydrator::HydrateRegion),
//     then marked. Every mark precedes the answer.
//   Sync writes and Fsync wait for a commit (Committer::Commit).
//   Read-driven hydration (SPEC §10): every read is noted for the copier's
//     hints (BackgroundCopier::NoteRead). A read touching unhydrated regions
//     with copy-on-read on, or from a sequential reader, goes through
//     ReadHolding: it takes the whole, full-size unhydrated regions it
//     covers in the lock table (TryLock; a sequential reader waits with Lock
//     for a copy in flight, then reads what it copied from dest), reads as
//     above, and with copy-on-read hands the held regions' bytes to the
//     copier (AdoptFetched), which writes and marks them; the reader does
//     not wait for that. A sequential reader's partial piece of a full-size
//     region (<= kMaxWidenedRegion) is widened to the whole region, read,
//     and handed over too (small reads, e.g. sha256sum's 32 KiB, would
//     otherwise be fetched again by the copier); other partial regions are
//     left to the hints. Holding the regions across the source read is what
//     keeps a concurrent write from being overwritten by the older source
//     bytes.
//
// MODES: read from committer_ at the start of each request. In kReadOnly,
//   the in-core bitmap equals the durable one (Abort reloaded it and no mark
//   can happen), which is what lets sync writes to hydrated regions succeed
//   with a dest flush alone.
//
// THREAD SAFETY: see engine.h. lifecycle_mu_ serializes Start/Shutdown.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "copier/background_copier.h"
#include "copier/dest_full_gate.h"
#include "copier/dest_watch.h"
#include "copier/foreground.h"
#include "copier/health_tracker.h"
#include "copier/hydrator.h"
#include "copier/region_locks.h"
#include "copier/source_watch.h"
#include "engine/committer.h"
#include "engine/engine.h"
#include "engine/io_error_log.h"
#include "profile/profile_recorder.h"
#include "regions/region_math.h"

namespace clonefs {

class EngineImpl final : public Engine {
 public:
  EngineImpl(std::unique_ptr<Device> source, std::unique_ptr<Device> dest,
             std::unique_ptr<metadata::Metadata> md, const EngineOptions& options,
             const RegionGeometry& geo);
  ~EngineImpl() override;

  Status Start() override;
  Status Shutdown() override;
  Status ProfileWritten() const override;

  Status Read(uint64_t off, void* buf, size_t len) override;
  int DirectReadFd(uint64_t off, size_t len) override;
  int DirectWriteFd(uint64_t off, size_t len) override;
  Status Write(uint64_t off, const void* buf, size_t len, bool sync) override;
  Status Zero(uint64_t off, uint64_t len, bool punch) override;
  Status Fsync() override;

  EngineStats Stats() const override;
  Result<EngineStats> CommitAndStats() override;
  EngineMode mode() const override { return committer_.mode(); }
  bool hydration_done() const override { return committer_.hydration_done(); }
  uint64_t AllocatedBytes() const override;
  bool dest_changed() const override { return dest_watch_.changed(); }
  void WritesPassedThrough() override { dest_watch_.AllowGrowthCut(); }
  void SetHydrationThreshold(uint32_t n) override { copier_.SetThreshold(n); }
  void SetHydrationBatchSize(uint32_t n) override { copier_.SetBatchSize(n); }
  void SetRate(uint64_t bytes_per_s) override;
  void EnableHydration(bool on) override { copier_.Enable(on); }
  void SetCopyOnRead(bool on) override { copy_on_read_.store(on); }
  void SetReadHints(bool on) override { copier_.SetHints(on); }
  uint64_t image_size() const override { return geo_.image_size(); }

  Result<uint64_t> SeekData(uint64_t off) override;
  Result<uint64_t> SeekHole(uint64_t off) override;

 private:
  enum class State { kOpen, kStarted, kShutDown };

  // What a write or zero request does to dest.
  struct Mutation {
    const uint8_t* data = nullptr;  // write: the request's bytes; zero: nullptr
    uint64_t req_off = 0;           // image offset of data[0]
    ZeroMode zero_mode = ZeroMode::kWriteZeros;
  };
  class StretchLocks;

  // Starts foreign_watch_ (EngineOptions::watch_dest_writers), or logs why
  // it cannot.
  void WatchDestWriters();
  // Stops it (at completion, and at Shutdown). Idempotent.
  void StopWatchingDestWriters();
  // ForeignWriteWatch's callback: another program wrote dest.
  void DestWrittenByOther(const std::string& who);
  // EngineOptions::dest_bypass, until complete (the copier's look).
  void CheckDestBypass();
  // on_dest_written, once: `change` is what another program did to dest.
  void TellDestWritten(const std::string& change);

  // io_path.cc
  Status CheckRequest(uint64_t off, uint64_t len) const;
  Status ReadRuns(uint64_t off, uint8_t* out, size_t len);
  // A read that holds the whole unhydrated regions it covers across the
  // source read: to copy them on read (`cor`), or to wait for copies in
  // flight (`wait`: a sequential reader). See REQUEST PATH.
  Status ReadHolding(uint64_t off, uint8_t* out, size_t len, bool cor, bool wait);
  // The largest region a sequential reader's partial read is widened to
  // (copy-on-read; ReadHolding): up to two of them are read beyond the
  // request.
  static constexpr uint64_t kMaxWidenedRegion = 1ull << 20;
  void Touch(uint64_t off, uint64_t len);
  // Whether a region of [off, off+len) (len > 0) is not hydrated.
  bool AnyUnhydrated(uint64_t off, uint64_t len);
  Status ReadSource(uint64_t off, uint8_t* out, size_t len);
  // Whether the clone is complete and committed and its source released
  // (Device::Release): a source request that chose it before then and
  // failed is answered from dest, where every region now is.
  bool CompletedAndReleased() const {
    return committer_.hydration_done() && source_->Health().state == SourceHealth::State::kReleased;
  }
  Status Mutate(uint64_t off, uint64_t len, const Mutation& m, bool read_only);
  Status ApplyToDest(uint64_t off, uint64_t len, const Mutation& m);
  Status FlushStretch(uint64_t off, uint64_t len, StretchLocks* locks, const Mutation& m);
  Status HydratePiece(const RegionPiece& p, const Mutation& m, bool read_only);
  // Takes region r for a request: RegionLockTable::LockFor under the source
  // timeout and the request's CancelToken, again for as long as the source
  // says it is up (SourceHealth::up: slow, not stuck). Errors: IoError
  // ETIMEDOUT (the copy in flight did not finish in time and the source is
  // stalled or down), IoError EINTR (interrupted).
  Status LockForRequest(uint64_t r);
  // seek.cc
  Result<uint64_t> Seek(uint64_t off, bool data);

  // Bytes of image in hydrated regions, given the hydrated-region count read
  // just before; within [0, image size] however the two reads interleave
  // with hydrations and rollbacks.
  uint64_t HydratedBytes(uint64_t hydrated_regions) const;
  // Makes s->source_change and s->source_health agree: a change the
  // SourceWatch recorded shows as kChanged, and a change the device found
  // first (kChanged) as source_change, unless the clone is complete.
  void ReconcileSourceChange(EngineStats* s) const;
  // remaining.cc: EngineStats::remaining_copy_bytes, given the unhydrated
  // bytes; and copy_stopped.
  static constexpr int kRemainingQueries = 256;
  static constexpr int kRemainingQueriesRemote = 8;
  // ...and at most this long spent asking (clock_).
  static constexpr uint64_t kRemainingQueryNanos = 100'000'000;
  // A source with a request unanswered this long is not asked for holes.
  static constexpr uint64_t kRemainingSilenceNanos = 1'000'000'000;
  uint64_t RemainingCopyBytes(uint64_t unhydrated_bytes) const;
  // EngineStats::source_silent_ns for `h` (the source's health now) and the
  // bytes copied so far; notes what has been delivered, as the copier's
  // periodic look at the source does too.
  uint64_t SourceSilentNanos(const SourceHealth& h, uint64_t bytes_copied) const;
  // Bytes of [a, b) in unhydrated regions, walking at most *runs runs of
  // them (decremented); past that, the rest of the range counts as
  // unhydrated.
  uint64_t UnhydratedBytesIn(uint64_t a, uint64_t b, uint64_t* runs) const;
  static constexpr uint64_t kRemainingRuns = 1 << 16;
  std::string CopyStopped(EngineMode mode) const;

  const EngineOptions options_;
  Clock* const clock_;
  const RegionGeometry geo_;
  const std::unique_ptr<Device> source_;
  const std::unique_ptr<Device> dest_;
  const std::unique_ptr<metadata::Metadata> md_;
  SourceWatch source_watch_;
  DestWatch dest_watch_;
  HealthTracker health_;
  DestFullGate dest_full_gate_;
  RegionLockTable locks_;
  ForegroundMonitor foreground_;
  Hydrator hydrator_;
  Committer committer_;
  BackgroundCopier copier_;
  IoErrorLog io_errors_;
  std::unique_ptr<profile::ProfileRecorder> recorder_;  // null: not recording
  std::atomic<bool> copy_on_read_;
  std::atomic<uint64_t> user_source_bytes_{0};
  // What the source had delivered (copies, users' reads, a remote source's
  // answered bytes) when first seen (Stats(), or the copier's look at the
  // source every second), and when (clock_):
  // how long the source has given nothing, for source_silent_ns. Guarded by
  // progress_mu_.
  mutable std::mutex progress_mu_;
  mutable uint64_t progress_bytes_seen_ = 0;
  mutable uint64_t progress_seen_ns_ = 0;

  std::atomic<State> state_{State::kOpen};
  mutable std::mutex lifecycle_mu_;
  Status shutdown_status_;  // GUARDED_BY(lifecycle_mu_)
  Status profile_status_;   // GUARDED_BY(lifecycle_mu_); set by Shutdown
  // Other programs' writes to dest, from Start until the clone is complete
  // or Shutdown (null where dest cannot be watched). Its callbacks take no
  // lock of the engine's and run on its own thread; watch_mu_ is taken by
  // Shutdown and by the committer thread at completion (never while
  // holding another lock, so the committer can be joined under
  // lifecycle_mu_).
  std::mutex watch_mu_;
  std::unique_ptr<ForeignWriteWatch> foreign_watch_;  // GUARDED_BY(watch_mu_)
  std::atomic<uint64_t> opens_denied_{0};             // by the watch's guard
  std::atomic<bool> told_dest_written_{false};        // on_dest_written called
};

}  // namespace clonefs
