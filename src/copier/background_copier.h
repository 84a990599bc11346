// BackgroundCopier: hydrates the regions no one has written, in the
// background, within the knobs (SPEC §4).
//
// STRUCTURE
//   `workers` threads share one cursor into the in-core bitmap. Each loop of
//   a worker: wait until copying is allowed (enabled, threshold > 0, the
//   engine in read-write mode, something left); yield to user I/O (below);
//   wait for the rate ceiling; pick a unit under mu_ (the next run of
//   contiguous regions that are unhydrated, not in flight and not backing
//   off, at most min(batch, threshold - regions in flight), locked in the
//   RegionLockTable); copy it (Hydrator::CopyRun: holes in the source are
//   punched, not read); hit the "copier.after_copy" kill point; mark it;
//   unlock it. A failed unit stays unhydrated and its regions back off
//   (RetryBackoff); on retry a failed region is copied alone. About once a
//   second, while regions remain, a worker re-examines the source
//   (check_source); may_copy is false once it changed, so copying stops.
//
// FOREGROUND FIRST (docs/design.md)
//   While user I/O is in flight or ended less than foreground_idle_ns ago,
//   at most one worker copies, one unit at a time, paced at
//   min_pace_bytes_per_s by its own token bucket. When user I/O stops,
//   copying returns to full speed (the rate ceiling and the threshold still
//   apply). So user latency sees at most one unit of competing I/O at a
//   time, and hydration never stops under continuous load.
//
// THREAD SAFETY: every public method may be called from any thread. Knob
//   setters take effect at the next loop of each worker (workers never sleep
//   longer than kMaxSleepNanos without re-checking, and setters wake them).
// LIFECYCLE: Start() spawns the workers (idempotent); Stop() (or the
//   destructor) wakes and joins them; units in progress finish first.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "copier/foreground.h"
#include "copier/hydrator.h"
#include "copier/region_locks.h"
#include "copier/retry_backoff.h"
#include "copier/token_bucket.h"
#include "metadata/metadata.h"

namespace clonefs {

struct CopierOptions {
  // Most regions in flight at once, write-triggered hydrations included; 0
  // stops background copying. Default: 64 (docs/design.md).
  uint32_t hydration_threshold = 64;
  // Most contiguous regions per unit; 0 is taken as 1. Default: 16.
  uint32_t hydration_batch_size = 16;
  // Ceiling in bytes/s on data read from the source; 0 = none. Default: 0.
  uint64_t rate_bytes_per_s = 0;
  // Default: true.
  bool enabled = true;
  // Pace kept under continuous user I/O. Default: 8 MiB/s.
  uint64_t min_pace_bytes_per_s = 8ull << 20;
  // First retry delay of a failed region; doubles per failure, capped at
  // 60 s. Default: 100 ms.
  uint64_t retry_backoff_initial_ms = 100;
  // Worker threads. Default: 4 (docs/design.md).
  uint32_t workers = 4;
  // User I/O that ended less than this ago still counts as "busy".
  // Default: 20 ms.
  uint64_t foreground_idle_ns = 20'000'000;
};

struct CopierContext {
  metadata::Metadata* md = nullptr;
  Hydrator* hydrator = nullptr;
  RegionLockTable* locks = nullptr;
  ForegroundMonitor* foreground = nullptr;
  Clock* clock = nullptr;
  // Whether copying is allowed now (the engine is in read-write mode).
  // Called from worker threads. Required.
  std::function<bool()> may_copy;
  // Called once, from a worker thread, the first time a worker finds every
  // region hydrated in core (the engine then commits promptly). Optional.
  std::function<void()> on_all_hydrated;
  // Re-examines the source (SourceWatch::Check). Called from one worker at
  // a time, about once per kSourceCheckNanos while regions remain
  // unhydrated, whether copying is enabled or not. Optional.
  std::function<void()> check_source;
};

class BackgroundCopier {
 public:
  // Workers re-check their conditions at least this often.
  static constexpr uint64_t kMaxSleepNanos = 50'000'000;
  // How often an idle or busy copier re-examines the source.
  static constexpr uint64_t kSourceCheckNanos = 1'000'000'000;

  // Borrows everything in ctx; it must outlive the copier.
  BackgroundCopier(const CopierContext& ctx, const CopierOptions& options);
  ~BackgroundCopier();
  BackgroundCopier(const BackgroundCopier&) = delete;
  BackgroundCopier& operator=(const BackgroundCopier&) = delete;

  void Start();
  void Stop();
  // Makes workers re-evaluate their conditions now (e.g. after a mode change).
  void Wake();

  void SetThreshold(uint32_t n);
  void SetBatchSize(uint32_t n);
  void SetRate(uint64_t bytes_per_s);
  void Enable(bool on);
  uint32_t threshold() const { return threshold_.load(); }
  uint32_t batch_size() const { return batch_.load(); }
  uint64_t rate() const { return rate_.rate(); }
  bool enabled() const { return enabled_.load(); }

  // Units copied and failed by the background copier since Start.
  uint64_t units_copied() const { return units_copied_.load(); }
  uint64_t unit_failures() const { return unit_failures_.load(); }

 private:
  struct Run {
    uint64_t first = 0;
    uint64_t count = 0;
  };
  enum class Pick { kPicked, kNoRoom, kNothing };

  void WorkerLoop();
  Pick PickUnit(Run* out);
  // Copies, marks and unlocks `run`. Sets *bytes_read.
  Status CopyUnit(const Run& run, CopyBuffer* buf, uint64_t* bytes_read);
  // Sleeps up to ns (capped at kMaxSleepNanos) or until woken or stopped.
  void Sleep(uint64_t ns, uint64_t gen);
  void BumpAndNotify();
  void NoteFailure(const Run& run, const Status& s);
  void MaybeCheckSource();

  const CopierContext ctx_;
  const CopierOptions options_;

  std::atomic<uint32_t> threshold_;
  std::atomic<uint32_t> batch_;
  std::atomic<bool> enabled_;
  TokenBucket rate_;  // the user's ceiling
  TokenBucket pace_;  // the minimum pace, used only while user I/O is busy
  std::atomic<bool> busy_slot_{false};  // one worker copies while busy
  std::atomic<bool> all_hydrated_reported_{false};
  std::atomic<uint64_t> units_copied_{0};
  std::atomic<uint64_t> unit_failures_{0};
  std::atomic<uint64_t> last_source_check_ns_{0};  // 0: never

  // Lock order: mu_ before RegionLockTable shard mutexes (PickUnit).
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;                // GUARDED_BY(mu_)
  uint64_t wake_gen_ = 0;            // GUARDED_BY(mu_); bumped on every wake-up event
  uint64_t cursor_ = 0;              // GUARDED_BY(mu_)
  RetryBackoff backoff_;             // GUARDED_BY(mu_)
  uint64_t last_failure_log_ns_ = 0;  // GUARDED_BY(mu_)
  uint64_t failures_since_log_ = 0;   // GUARDED_BY(mu_)
  std::vector<std::thread> workers_;  // touched only by Start/Stop (lifecycle_mu_)
  std::mutex lifecycle_mu_;
};

}  // namespace clonefs
