// The writer side of the background copier: read completions, writing
// pieces into dest, finishing units, and the failure bookkeeping (per region
// and source-wide). The issuer side is in background_copier.cc.
#include <string>

#include "base/clock.h"
#include "base/log.h"
#include "base/test_hooks.h"
#include "copier/background_copier.h"
#include "copier/copy_unit.h"

namespace clonefs {
namespace {

constexpr uint64_t kFailureLogNanos = 10'000'000'000ull;

}  // namespace

CopyOrigin BackgroundCopier::UnitOrigin(const Unit* u) { return u->origin; }

void BackgroundCopier::Complete(Piece* p) {
  std::lock_guard<std::mutex> l(q_mu_);
  QueueFor(p->unit).emplace_back(p);
  // Notified under the lock: once it is released, Stop may destroy us.
  q_cv_.notify_one();
  if (--reads_in_flight_ == 0) drained_cv_.notify_all();
}

void BackgroundCopier::Enqueue(std::unique_ptr<Piece> p) {
  std::lock_guard<std::mutex> l(q_mu_);
  QueueFor(p->unit).push_back(std::move(p));
  q_cv_.notify_one();
}

void BackgroundCopier::WriterLoop() {
  while (true) {
    std::unique_ptr<Piece> p;
    {
      std::unique_lock<std::mutex> l(q_mu_);
      q_cv_.wait(l, [&] { return writers_exit_ || !queue_.empty() || !urgent_.empty(); });
      std::deque<std::unique_ptr<Piece>>& q = urgent_.empty() ? queue_ : urgent_;
      if (q.empty()) return;  // exiting, and nothing left to write
      p = std::move(q.front());
      q.pop_front();
    }
    Process(std::move(p));
  }
}

void BackgroundCopier::Process(std::unique_ptr<Piece> p) {
  Unit* u = p->unit;
  if (p->kind == Piece::Kind::kFinish) {
    FinishUnit(u);
    return;
  }
  const bool skip = u->failed.load(std::memory_order_acquire) || killed_.load();
  if (p->kind == Piece::Kind::kHole) {
    if (!skip) {
      CopyOutcome o;
      Status s = ctx_.hydrator->ZeroHole(p->off, p->len, &o);
      if (s.ok()) {
        u->Add(o);
      } else {
        u->FailInDest(s);
      }
    }
  } else {
    if (p->skipped.load(std::memory_order_acquire)) {
      u->Fail(p->read_status, /*noted=*/true);  // no read failed: no backoff
    } else if (!p->read_status.ok()) {
      OnReadFailed(u, p->off, p->read_status);
    } else {
      OnReadOk();
      if (!skip) {
        CopyOutcome o;
        Status s = ctx_.hydrator->WriteFetched(p->off, p->buf->data(), p->len, &o);
        if (s.ok()) {
          u->Add(o);
          dropper_.Written(p->off, p->len);
        } else {
          u->FailInDest(s);
        }
      }
    }
    pool_.Release(std::move(p->buf));
    data_pieces_.fetch_sub(1);
    inflight_bytes_.fetch_sub(p->len);
    if (IsPrefetch(u->origin)) prefetch_bytes_.fetch_sub(p->len);
    BumpAndNotify();  // room in the byte budget
  }
  Unref(u, /*on_writer=*/true);
}

void BackgroundCopier::Unref(Unit* u, bool on_writer) {
  if (u->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (on_writer) {
    FinishUnit(u);
    return;
  }
  auto p = std::make_unique<Piece>();
  p->kind = Piece::Kind::kFinish;
  p->unit = u;
  Enqueue(std::move(p));
}

void BackgroundCopier::FinishUnit(Unit* raw) {
  std::unique_ptr<Unit> u(raw);
  Status err;
  bool noted, abandoned, in_dest;
  CopyOutcome out;
  {
    std::lock_guard<std::mutex> l(u->mu);
    err = u->error;
    noted = u->failure_noted;
    in_dest = u->failed_in_dest;
    abandoned = u->abandoned;
    out = u->out;
  }
  auto release = [&] {
    ctx_.locks->UnlockRun(u->first, u->count);
    units_open_.fetch_sub(1);
    if (u->registered) {
      std::lock_guard<std::mutex> l(pf_mu_);
      prefetching_.erase(u->first);
      prefetch_units_.fetch_sub(1);
    }
    if (!IsPrefetch(u->origin) && u->origin != CopyOrigin::kCopyOnRead) {
      paced_open_.fetch_sub(1);
    }
    if (u->probe) {
      std::lock_guard<std::mutex> l(mu_);
      src_.SetProbeInFlight(false);
    }
    BumpAndNotify();  // room in the threshold
  };
  if (killed_.load() || (err.ok() && abandoned)) {
    release();  // dropped unmarked: the regions stay unhydrated
    return;
  }
  if (err.ok()) {
    err = ctx_.hydrator->FinishRun(out, u->dest_errors_at_start);  // the source is re-checked here
    noted = false;
  }
  if (err.ok()) {
    if (TestKillPoint(u->origin == CopyOrigin::kCopyOnRead ? "read.after_cor_write"
                                                           : "copier.after_copy")) {
      killed_.store(true);  // this "process" is gone: nothing more is marked
      release();
      return;
    }
    Status s = ctx_.hydrator->Mark(u->first, u->count);
    if (s.ok()) {
      units_copied_.fetch_add(1);
      origin_regions_[static_cast<int>(u->origin)].fetch_add(u->count, std::memory_order_relaxed);
      std::lock_guard<std::mutex> l(mu_);
      if (backoff_.size() != 0) backoff_.RecordSuccess(u->first, u->count);
    }
    // A refused mark (read-only mode) leaves the run unhydrated; may_copy is
    // false from then on.
    release();
    return;
  }
  unit_failures_.fetch_add(1);
  const Status named = ctx_.hydrator->RunFailed(err, u->first, u->count);
  {
    std::lock_guard<std::mutex> l(mu_);
    const uint64_t now = ctx_.clock->NowNanos();
    if (!noted) backoff_.RecordFailure(u->first, u->count, now);
    // A dest failure is logged by the HealthTracker when dest's condition
    // changes, not once per region.
    if (src_.state() == SourceBackoff::State::kRunning && !in_dest) {
      LogRegionFailureLocked(named, u->first, now);
    }
  }
  release();
}

void BackgroundCopier::OnReadOk() {
  if (!source_trouble_.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t now = ctx_.clock->NowNanos();
  streak_.clear();
  if (src_.RecordSuccess(now)) LogPauseLocked();
  source_trouble_.store(src_.state() != SourceBackoff::State::kRunning);
}

void BackgroundCopier::OnReadFailed(Unit* u, uint64_t off, const Status& read_error) {
  failed_reads_.fetch_add(1);
  const Status err = ctx_.hydrator->SourceReadFailed(off, read_error);
  if (ctx_.hydrator->source_changed()) {
    u->Fail(err, /*noted=*/true);  // the source changed: copying stops for good
    return;
  }
  const SourceHealth h = source_->Health();
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t now = ctx_.clock->NowNanos();
  bool noted_here = false;
  {
    std::lock_guard<std::mutex> ul(u->mu);
    noted_here = u->failure_noted || !u->error.ok();
  }
  if (!h.up()) {
    std::string why = SourceStateName(h.state);
    why += ": " + (h.last_error.empty() ? read_error.ToString() : h.last_error);
    if (src_.RecordDown(now, why)) {
      ForgiveStreakLocked();
      LogPauseLocked();
    }
  } else if (u->probe) {
    src_.RecordProbeFailure(now);
  } else if (src_.state() == SourceBackoff::State::kRunning && !noted_here) {
    // Isolated, as far as anyone can tell yet: back off this run.
    backoff_.RecordFailure(u->first, u->count, now);
    if (!u->retry) {
      streak_.push_back(Run{u->first, u->count});
      if (src_.RecordFailure(now, read_error.ToString())) {
        ForgiveStreakLocked();
        LogPauseLocked();
      }
    }
  }
  source_trouble_.store(src_.state() != SourceBackoff::State::kRunning || !streak_.empty());
  u->Fail(err, /*noted=*/true);
}

void BackgroundCopier::ForgiveStreakLocked() {
  // These runs failed because of the source as a whole, not because of
  // themselves: no per-region backoff, so the copier resumes at full speed.
  for (const Run& r : streak_) backoff_.RecordSuccess(r.first, r.count);
  streak_.clear();
}

void BackgroundCopier::LogPauseLocked() {
  const std::string& name = source_->Name();
  const uint64_t failed = failed_reads_.load();
  switch (src_.state()) {
    case SourceBackoff::State::kDown:
      paused_since_unix_ns_ = WallNowNanos();
      failed_reads_at_pause_ = failed;
      CLONEFS_LOG_WARN("source %s is not reachable (%s): background copying paused until it is "
                       "back",
                       name.c_str(), src_.reason().c_str());
      break;
    case SourceBackoff::State::kFailing:
      paused_since_unix_ns_ = WallNowNanos();
      failed_reads_at_pause_ = failed;
      CLONEFS_LOG_WARN("%u reads from source %s failed in a row (last: %s): background copying "
                       "backs off, trying one region at a time every %llu ms to 1 s",
                       SourceBackoff::kFailuresToBackOff, name.c_str(), src_.reason().c_str(),
                       static_cast<unsigned long long>(SourceBackoff::kInitialNanos / 1'000'000));
      break;
    case SourceBackoff::State::kRunning: {
      const uint64_t now = WallNowNanos();  // wall time: it may have been set back meanwhile
      const double secs =
          now > paused_since_unix_ns_ ? static_cast<double>(now - paused_since_unix_ns_) / 1e9 : 0;
      CLONEFS_LOG_INFO("source %s serves again: background copying resumed after %.1f s "
                       "(%llu source reads failed meanwhile)",
                       name.c_str(), secs,
                       static_cast<unsigned long long>(failed - failed_reads_at_pause_));
      paused_since_unix_ns_ = 0;
      break;
    }
  }
}

void BackgroundCopier::LogRegionFailureLocked(const Status& s, uint64_t first, uint64_t now) {
  ++failures_since_log_;
  if (last_failure_log_ns_ != 0 && now - last_failure_log_ns_ < kFailureLogNanos) return;
  CLONEFS_LOG_WARN("background copy failed (%llu failure(s) since last report), will retry "
                   "after %llu ms: %s",
                   static_cast<unsigned long long>(failures_since_log_),
                   static_cast<unsigned long long>(backoff_.DelayOf(first) / 1'000'000),
                   s.ToString().c_str());
  last_failure_log_ns_ = now;
  failures_since_log_ = 0;
}

}  // namespace clonefs
