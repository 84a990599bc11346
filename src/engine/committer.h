// Committer: the engine's one commit thread and its mode (SPEC §5).
//
// COMMIT = Freeze (exactly this transaction's marks) -> dest Flush ->
// PersistFrozen (one synced RocksDB WriteBatch), with the kill points
// "commit.after_freeze", "commit.after_dest_flush" and
// "commit.after_metadata_write" between the steps.
//
// GROUP COMMIT
//   Callers queue on `next_`, the ticket of the commit that has not started
//   yet; every caller that arrives before it starts shares it. A caller that
//   arrives while a commit runs joins the next one, because its writes may
//   not be covered by the running one (they may have completed after its
//   Freeze or its dest Flush). A commit whose frozen set is empty costs only
//   the dest fdatasync, and not even that for requests that do not need it
//   (timer, status queries).
//
// TRIGGERS: Commit() (fsync, O_SYNC writes, status queries, shutdown),
//   RequestAsync() (the copier found everything hydrated), and a timer every
//   interval_ms while the metadata has uncommitted changes.
//
// FAILURE: if the dest flush or the metadata write fails: close the mark
//   gate and set the metadata read-only, Abort (roll back, reload the
//   in-core bitmap), mode = kReadOnly (kFail if Abort fails), log, tell the
//   HealthTracker (a dest flush failure as dest's, the others as the
//   metadata's), and fail the ticket's callers with IoError(EIO).
//
// PROGRESS: progress() says which step the running commit is at and for how
//   long, so a status query that stopped waiting for a commit (a dest whose
//   flush does not return) can say why.
//
// THREAD SAFETY: all public methods may be called from any thread; the
//   metadata's serialized calls (Freeze, PersistFrozen, Abort, SetReadOnly,
//   GetSpace) happen only on the commit thread, or before Start.
//   Callbacks run on the commit thread.
// LIFECYCLE: Start() spawns the thread; Stop() runs the commits already
//   requested, then joins. Commit() outside Start..Stop returns Aborted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "base/clock.h"
#include "base/status.h"
#include "copier/health_tracker.h"
#include "copier/hydrator.h"
#include "devices/device.h"
#include "engine/engine.h"
#include "metadata/metadata.h"

namespace clonefs {

struct CommitterContext {
  Device* dest = nullptr;
  metadata::Metadata* md = nullptr;
  Hydrator* hydrator = nullptr;  // its mark gate is closed on failure
  HealthTracker* health = nullptr;  // hears of failed commits; null: none
  Clock* clock = nullptr;
  uint64_t interval_ms = 1000;   // 0: no timer
  std::function<void()> on_complete;
  std::function<void(EngineMode)> on_mode_change;
};

class Committer {
 public:
  // Computes the initial mode (kReadOnly if the metadata is read-only) and
  // reads the metadata space figures.
  explicit Committer(const CommitterContext& ctx);
  ~Committer();
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  void Start();
  void Stop();

  // Waits for a commit that starts after this call and returns its result.
  // `flush_always`: flush dest even if no region changed (fsync needs it).
  // `refresh_space`: re-read the metadata space figures afterwards.
  // `max_wait_ns`: 0 waits for the commit however long it takes; otherwise
  // at most that long (real time), then Busy while the commit goes on (a
  // status query must answer even while dest does not).
  // Errors: ReadOnly / Failed in those modes, without any I/O, naming the
  // commit failure that caused the mode; IoError(EIO) if the commit failed
  // (the mode has then changed); Aborted at a test kill point or when the
  // thread is not running; Busy as above.
  Status Commit(bool flush_always, bool refresh_space = false, uint64_t max_wait_ns = 0);
  // Asks for a commit soon (if anything changed) without waiting.
  void RequestAsync();

  // The step the running commit is at ("flushing the destination",
  // "writing the metadata", "rolling back to the last commit") and for how
  // long (by the context's clock); step == nullptr when no commit runs.
  struct Progress {
    const char* step = nullptr;
    uint64_t for_ns = 0;
  };
  Progress progress() const;

  EngineMode mode() const { return mode_.load(); }
  uint64_t commits() const { return commits_.load(); }
  uint64_t failures() const { return failures_.load(); }
  bool hydration_done() const { return done_.load(); }
  metadata::SpaceInfo space() const;

 private:
  struct Ticket {
    bool flush = false;
    bool refresh_space = false;
    bool done = false;
    Status status;
  };

  void Loop();
  Status RunCommit(bool flush_always);
  Status HandleFailure(const Status& s, const char* step);
  void SetMode(EngineMode m);
  void AfterCommit(bool refresh_space);
  // Sets done_ the first time every region is committed hydrated, and
  // returns true that once. Committer thread only.
  bool BecameComplete();
  void RefreshSpace();
  // Commit thread only: the step now running (a string literal), or none.
  void SetStep(const char* step);

  const CommitterContext ctx_;
  std::atomic<EngineMode> mode_;
  std::atomic<uint64_t> commits_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<bool> done_{false};
  std::atomic<const char*> step_{nullptr};  // progress(); written by the commit thread
  std::atomic<uint64_t> step_since_ns_{0};
  std::string failure_;              // commit thread only; why the mode left kReadWrite

  std::mutex mu_;
  std::condition_variable cv_;       // wakes the commit thread
  std::condition_variable done_cv_;  // wakes callers when a ticket is done
  std::shared_ptr<Ticket> next_;     // GUARDED_BY(mu_); the commit not yet started
  bool pending_ = false;             // GUARDED_BY(mu_); next_ was requested
  bool running_ = false;             // GUARDED_BY(mu_); the thread accepts tickets
  bool stop_ = false;                // GUARDED_BY(mu_)
  std::thread thread_;               // Start/Stop only (lifecycle_mu_)
  std::mutex lifecycle_mu_;

  mutable std::mutex space_mu_;
  metadata::SpaceInfo space_;        // GUARDED_BY(space_mu_)
  uint64_t space_read_ns_ = 0;       // commit thread only
};

}  // namespace clonefs
