#include "copier/background_copier.h"

#include <algorithm>
#include <chrono>

#include "base/log.h"
#include "base/test_hooks.h"

namespace clonefs {
namespace {

constexpr uint64_t kIdleSleepNanos = 50'000'000;     // nothing to do
constexpr uint64_t kNoRoomSleepNanos = 2'000'000;    // threshold reached
constexpr uint64_t kBusyWaitNanos = 5'000'000;       // another worker holds the busy slot
constexpr uint64_t kMarkRefusedNanos = 50'000'000;   // metadata went read-only
constexpr uint64_t kFailureLogNanos = 10'000'000'000ull;
constexpr int kMaxScan = 4096;  // regions skipped per pick before giving up for now

}  // namespace

BackgroundCopier::BackgroundCopier(const CopierContext& ctx, const CopierOptions& options)
    : ctx_(ctx),
      options_(options),
      threshold_(options.hydration_threshold),
      batch_(std::max<uint32_t>(options.hydration_batch_size, 1)),
      enabled_(options.enabled),
      rate_(options.rate_bytes_per_s),
      pace_(options.min_pace_bytes_per_s),
      backoff_(options.retry_backoff_initial_ms * 1'000'000) {}

BackgroundCopier::~BackgroundCopier() { Stop(); }

void BackgroundCopier::Start() {
  std::lock_guard<std::mutex> lc(lifecycle_mu_);
  if (!workers_.empty()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = false;
  }
  uint32_t n = std::max<uint32_t>(options_.workers, 1);
  for (uint32_t i = 0; i < n; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

void BackgroundCopier::Stop() {
  std::lock_guard<std::mutex> lc(lifecycle_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    ++wake_gen_;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
}

void BackgroundCopier::BumpAndNotify() {
  {
    std::lock_guard<std::mutex> l(mu_);
    ++wake_gen_;
  }
  cv_.notify_all();
}

void BackgroundCopier::Wake() { BumpAndNotify(); }

void BackgroundCopier::SetThreshold(uint32_t n) {
  threshold_.store(n);
  BumpAndNotify();
}

void BackgroundCopier::SetBatchSize(uint32_t n) {
  batch_.store(std::max<uint32_t>(n, 1));
  BumpAndNotify();
}

void BackgroundCopier::SetRate(uint64_t bytes_per_s) {
  rate_.SetRate(bytes_per_s);
  BumpAndNotify();
}

void BackgroundCopier::Enable(bool on) {
  enabled_.store(on);
  BumpAndNotify();
}

void BackgroundCopier::Sleep(uint64_t ns, uint64_t gen) {
  ns = std::clamp<uint64_t>(ns, 1, kMaxSleepNanos);
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, std::chrono::nanoseconds(ns), [&] { return stop_ || wake_gen_ != gen; });
}

void BackgroundCopier::WorkerLoop() {
  CopyBuffer buf;
  metadata::Metadata* md = ctx_.md;
  while (true) {
    uint64_t gen;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
      gen = wake_gen_;
    }
    if (md->IsHydrationDone()) {
      if (!all_hydrated_reported_.exchange(true) && ctx_.on_all_hydrated) ctx_.on_all_hydrated();
      Sleep(kIdleSleepNanos, gen);
      continue;
    }
    MaybeCheckSource();
    if (!enabled_.load() || threshold_.load() == 0 || !ctx_.may_copy()) {
      Sleep(kIdleSleepNanos, gen);
      continue;
    }

    // Foreground first: while user I/O is busy, one unit at a time at the
    // minimum pace.
    uint64_t now = ctx_.clock->NowNanos();
    const bool busy = ctx_.foreground->Busy(now, options_.foreground_idle_ns);
    if (busy && busy_slot_.exchange(true)) {
      Sleep(kBusyWaitNanos, gen);
      continue;
    }
    auto release_slot = [&] {
      if (busy) busy_slot_.store(false);
    };
    uint64_t wait = busy ? pace_.WaitNanos(now) : 0;
    if (wait == 0) wait = rate_.WaitNanos(now);
    if (wait != 0) {
      release_slot();
      Sleep(wait, gen);
      continue;
    }

    Run run;
    Pick p = PickUnit(&run);
    if (p != Pick::kPicked) {
      release_slot();
      uint64_t sleep = kIdleSleepNanos;
      if (p == Pick::kNoRoom) sleep = kNoRoomSleepNanos;
      Sleep(sleep, gen);
      continue;
    }
    uint64_t bytes_read = 0;
    Status s = CopyUnit(run, &buf, &bytes_read);
    release_slot();
    now = ctx_.clock->NowNanos();
    rate_.Charge(bytes_read, now);
    if (busy) pace_.Charge(bytes_read, now);
    BumpAndNotify();  // room in the threshold for waiting workers
    if (s.code() == Status::Code::kAborted) return;  // kill point: this "process" is gone
    if (s.IsReadOnly()) Sleep(kMarkRefusedNanos, gen);
  }
}

void BackgroundCopier::MaybeCheckSource() {
  if (!ctx_.check_source) return;
  const uint64_t now = ctx_.clock->NowNanos();
  uint64_t last = last_source_check_ns_.load();
  if (last != 0 && now - last < kSourceCheckNanos) return;
  if (!last_source_check_ns_.compare_exchange_strong(last, now == 0 ? 1 : now)) return;
  ctx_.check_source();
}

BackgroundCopier::Pick BackgroundCopier::PickUnit(Run* out) {
  metadata::Metadata* md = ctx_.md;
  RegionLockTable* locks = ctx_.locks;
  const uint64_t nr = md->nr_regions();
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t threshold = threshold_.load();
  const uint64_t in_flight = locks->InFlight();
  if (in_flight >= threshold) return Pick::kNoRoom;
  const uint64_t max = std::min<uint64_t>(batch_.load(), threshold - in_flight);
  const uint64_t now = ctx_.clock->NowNanos();

  uint64_t pos = cursor_;
  bool wrapped = false;
  for (int scanned = 0; scanned < kMaxScan; ++scanned) {
    uint64_t r = pos < nr ? md->FindNextUnhydratedRegion(pos) : nr;
    if (wrapped && r >= cursor_) r = nr;  // went full circle
    if (r >= nr) {
      if (wrapped || cursor_ == 0) return Pick::kNothing;
      wrapped = true;
      pos = 0;
      continue;
    }
    if (backoff_.Blocked(r, now) || !locks->TryLock(r)) {
      pos = r + 1;
      continue;
    }
    if (md->IsRegionHydrated(r)) {  // hydrated by a writer since the lookup
      locks->Unlock(r);
      pos = r + 1;
      continue;
    }
    uint64_t n = 1;
    const uint64_t limit = backoff_.HasFailed(r) ? 1 : max;
    while (n < limit && r + n < nr) {
      uint64_t q = r + n;
      if (md->IsRegionHydrated(q) || backoff_.HasFailed(q) || !locks->TryLock(q)) break;
      if (md->IsRegionHydrated(q)) {
        locks->Unlock(q);
        break;
      }
      ++n;
    }
    cursor_ = r + n >= nr ? 0 : r + n;
    *out = Run{r, n};
    return Pick::kPicked;
  }
  cursor_ = pos >= nr ? 0 : pos;
  return Pick::kNothing;
}

Status BackgroundCopier::CopyUnit(const Run& run, CopyBuffer* buf, uint64_t* bytes_read) {
  Result<CopyOutcome> res = ctx_.hydrator->CopyRun(run.first, run.count, buf);
  if (!res.ok()) {
    ctx_.locks->UnlockRun(run.first, run.count);
    NoteFailure(run, res.status());
    return res.status();
  }
  *bytes_read = res->bytes_read;
  if (TestKillPoint("copier.after_copy")) {
    ctx_.locks->UnlockRun(run.first, run.count);
    return Status::Aborted("kill point copier.after_copy");
  }
  Status s = ctx_.hydrator->Mark(run.first, run.count);
  ctx_.locks->UnlockRun(run.first, run.count);
  if (!s.ok()) return s;
  units_copied_.fetch_add(1);
  std::lock_guard<std::mutex> l(mu_);
  if (backoff_.size() != 0) backoff_.RecordSuccess(run.first, run.count);
  return Status::OK();
}

void BackgroundCopier::NoteFailure(const Run& run, const Status& s) {
  unit_failures_.fetch_add(1);
  uint64_t now = ctx_.clock->NowNanos();
  std::lock_guard<std::mutex> l(mu_);
  backoff_.RecordFailure(run.first, run.count, now);
  ++failures_since_log_;
  if (last_failure_log_ns_ == 0 || now - last_failure_log_ns_ >= kFailureLogNanos) {
    CLONEFS_LOG_WARN("background copy failed (%llu failure(s) since last report), will retry "
                     "after %llu ms: %s",
                     static_cast<unsigned long long>(failures_since_log_),
                     static_cast<unsigned long long>(backoff_.DelayOf(run.first) / 1'000'000),
                     s.ToString().c_str());
    last_failure_log_ns_ = now;
    failures_since_log_ = 0;
  }
}

}  // namespace clonefs
