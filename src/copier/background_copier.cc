// The issuer side of the background copier: lifecycle, knobs, picking units
// and issuing their pieces. The writer side is in copier_writer.cc.
#include "copier/background_copier.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>

#include "base/log.h"
#include "copier/copy_unit.h"
#include "copier/rate_meter.h"

namespace clonefs {
namespace {

constexpr uint64_t kIdleSleepNanos = 50'000'000;   // nothing to do
constexpr uint64_t kNoRoomSleepNanos = 2'000'000;  // threshold reached
constexpr uint64_t kBusyWaitNanos = 5'000'000;     // user I/O busy, a unit in flight
constexpr int kMaxScan = 4096;  // regions skipped per pick before giving up for now

}  // namespace

const char* CopyOriginName(CopyOrigin o) {
  switch (o) {
    case CopyOrigin::kCursor: return "cursor";
    case CopyOrigin::kAhead: return "read-ahead";
    case CopyOrigin::kNear: return "near reads";
    case CopyOrigin::kProfile: return "profile";
    case CopyOrigin::kCopyOnRead: return "copy-on-read";
  }
  return "?";
}

BackgroundCopier::BackgroundCopier(const CopierContext& ctx, const CopierOptions& options)
    : ctx_(ctx),
      options_(options),
      source_(ctx.hydrator->source()),
      threshold_(options.hydration_threshold),
      batch_(std::max<uint32_t>(options.hydration_batch_size, 1)),
      enabled_(options.enabled),
      rate_(options.rate_bytes_per_s),
      pace_(options.min_pace_bytes_per_s),
      // Twice what may be in flight (the byte target and the prefetch room).
      pool_(2 * (options.inflight_bytes + std::min(kPrefetchMaxBytes, options.inflight_bytes))),
      link_(&latency_),
      dropper_(ctx.hydrator->dest(), options.cache_lag_bytes),
      hints_(ctx.hydrator->geometry(), std::max<uint32_t>(options.hydration_batch_size, 1)),
      backoff_(options.retry_backoff_initial_ms * 1'000'000) {}

BackgroundCopier::~BackgroundCopier() { Stop(); }

uint64_t BackgroundCopier::CopyRateWindowNanos(uint64_t rate) {
  if (rate == 0) return RateMeter::kDefaultWindowNanos;
  const double piece_ns = static_cast<double>(TokenBucket::UnitBytes(rate)) * 1e9 /
                          static_cast<double>(rate);
  const double w = std::min(8 * piece_ns, 1e18);
  return std::max<uint64_t>(static_cast<uint64_t>(w), RateMeter::kDefaultWindowNanos);
}

void BackgroundCopier::Start() {
  std::lock_guard<std::mutex> lc(lifecycle_mu_);
  if (issuer_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = false;
  }
  {
    std::lock_guard<std::mutex> l(q_mu_);
    writers_exit_ = false;
    accepting_ = true;  // the writers start below, before anyone can see this
  }
  async_reads_ = source_->AsyncReads();
  shared_link_.store(async_reads_ && source_->SharesReadQueue(), std::memory_order_relaxed);
  if (!async_reads_) readers_ = std::make_unique<ReaderPool>(source_, std::max<uint32_t>(options_.workers, 1));
  for (uint32_t i = 0; i < std::max<uint32_t>(options_.writer_threads, 1); ++i) {
    writers_.emplace_back([this] { WriterLoop(); });
  }
  issuer_ = std::thread([this] { IssuerLoop(); });
}

void BackgroundCopier::Stop() {
  std::lock_guard<std::mutex> lc(lifecycle_mu_);
  if (!issuer_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    ++wake_gen_;
  }
  cv_.notify_all();
  issuer_.join();  // issues nothing more
  if (readers_) readers_->Stop();  // runs what was submitted; every done is called
  {
    std::unique_lock<std::mutex> l(q_mu_);
    drained_cv_.wait(l, [&] { return reads_in_flight_ == 0; });
    writers_exit_ = true;  // writers drain the queue, then exit
    accepting_ = false;
  }
  q_cv_.notify_all();
  for (std::thread& t : writers_) t.join();
  writers_.clear();
  dropper_.DropAll();
  readers_.reset();
  pool_.Trim();
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
  hints_.SetUnitRegions(n);  // the unit of near hints and read-ahead windows
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

CopierPause BackgroundCopier::pause() const {
  std::lock_guard<std::mutex> l(mu_);
  CopierPause p;
  p.state = src_.state();
  p.since_ns = src_.since_ns();
  p.since_unix_ns = p.paused() ? paused_since_unix_ns_ : 0;
  p.reason = src_.reason();
  p.probe_delay_ns = src_.delay_ns();
  return p;
}

uint64_t BackgroundCopier::FailingRegions() const {
  std::lock_guard<std::mutex> l(mu_);
  if (backoff_.size() == 0) return 0;
  return backoff_.CountFailed([&](uint64_t r) { return !ctx_.md->IsRegionHydrated(r); });
}

void BackgroundCopier::Sleep(uint64_t ns, uint64_t gen) {
  ns = std::clamp<uint64_t>(ns, 1, kMaxSleepNanos);
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait_for(l, std::chrono::nanoseconds(ns), [&] { return stop_ || wake_gen_ != gen; });
}

void BackgroundCopier::Idle() {
  const uint64_t now = ctx_.clock->NowNanos();
  if (idle_since_ns_ == 0) {
    idle_since_ns_ = now == 0 ? 1 : now;
  } else if (now - idle_since_ns_ >= kPoolTrimIdleNanos && data_pieces_.load() == 0) {
    pool_.Trim();
  }
}

void BackgroundCopier::MaybeCheckDevices(bool complete) {
  if (!ctx_.check_source && !ctx_.check_dest) return;
  const uint64_t now = ctx_.clock->NowNanos();
  uint64_t last = last_device_check_ns_.load();
  if (last != 0 && now - last < kSourceCheckNanos) return;
  if (!last_device_check_ns_.compare_exchange_strong(last, now == 0 ? 1 : now)) return;
  if (ctx_.check_dest) ctx_.check_dest();
  if (!complete && ctx_.check_source) ctx_.check_source();
}

void BackgroundCopier::IssuerLoop() {
  metadata::Metadata* md = ctx_.md;
  while (true) {
    uint64_t gen;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) break;
      gen = wake_gen_;
    }
    if (killed_.load()) {
      DropCurrent(/*abandon=*/true);
      Sleep(kIdleSleepNanos, gen);
      continue;
    }
    if (md->IsHydrationDone()) {
      MaybeCheckDevices(/*complete=*/true);
      if (!all_hydrated_reported_.exchange(true)) {
        if (ctx_.on_all_hydrated) ctx_.on_all_hydrated();
        // Nothing more will be written: what is still cached goes too
        // (reads stop asking the page cache first: MayHaveCachedWrites).
        dropper_.DropAll();
      }
      if (!source_released_ && ctx_.complete_committed && ctx_.complete_committed()) {
        // Nothing reads the source any more: let a remote one close its
        // connections (the server can shut down). Waits for reads still in
        // progress, at most the source timeout.
        source_released_ = true;
        source_->Release();
      }
      Idle();
      Sleep(kIdleSleepNanos, gen);
      continue;
    }
    MaybeCheckDevices(/*complete=*/false);
    if (!ctx_.may_copy()) {
      DropCurrent(/*abandon=*/true);
      Idle();
      Sleep(kIdleSleepNanos, gen);
      continue;
    }
    // Background copying may be off (disabled, threshold 0); the read-ahead
    // of a sequential reader goes on (READ-AHEAD in the header).
    const bool background = BackgroundAllowed();
    const bool ahead_current = current_ != nullptr && current_->origin == CopyOrigin::kAhead;
    if (!background && current_ != nullptr && !ahead_current) DropCurrent(/*abandon=*/true);
    uint64_t now = ctx_.clock->NowNanos();
    if (!background && current_ == nullptr && !ReadAheadDue(now)) {
      Idle();
      Sleep(kIdleSleepNanos, gen);
      continue;
    }
    bool probe = false;
    if (uint64_t wait = SourceGate(now, &probe); wait != 0) {
      DropCurrent(/*abandon=*/true);
      Idle();
      Sleep(wait, gen);
      continue;
    }
    if (shared_link()) link_.Tick(now);
    // Read-ahead first: neither paced nor held to the rate ceiling or the
    // threshold, within the prefetch room (READ-AHEAD in the header). While
    // background copying runs, a probe of a source-wide backoff still takes
    // the cursor.
    if (current_ != nullptr ? ahead_current : (!background || !probe) && ReadAheadDue(now)) {
      uint64_t wait = 0;
      if (current_ == nullptr) wait = StartUnit(probe, Scope::kAhead, UINT64_MAX);
      if (current_ != nullptr) {
        wait = IssueNext(/*busy=*/false, now);
        if (wait != 0) Sleep(wait, gen);
        continue;
      }
      if (!background) {
        Sleep(wait, gen);
        continue;
      }
      // Nothing to read ahead: background copying, as below.
    }
    if (!background) {
      Idle();
      Sleep(kIdleSleepNanos, gen);
      continue;
    }
    // Foreground first: while user I/O is busy, one unit (one piece) at a
    // time, at the minimum pace.
    const bool busy = ctx_.foreground->Busy(now, options_.foreground_idle_ns);
    // Prefetch (read-ahead, the profile) is not held back by the pace (see
    // FOREGROUND FIRST in the header), within PrefetchRoom().
    bool ahead = false;
    if (busy) {
      ahead = current_ != nullptr
                  ? IsPrefetch(current_->origin)
                  : !probe && prefetch_bytes_.load() < PrefetchRoom() &&
                        (profile_pending_.load() ||
                         hints_.sequential_streams(now, ReadHints::Streams::kDenseOnly) != 0);
      // (While the profile is pending, only its units are prefetch: PickUnit.)
      if (!ahead && !BusyAllowsIssue()) {
        Sleep(kBusyWaitNanos, gen);
        continue;
      }
    }
    if (!busy && current_ == nullptr && profile_pending_.load() &&
        prefetch_bytes_.load() >= PrefetchRoom()) {
      // The profile's units, busy or not, hold at most the prefetch room
      // (FOREGROUND FIRST in the header): what is fetched beyond it arrives
      // no sooner (the copier is bound by CPU and memory, not the link) and
      // competes with the regions the workload reads next.
      Sleep(kNoRoomSleepNanos, gen);
      continue;
    }
    uint64_t wait = busy && !ahead ? pace_.WaitNanos(now) : 0;
    if (wait == 0) wait = rate_.WaitNanos(now);
    if (wait != 0 && current_ != nullptr &&
        ctx_.locks->AnyWaiting(current_->first, current_->count)) {
      // A user request waits for a region of the unit being paced: give the
      // unit up (what was issued lands; nothing is marked) rather than keep
      // the request waiting for the pace (docs/design.md, "Rate ceiling").
      DropCurrent(/*abandon=*/true);
      units_yielded_.fetch_add(1, std::memory_order_relaxed);
    }
    if (wait == 0 && current_ == nullptr) {
      wait =
          StartUnit(probe, busy && ahead ? Scope::kPrefetch : Scope::kAll, UnitCap(busy && !ahead));
      if (busy && ahead && current_ == nullptr) {
        // No read-ahead to do: the paced unit, if foreground-first allows.
        ahead = false;
        wait = !BusyAllowsIssue() ? kBusyWaitNanos : pace_.WaitNanos(now);
        if (wait == 0) wait = StartUnit(probe, Scope::kAll, UnitCap(true));
      }
    }
    if (wait == 0 && current_ != nullptr) wait = IssueNext(busy && !ahead, now);
    if (wait != 0) Sleep(wait, gen);
  }
  DropCurrent(/*abandon=*/true);
}

uint64_t BackgroundCopier::SourceGate(uint64_t now, bool* probe) {
  *probe = false;
  SourceBackoff::State state;
  {
    std::lock_guard<std::mutex> l(mu_);
    state = src_.state();
    if (state == SourceBackoff::State::kFailing) {
      if (current_ != nullptr && current_->probe) return 0;  // still issuing the probe
      if (current_ == nullptr && src_.ProbeDue(now)) {
        *probe = true;
        return 0;
      }
      if (current_ != nullptr) return kNoRoomSleepNanos;  // caller drops it first
      if (src_.probe_in_flight()) return kMaxSleepNanos;
      return std::max<uint64_t>(src_.next_probe_ns() - now, 1);
    }
  }
  // Running with a unit in progress: keep issuing it.
  if (state == SourceBackoff::State::kRunning && current_ != nullptr) return 0;
  // Ask the source before a new unit (running) or while paused (down).
  const SourceHealth h = source_->Health();
  if (h.state == SourceHealth::State::kChanged) {
    // Not down: it will not come back. The check records the change, and
    // copying stops for good (may_copy) rather than wait for the source.
    if (ctx_.check_source) ctx_.check_source();
    return kSourcePollNanos;
  }
  std::lock_guard<std::mutex> l(mu_);
  if (h.up()) {
    if (src_.RecordUp(now)) LogPauseLocked();
    return 0;
  }
  std::string why = SourceStateName(h.state);
  if (!h.last_error.empty()) why += ": " + h.last_error;
  if (src_.RecordDown(now, why)) {
    ForgiveStreakLocked();
    LogPauseLocked();
  }
  return kSourcePollNanos;
}

uint64_t BackgroundCopier::PrefetchRoom() const {
  // What the source delivers in one round trip at kPrefetchBytesPerSecond.
  const uint64_t floor_us = latency_.Get(ctx_.clock->NowNanos()) / 1000;
  const uint64_t bdp = floor_us * (kPrefetchBytesPerSecond / 1'000'000);
  return std::min(SourceWindow(), std::clamp(bdp, kPrefetchBusyBytes, kPrefetchMaxBytes));
}

uint64_t BackgroundCopier::SourceWindow() const {
  if (!shared_link()) return options_.inflight_bytes;
  return link_.Window(options_.inflight_bytes, ctx_.clock->NowNanos());
}

uint64_t BackgroundCopier::BackgroundWindow() const {
  const uint64_t window = SourceWindow();
  // Under a rate ceiling, at most kRateWindowSeconds of it in flight: the
  // ceiling is charged when a piece is issued, so pieces issued to a
  // source that stopped answering would otherwise pile up to the whole
  // window (64 MiB) and reach it at once when it answers again (an NBD
  // server stopped for 20 s at --rate 4M: 55 MiB hydrated in the second
  // after). A source slower than two seconds a round trip is not one the
  // ceiling binds anyway.
  const uint64_t rate = rate_.rate();
  return rate == 0 ? window : std::min(window, kRateWindowSeconds * rate);
}

uint64_t BackgroundCopier::PieceCap() const {
  return shared_link() ? link_.PieceCap(ctx_.clock->NowNanos()) : kMaxCopyChunk;
}

bool BackgroundCopier::BusyAllowsIssue() const {
  const uint32_t open = paced_open_.load();
  if (open == 0) return true;
  // Only the unit being issued is open, and none of its pieces is pending.
  return open == 1 && current_ != nullptr && current_->refs.load() == 1;
}

bool BackgroundCopier::HaveRoom(uint64_t len, bool prefetch) const {
  // Prefetch gets room of its own on top: it must not wait behind a backlog
  // of background copies issued while no one was reading.
  const uint32_t workers = std::max<uint32_t>(options_.workers, 1);
  if (!async_reads_ && data_pieces_.load() >= (prefetch ? 3 : 2) * workers) return false;
  const uint64_t in_flight = inflight_bytes_.load();
  const uint64_t target = BackgroundWindow() + (prefetch ? PrefetchRoom() : 0);
  return in_flight == 0 || in_flight + len <= target;
}

uint64_t BackgroundCopier::UnitCap(bool paced) const {
  const uint64_t rate = rate_.unit_bytes();
  return paced ? std::min(rate, pace_.unit_bytes()) : rate;
}

uint64_t BackgroundCopier::StartUnit(bool probe, Scope scope, uint64_t max_bytes) {
  // Lock nothing new while the byte budget is spent.
  if (!HaveRoom(1, scope != Scope::kAll)) return kMaxSleepNanos;
  Run run;
  CopyOrigin origin = CopyOrigin::kCursor;
  const uint64_t max_regions =
      std::max<uint64_t>(max_bytes >> ctx_.hydrator->geometry().region_shift(), 1);
  Pick p = PickUnit(probe, scope, max_regions, &run, &origin);
  if (p == Pick::kNoRoom) return kNoRoomSleepNanos;
  if (p == Pick::kNothing) {
    Idle();
    return kIdleSleepNanos;
  }
  idle_since_ns_ = 0;
  auto u = std::make_unique<Unit>();
  u->dest_errors_at_start = ctx_.hydrator->health()->DestErrors();
  u->first = run.first;
  u->count = run.count;
  u->probe = probe;
  u->origin = origin;
  {
    std::lock_guard<std::mutex> l(mu_);
    u->retry = backoff_.HasFailed(run.first);
    if (probe) src_.SetProbeInFlight(true);
  }
  units_open_.fetch_add(1);
  if (!IsPrefetch(origin)) paced_open_.fetch_add(1);
  current_ = u.release();
  Result<std::vector<RunSegment>> plan = ctx_.hydrator->PlanRun(run.first, run.count);
  if (!plan.ok()) {
    current_->Fail(plan.status(), /*noted=*/false);
    DropCurrent(/*abandon=*/false);
    return 0;
  }
  current_->plan = std::move(*plan);
  return 0;
}

uint64_t BackgroundCopier::IssueNext(bool busy, uint64_t now) {
  Unit* u = current_;
  if (u->failed.load(std::memory_order_acquire) || u->next_seg == u->plan.size()) {
    DropCurrent(/*abandon=*/false);
    return 0;
  }
  // Once the source changed, nothing more is read from it (SPEC §7a).
  if (Status c = ctx_.hydrator->RefuseIfChanged(); !c.ok()) {
    u->Fail(c, /*noted=*/true);
    DropCurrent(/*abandon=*/false);
    return 0;
  }
  const RunSegment& seg = u->plan[u->next_seg];
  auto p = std::make_unique<Piece>();
  p->unit = u;
  p->off = seg.offset + u->seg_done;
  p->len = seg.length - u->seg_done;
  if (seg.hole) {
    p->kind = Piece::Kind::kHole;
  } else {
    // A piece is at most one unit of the rate (and of the pace while paced):
    // a region larger than that is read and written in several pieces, all
    // under its lock, and marked once the last one is in dest. Read-ahead
    // is not held to the rate (READ-AHEAD in the header).
    const bool rated = u->origin != CopyOrigin::kAhead;
    p->len = std::min<uint64_t>(
        {p->len, kMaxCopyChunk, rated ? UnitCap(busy) : kMaxCopyChunk, PieceCap()});
    if (!HaveRoom(p->len, IsPrefetch(u->origin))) return kMaxSleepNanos;  // a writer's release wakes us
    Result<std::unique_ptr<CopyBuffer>> buf = pool_.Acquire(p->len);
    if (!buf.ok()) {
      u->Fail(buf.status(), /*noted=*/false);
      DropCurrent(/*abandon=*/false);
      return 0;
    }
    p->buf = std::move(*buf);
    if (rated) rate_.Charge(p->len, now);
    if (busy) pace_.Charge(p->len, now);
  }
  u->seg_done += p->len;
  if (u->seg_done == seg.length) {
    ++u->next_seg;
    u->seg_done = 0;
  }
  u->refs.fetch_add(1);
  const bool last = u->next_seg == u->plan.size();
  if (last && IsPrefetch(u->origin)) {
    // Every read of it is issued: worth waiting for (IsPrefetching).
    std::lock_guard<std::mutex> l(pf_mu_);
    prefetching_[u->first] = u->count;
    prefetch_units_.fetch_add(1);
    u->registered = true;
  }
  if (p->kind == Piece::Kind::kHole) {
    Enqueue(std::move(p));
  } else {
    StartRead(std::move(p));
  }
  if (last) DropCurrent(/*abandon=*/false);
  return 0;
}

void BackgroundCopier::StartRead(std::unique_ptr<Piece> p) {
  inflight_bytes_.fetch_add(p->len);
  if (IsPrefetch(p->unit->origin)) prefetch_bytes_.fetch_add(p->len);
  origin_bytes_[static_cast<int>(p->unit->origin)].fetch_add(p->len, std::memory_order_relaxed);
  data_pieces_.fetch_add(1);
  {
    std::lock_guard<std::mutex> l(q_mu_);
    ++reads_in_flight_;
  }
  p->issued_ns = ctx_.clock->NowNanos();
  Piece* raw = p.release();  // owned by the read until its done
  auto done = [this, raw](Status s) {
    if (s.ok()) {
      const uint64_t now = ctx_.clock->NowNanos();
      latency_.Note(now - raw->issued_ns, now);
      if (shared_link()) link_.NoteDelivered(raw->len, now);
    }
    raw->read_status = std::move(s);
    Complete(raw);
  };
  if (async_reads_) {
    source_->ReadAsync(raw->off, raw->buf->data(), raw->len, std::move(done));
    return;
  }
  // A read queued behind others is dropped if, by the time a reader takes
  // it, its unit failed or the source changed.
  auto gate = [this, raw]() -> Status {
    Status s = raw->unit->failed.load(std::memory_order_acquire)
                   ? Status::Aborted("its unit already failed")
                   : ctx_.hydrator->RefuseIfChanged();
    if (!s.ok()) raw->skipped.store(true, std::memory_order_release);
    return s;
  };
  readers_->Submit(raw->off, raw->buf->data(), raw->len, std::move(done), std::move(gate));
}

void BackgroundCopier::DropCurrent(bool abandon) {
  Unit* u = current_;
  if (u == nullptr) return;
  current_ = nullptr;
  if (abandon && u->next_seg < u->plan.size()) {
    std::lock_guard<std::mutex> l(u->mu);
    u->abandoned = true;
  }
  Unref(u, /*on_writer=*/false);
}

bool BackgroundCopier::TakeRunIn(uint64_t from, uint64_t end, uint64_t max, uint64_t now,
                                 int* budget, Run* out, uint64_t* next) {
  metadata::Metadata* md = ctx_.md;
  RegionLockTable* locks = ctx_.locks;
  end = std::min(end, md->nr_regions());
  uint64_t pos = from;
  while (pos < end && (*budget)-- > 0) {
    const uint64_t r = md->FindNextUnhydratedRegion(pos);
    if (r >= end) {
      pos = end;
      break;
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
    while (n < limit && r + n < end) {
      const uint64_t q = r + n;
      if (md->IsRegionHydrated(q) || backoff_.HasFailed(q) || !locks->TryLock(q)) break;
      if (md->IsRegionHydrated(q)) {
        locks->Unlock(q);
        break;
      }
      ++n;
    }
    *out = Run{r, n};
    *next = r + n;
    return true;
  }
  *next = pos;
  return false;
}

BackgroundCopier::Pick BackgroundCopier::TakeProfile(uint64_t max, uint64_t now, int* budget,
                                                     Run* out, CopyOrigin* origin) {
  uint64_t next = 0;
  while (*budget > 0 && profile_idx_ < profile_.size()) {
    const RegionRun& pr = profile_[profile_idx_];
    const bool got =
        TakeRunIn(std::max(pr.first, profile_pos_), pr.end(), max, now, budget, out, &next);
    if (got && next < pr.end()) {
      profile_pos_ = next;
    } else if (got || next >= pr.end()) {
      ++profile_idx_;
      profile_pos_ = 0;
    } else {
      profile_pos_ = next;  // scan budget spent inside this run
    }
    if (got) {
      *origin = CopyOrigin::kProfile;
      return Pick::kPicked;
    }
  }
  if (profile_idx_ >= profile_.size()) profile_pending_.store(false);
  return Pick::kNothing;
}

BackgroundCopier::Pick BackgroundCopier::PickUnit(bool probe, Scope scope, uint64_t max_regions,
                                                  Run* out, CopyOrigin* origin) {
  metadata::Metadata* md = ctx_.md;
  RegionLockTable* locks = ctx_.locks;
  const uint64_t nr = md->nr_regions();
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t now = ctx_.clock->NowNanos();
  int budget = kMaxScan;
  uint64_t next = 0;
  if (scope == Scope::kAhead) {
    // Read-ahead alone: not held to the threshold (READ-AHEAD in the
    // header); none while the profile is being replayed.
    if (BackgroundAllowed() && profile_idx_ < profile_.size()) return Pick::kNothing;
    const uint64_t max = probe ? 1 : std::min<uint64_t>(batch_.load(), max_regions);
    // Dense readers only: a sparse one's window is mostly what it skips.
    for (const RegionRun& w : hints_.AheadWindows(now, ReadHints::Streams::kDenseOnly)) {
      if (TakeRunIn(w.first, w.end(), max, now, &budget, out, &next)) {
        *origin = CopyOrigin::kAhead;
        return Pick::kPicked;
      }
    }
    return Pick::kNothing;
  }
  const uint64_t threshold = threshold_.load();
  const uint64_t in_flight = locks->InFlight();
  if (in_flight >= threshold) return Pick::kNoRoom;
  const uint64_t max =
      probe ? 1 : std::min<uint64_t>({batch_.load(), threshold - in_flight, max_regions});

  // The hydration order (see ORDER in the header); a probe takes the cursor.
  if (!probe) {
    // The profile first: it is what the workload will read, where read-ahead
    // only guesses.
    if (TakeProfile(max, now, &budget, out, origin) == Pick::kPicked) return Pick::kPicked;
    // No read-ahead while the profile is still being fetched: its guesses
    // would take the link from what the workload will read. A dense
    // reader's window is read-ahead (not held to the rate when issued); a
    // sparse reader's is copied as units near its reads are (held to it).
    if (profile_idx_ >= profile_.size()) {
      for (const auto& [which, kind] :
           {std::pair{ReadHints::Streams::kDenseOnly, CopyOrigin::kAhead},
            std::pair{ReadHints::Streams::kSparseOnly, CopyOrigin::kNear}}) {
        if (scope == Scope::kPrefetch && kind != CopyOrigin::kAhead) break;
        for (const RegionRun& w : hints_.AheadWindows(now, which)) {
          if (TakeRunIn(w.first, w.end(), max, now, &budget, out, &next)) {
            *origin = kind;
            return Pick::kPicked;
          }
        }
      }
    }
    if (scope == Scope::kPrefetch) return Pick::kNothing;
    RegionRun h;
    while (budget > 0 && hints_.FrontNear(&h)) {
      const bool got = TakeRunIn(h.first, h.end(), max, now, &budget, out, &next);
      hints_.AdvanceNear(got ? next : h.end());
      if (got) {
        *origin = CopyOrigin::kNear;
        return Pick::kPicked;
      }
    }
  }
  *origin = CopyOrigin::kCursor;

  // The cursor: [cursor_, nr), then, wrapping, [0, cursor_).
  int scan = kMaxScan;
  const uint64_t start = cursor_;
  bool got = TakeRunIn(start, nr, max, now, &scan, out, &next);
  if (!got && start != 0 && next >= nr) got = TakeRunIn(0, start, max, now, &scan, out, &next);
  cursor_ = next >= nr ? 0 : next;
  return got ? Pick::kPicked : Pick::kNothing;
}

}  // namespace clonefs

namespace clonefs {

bool BackgroundCopier::NoteRead(uint64_t off, uint64_t len, bool unhydrated) {
  const bool seq = hints_.NoteRead(off, len, unhydrated, ctx_.clock->NowNanos());
  // The window moved (also through hydrated data: what is ahead may not be).
  if (seq) BumpAndNotify();
  return seq;
}

int BackgroundCopier::ReadAheadStreams(uint64_t now_ns) const {
  // While the profile is replayed, no read-ahead; while background copying
  // is off, the profile is not replayed and read-ahead goes on (ORDER).
  if (BackgroundAllowed() && profile_pending_.load()) return 0;
  // A sparse reader's window is copied only as background copying.
  return hints_.sequential_streams(
      now_ns, BackgroundAllowed() ? ReadHints::Streams::kAll : ReadHints::Streams::kDenseOnly);
}

bool BackgroundCopier::ReadAheadDue(uint64_t now_ns) const {
  if (prefetch_bytes_.load() >= PrefetchRoom()) return false;
  if (BackgroundAllowed() && profile_pending_.load()) return false;
  return hints_.sequential_streams(now_ns, ReadHints::Streams::kDenseOnly) != 0;
}

void BackgroundCopier::SetProfile(std::vector<RegionRun> runs) {
  std::lock_guard<std::mutex> l(mu_);
  profile_ = std::move(runs);
  profile_idx_ = 0;
  profile_pos_ = 0;
  profile_pending_.store(!profile_.empty());
}

bool BackgroundCopier::IsPrefetching(uint64_t r) const {
  if (prefetch_units_.load() == 0) return false;
  std::lock_guard<std::mutex> l(pf_mu_);
  auto it = prefetching_.upper_bound(r);
  if (it == prefetching_.begin()) return false;
  --it;
  return r < it->first + it->second;
}

void BackgroundCopier::ProfileProgress(uint64_t* hydrated, uint64_t* total) const {
  *hydrated = 0;
  *total = 0;
  for (const RegionRun& r : profile_) {
    *total += r.count;
    for (uint64_t x = r.first; x < r.end(); ++x) *hydrated += ctx_.md->IsRegionHydrated(x);
  }
}

OriginStats BackgroundCopier::origin_stats(CopyOrigin o) const {
  const int i = static_cast<int>(o);
  return OriginStats{origin_bytes_[i].load(std::memory_order_relaxed),
                     origin_regions_[i].load(std::memory_order_relaxed)};
}

bool BackgroundCopier::AdoptFetched(uint64_t first, uint64_t count, const uint8_t* data) {
  const uint64_t len = ctx_.hydrator->geometry().RunLength(first, count);
  if (killed_.load() || len > kMaxCopyChunk) return false;
  if (inflight_bytes_.load() + len > 2 * options_.inflight_bytes) return false;
  Result<std::unique_ptr<CopyBuffer>> buf = pool_.Acquire(len);
  if (!buf.ok()) return false;
  std::memcpy((*buf)->data(), data, len);
  auto u = std::make_unique<Unit>();
  u->dest_errors_at_start = ctx_.hydrator->health()->DestErrors();
  u->first = first;
  u->count = count;
  u->origin = CopyOrigin::kCopyOnRead;
  u->plan.push_back(RunSegment{ctx_.hydrator->geometry().RegionStart(first), len, false});
  u->next_seg = 1;
  auto p = std::make_unique<Piece>();
  p->unit = u.get();
  p->off = u->plan[0].offset;
  p->len = len;
  p->buf = std::move(*buf);
  // The unit's one reference is this piece's: the writer that handles it
  // finishes the unit.
  std::lock_guard<std::mutex> l(q_mu_);
  if (!accepting_) {
    pool_.Release(std::move(p->buf));
    return false;
  }
  units_open_.fetch_add(1);
  inflight_bytes_.fetch_add(len);
  data_pieces_.fetch_add(1);
  u.release();
  urgent_.push_back(std::move(p));
  q_cv_.notify_one();
  return true;
}

}  // namespace clonefs
