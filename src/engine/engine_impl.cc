#include "engine/engine_impl.h"

#include <algorithm>
#include <string>

#include "base/clock.h"
#include "base/log.h"

namespace clonefs {

const char* EngineModeName(EngineMode m) {
  switch (m) {
    case EngineMode::kReadWrite: return "rw";
    case EngineMode::kReadOnly: return "ro";
    case EngineMode::kFail: return "Fail";
  }
  return "?";
}

namespace {

CopierOptions CopierOptionsFrom(const EngineOptions& o) {
  CopierOptions c;
  c.hydration_threshold = o.knobs.hydration_threshold;
  c.hydration_batch_size = o.knobs.hydration_batch_size;
  c.rate_bytes_per_s = o.knobs.rate_bytes_per_s;
  c.enabled = o.knobs.hydration_enabled;
  c.min_pace_bytes_per_s = o.min_background_pace_bytes_per_s;
  c.retry_backoff_initial_ms = o.retry_backoff_initial_ms;
  c.workers = o.copier_threads;
  c.writer_threads = o.copier_writer_threads;
  c.inflight_bytes = o.copier_inflight_bytes;
  c.cache_lag_bytes = o.copier_cache_lag_bytes;
  c.foreground_idle_ns = o.foreground_idle_ms * 1'000'000;
  return c;
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::Open(std::unique_ptr<Device> source,
                                             std::unique_ptr<Device> dest,
                                             std::unique_ptr<metadata::Metadata> md,
                                             const EngineOptions& options) {
  if (!source || !dest || !md) return Status::InvalidArgument("engine needs source, dest and metadata");
  const uint64_t image = md->superblock().image_size;
  if (source->Size() != image) {
    return Status::InvalidArgument("source " + source->Name() + " is " +
                                   std::to_string(source->Size()) +
                                   " bytes but the metadata describes an image of " +
                                   std::to_string(image) + " bytes");
  }
  if (dest->Size() < image) {
    return Status::InvalidArgument("destination " + dest->Name() + " is " +
                                   std::to_string(dest->Size()) +
                                   " bytes, smaller than the image (" + std::to_string(image) +
                                   " bytes)");
  }
  if (!source->ReadOnly()) {
    return Status::InvalidArgument("source " + source->Name() + " must be opened read-only");
  }
  if (dest->ReadOnly()) {
    return Status::InvalidArgument("destination " + dest->Name() + " is read-only");
  }
  CLONEFS_ASSIGN_OR_RETURN(RegionGeometry geo, RegionGeometry::Make(image, md->region_size()));
  return std::unique_ptr<Engine>(
      new EngineImpl(std::move(source), std::move(dest), std::move(md), options, geo));
}

EngineImpl::EngineImpl(std::unique_ptr<Device> source, std::unique_ptr<Device> dest,
                       std::unique_ptr<metadata::Metadata> md, const EngineOptions& options,
                       const RegionGeometry& geo)
    : options_(options),
      clock_(options.clock ? options.clock : Clock::Real()),
      geo_(geo),
      source_(std::move(source)),
      dest_(std::move(dest)),
      md_(std::move(md)),
      source_watch_(source_.get()),
      dest_watch_(dest_.get()),
      health_(dest_->Name()),
      foreground_(clock_),
      hydrator_(source_.get(), dest_.get(), md_.get(), geo_, clock_, &source_watch_, &dest_watch_,
                &health_, options.discard_passdown ? ZeroMode::kPunch : ZeroMode::kWriteZeros),
      committer_(CommitterContext{
          .dest = dest_.get(),
          .md = md_.get(),
          .hydrator = &hydrator_,
          .health = &health_,
          .clock = clock_,
          .interval_ms = options.commit_interval_ms,
          .on_complete =
              [this] {
                // dest alone is the image now: nothing of the clone's is
                // left to tell apart from another program's writes.
                StopWatchingDestWriters();
                if (options_.on_complete) options_.on_complete();
              },
          .on_mode_change =
              [this](EngineMode m) {
                copier_.Wake();
                if (options_.on_mode_change) options_.on_mode_change(m);
              },
      }),
      copier_(CopierContext{
                  .md = md_.get(),
                  .hydrator = &hydrator_,
                  .locks = &locks_,
                  .foreground = &foreground_,
                  .clock = clock_,
                  .may_copy =
                      [this] {
                        return committer_.mode() == EngineMode::kReadWrite &&
                               !source_watch_.changed() && !dest_watch_.changed() &&
                               dest_full_gate_.MayCopy(health_.dest(), clock_->NowNanos());
                      },
                  .on_all_hydrated = [this] { committer_.RequestAsync(); },
                  .check_source =
                      [this] {
                        (void)source_watch_.Check();
                        // So that a single status query sees how long the
                        // source has been silent.
                        (void)SourceSilentNanos(source_->Health(), hydrator_.bytes_copied());
                      },
                  .check_dest =
                      [this] {
                        (void)dest_watch_.Check();
                        CheckDestBypass();
                      },
                  .complete_committed = [this] { return committer_.hydration_done(); },
              },
              CopierOptionsFrom(options)),
      io_errors_(clock_),
      copy_on_read_(options.copy_on_read) {
  hydrator_.SetCopyRateWindow(
      BackgroundCopier::CopyRateWindowNanos(options.knobs.rate_bytes_per_s));
  copier_.SetHints(options.read_hints);
  if (!options.profile_order.empty()) copier_.SetProfile(options.profile_order);
  if (!options.record_profile_path.empty()) {
    recorder_ = std::make_unique<profile::ProfileRecorder>(
        geo_, profile::SourceKey{options.profile_source_size, options.profile_source_fp1,
                                 options.profile_source_fp2});
    for (const RegionRun& run : options.recorded_before) recorder_->Touch(run.first, run.count);
  }
}

EngineImpl::~EngineImpl() { (void)Shutdown(); }

Status EngineImpl::Start() {
  std::lock_guard<std::mutex> l(lifecycle_mu_);
  if (state_.load() != State::kOpen) return Status::OK();
  if (options_.watch_dest_writers && md_->NrCommittedHydratedRegions() < md_->nr_regions()) {
    WatchDestWriters();
  }
  committer_.Start();
  copier_.Start();
  state_.store(State::kStarted);
  return Status::OK();
}

void EngineImpl::WatchDestWriters() {
  ForeignWriteWatch::Options wo;
  wo.on_write = [this](const std::string& who) { DestWrittenByOther(who); };
  wo.on_overflow = [this] {
    CLONEFS_LOG_WARN(
        "too many writes to dest %s were queued for the watch of other programs' writes: "
        "some may have been missed (its size is still checked)",
        dest_->Name().c_str());
    (void)dest_watch_.Check();
  };
  if (options_.guard_dest_opens) {
    wo.on_denied = [this](const std::string& who) {
      const uint64_t n = opens_denied_.fetch_add(1) + 1;
      if (n <= 8 || n % 1000 == 0) {
        CLONEFS_LOG_WARN(
            "refused %s opening dest %s (%llu refused so far): dest is the clone's alone "
            "until it is complete; use the exposed file under the mountpoint",
            who.c_str(), dest_->Name().c_str(), static_cast<unsigned long long>(n));
      }
    };
  }
  auto w = dest_->WatchForeignWrites(std::move(wo));
  if (!w.ok()) {
    CLONEFS_LOG_INFO(
        "writes to dest %s by other programs cannot be watched (%s): only its "
        "size is checked",
        dest_->Name().c_str(), w.status().message().c_str());
    return;
  }
  if (options_.guard_dest_opens) {
    const std::string guard =
        (*w)->guarding() ? "are refused until the clone is complete"
                         : "cannot be refused (that needs root): their writes stop the clone";
    CLONEFS_LOG_INFO("other programs' opens of dest %s %s", dest_->Name().c_str(), guard.c_str());
  }
  std::lock_guard<std::mutex> l(watch_mu_);
  foreign_watch_ = std::move(*w);
}

void EngineImpl::CheckDestBypass() {
  if (!options_.dest_bypass || committer_.hydration_done() || told_dest_written_.load()) return;
  const std::string how = options_.dest_bypass();
  if (how.empty()) return;
  const DestWatch::Bypass b = dest_watch_.Bypassed(how);
  if (b.first) copier_.Wake();
  TellDestWritten(b.change);
}

void EngineImpl::StopWatchingDestWriters() {
  std::unique_ptr<ForeignWriteWatch> w;
  {
    std::lock_guard<std::mutex> l(watch_mu_);
    w = std::move(foreign_watch_);
  }
  w.reset();  // joins its thread, outside the lock
}

void EngineImpl::DestWrittenByOther(const std::string& who) {
  // Complete (the watch is being stopped): dest alone is the image, and
  // what the program wrote is in it.
  if (committer_.hydration_done()) return;
  const DestWatch::Bypass b = dest_watch_.Written(who);
  if (b.first) copier_.Wake();
  // Told even when dest had already changed size (`cp` truncates, then
  // writes a full-size file again): only the record stops a later mount of
  // a dest that is full-size again.
  TellDestWritten(b.change);
}

void EngineImpl::TellDestWritten(const std::string& change) {
  if (!told_dest_written_.exchange(true) && options_.on_dest_written) {
    options_.on_dest_written(change);
  }
}

Status EngineImpl::Shutdown() {
  std::lock_guard<std::mutex> l(lifecycle_mu_);
  if (state_.load() == State::kShutDown) return shutdown_status_;
  StopWatchingDestWriters();
  copier_.Stop();
  committer_.Start();  // no-op if running; a never-started engine still commits
  shutdown_status_ = committer_.Commit(/*flush_always=*/true);
  committer_.Stop();
  state_.store(State::kShutDown);
  if (recorder_) {
    const profile::Profile p = recorder_->Snapshot();
    Status ps = profile::Save(p, options_.record_profile_path);
    if (ps.ok()) {
      CLONEFS_LOG_INFO("access profile of %llu regions in %zu runs written to %s",
                       static_cast<unsigned long long>(p.regions()), p.runs.size(),
                       options_.record_profile_path.c_str());
    } else {
      CLONEFS_LOG_WARN("cannot write the access profile: %s", ps.ToString().c_str());
      profile_status_ = ps;
    }
  }
  if (!shutdown_status_.ok()) {
    CLONEFS_LOG_WARN("final commit at shutdown: %s", shutdown_status_.ToString().c_str());
  }
  return shutdown_status_;
}

Status EngineImpl::ProfileWritten() const {
  std::lock_guard<std::mutex> l(lifecycle_mu_);
  return profile_status_;
}

void EngineImpl::SetRate(uint64_t bytes_per_s) {
  copier_.SetRate(bytes_per_s);
  hydrator_.SetCopyRateWindow(BackgroundCopier::CopyRateWindowNanos(bytes_per_s));
}

Status EngineImpl::Fsync() {
  if (state_.load() != State::kStarted) return Status::Aborted("engine is not running");
  ForegroundScope fg(&foreground_);
  // What fsync makes durable must be in dest: a dest truncated under the
  // clone fails the fsync rather than commit over the loss.
  CLONEFS_RETURN_IF_ERROR(dest_watch_.Check());
  return committer_.Commit(/*flush_always=*/true);
}

uint64_t EngineImpl::HydratedBytes(uint64_t hydrated_regions) const {
  uint64_t bytes = hydrated_regions << geo_.region_shift();
  uint64_t last = geo_.nr_regions() - 1;
  // The count and the last region's state are read at different times: the
  // last region may be hydrated in between (then the count may not include
  // it, possibly 0), or rolled back (then the count may include it). Either
  // way the figure stays within [0, image size].
  if (hydrated_regions > 0 && geo_.IsPartialRegion(last) && md_->IsRegionHydrated(last)) {
    bytes -= geo_.region_size() - geo_.RegionLength(last);
  }
  return std::min(bytes, geo_.image_size());
}

uint64_t EngineImpl::AllocatedBytes() const {
  const uint64_t size = geo_.image_size();
  const std::optional<uint64_t> dest = dest_->AllocatedBytes();
  if (!dest) return size;
  const uint64_t hydrated = HydratedBytes(md_->NrHydratedRegions());
  const uint64_t unhydrated = size > hydrated ? size - hydrated : 0;
  return std::min(size, *dest + unhydrated);
}

uint64_t EngineImpl::SourceSilentNanos(const SourceHealth& h, uint64_t bytes_copied) const {
  // A request waiting is not silence if answers to others keep coming (on
  // a slow link, pieces queue at the server behind the ones before them):
  // silent for as long as both a request has waited and nothing more was
  // delivered since an earlier look (this, or the copier's look at the
  // source every second while regions are unhydrated) saw the same figure.
  const uint64_t delivered =
      bytes_copied + h.bytes_read + user_source_bytes_.load(std::memory_order_relaxed);
  const uint64_t now = clock_->NowNanos();
  uint64_t still = 0;
  {
    std::lock_guard<std::mutex> l(progress_mu_);
    if (progress_seen_ns_ == 0 || delivered != progress_bytes_seen_) {
      progress_bytes_seen_ = delivered;
      progress_seen_ns_ = now;
    }
    still = now > progress_seen_ns_ ? now - progress_seen_ns_ : 0;
  }
  const uint64_t sent = h.oldest_request_unix_ns;
  if (sent == 0) return 0;
  const uint64_t wall = WallNowNanos();
  return std::min(wall > sent ? wall - sent : 0, still);
}

EngineStats EngineImpl::Stats() const {
  EngineStats s;
  s.image_size = geo_.image_size();
  s.region_size = geo_.region_size();
  s.nr_regions = geo_.nr_regions();
  s.hydrated_regions = md_->NrHydratedRegions();
  s.committed_hydrated_regions = md_->NrCommittedHydratedRegions();
  s.hydrating_regions = locks_.InFlight();
  s.hydrated_bytes = HydratedBytes(s.hydrated_regions);
  s.bytes_copied = hydrator_.bytes_copied();
  s.bytes_zeroed = hydrator_.bytes_zeroed();
  s.mode = committer_.mode();
  s.copy_stopped = CopyStopped(s.mode);
  {
    // While copying is stopped (or everything is hydrated), a rate falls to
    // 0 a second after the last copy (write-triggered ones go on).
    const uint64_t now = clock_->NowNanos();
    const uint64_t window = hydrator_.copy_rate_window();
    const bool stopped = !s.copy_stopped.empty() || md_->IsHydrationDone();
    constexpr uint64_t kStoppedIdleNanos = 1'000'000'000;
    s.copy_rate_bytes_per_s = hydrator_.copy_rate(now, stopped ? kStoppedIdleNanos : 2 * window);
    s.copy_rate_window_ns = window;
    s.zero_rate_bytes_per_s = hydrator_.zero_rate(
        now, stopped ? kStoppedIdleNanos : 2 * RateMeter::kDefaultWindowNanos);
  }
  s.copy_failures = hydrator_.copy_failures();
  s.commits = committer_.commits();
  s.commit_failures = committer_.failures();
  if (const Committer::Progress p = committer_.progress(); p.step != nullptr) {
    s.commit_step = p.step;
    s.commit_step_ns = p.for_ns;
  }
  s.hydration_done = committer_.hydration_done();
  s.knobs.hydration_threshold = copier_.threshold();
  s.knobs.hydration_batch_size = copier_.batch_size();
  s.knobs.rate_bytes_per_s = copier_.rate();
  s.knobs.hydration_enabled = copier_.enabled();
  s.discard_passdown = options_.discard_passdown;
  s.metadata_space = committer_.space();
  s.source_change = source_watch_.reason();
  s.dest_change = dest_watch_.reason();
  // Before the source's health: if these queries found it stalled, status
  // says so at once.
  s.remaining_copy_bytes =
      RemainingCopyBytes(s.image_size > s.hydrated_bytes ? s.image_size - s.hydrated_bytes : 0);
  s.source_health = source_->Health();
  s.source_silent_ns = SourceSilentNanos(s.source_health, s.bytes_copied);
  ReconcileSourceChange(&s);
  s.dest_condition = health_.dest();
  s.last_error = health_.last_error();
  s.copier_inflight_bytes = copier_.inflight_bytes();
  s.copier_pooled_bytes = copier_.pooled_bytes();
  s.copier_prefetch_room_bytes = copier_.PrefetchRoom();
  s.source_latency_floor_ns = copier_.source_latency_floor();
  s.source_link_shared = copier_.shared_link();
  s.copier_window_bytes = copier_.BackgroundWindow();
  s.copier_failed_reads = copier_.failed_reads();
  s.copy_failing_regions = copier_.FailingRegions();
  s.copy_on_read = copy_on_read_.load();
  s.read_hints = copier_.hints_enabled();
  // Users' requests: their reads, and the copies their partial writes and
  // zeros of unhydrated regions need.
  s.user_source_bytes =
      user_source_bytes_.load(std::memory_order_relaxed) + hydrator_.overlay_source_bytes();
  const OriginStats ahead = copier_.origin_stats(CopyOrigin::kAhead);
  const OriginStats near = copier_.origin_stats(CopyOrigin::kNear);
  const OriginStats prof = copier_.origin_stats(CopyOrigin::kProfile);
  const OriginStats cursor = copier_.origin_stats(CopyOrigin::kCursor);
  s.copier_source_bytes = ahead.source_bytes + near.source_bytes + prof.source_bytes +
                          cursor.source_bytes;
  s.ahead_regions = ahead.regions;
  s.near_regions = near.regions;
  s.profile_regions = prof.regions;
  s.cursor_regions = cursor.regions;
  s.cor_regions = copier_.origin_stats(CopyOrigin::kCopyOnRead).regions;
  s.ahead_source_bytes = ahead.source_bytes;
  s.near_source_bytes = near.source_bytes;
  s.sequential_readers = static_cast<uint64_t>(copier_.ReadAheadStreams(clock_->NowNanos()));
  s.near_hints = copier_.hints().near_size();
  copier_.ProfileProgress(&s.profile_hydrated, &s.profile_total);
  if (recorder_) {
    s.record_profile_path = options_.record_profile_path;
    s.profile_recorded = recorder_->regions();
  }
  const CopierPause pause = copier_.pause();
  if (pause.paused()) {
    s.copier_pause = SourceBackoffStateName(pause.state);
    s.copier_paused_since_unix_ns = pause.since_unix_ns;
    s.copier_pause_reason = pause.reason;
  }
  return s;
}

void EngineImpl::ReconcileSourceChange(EngineStats* s) const {
  SourceHealth& h = s->source_health;
  if (!s->source_change.empty()) {
    // A file source says nothing of a change itself; a remote one already
    // says kChanged (keep its own time and words).
    if (h.state != SourceHealth::State::kChanged) {
      h.state = SourceHealth::State::kChanged;
      h.since_unix_ns = source_watch_.since_unix_ns();
      h.change = s->source_change;
    }
  } else if (h.state == SourceHealth::State::kChanged && !s->hydration_done) {
    // The device found the change before the SourceWatch (which asks it at
    // least every second while regions remain unhydrated): every request
    // to the source fails already. Once the clone is complete the source
    // no longer matters, so the clone's own state stays "complete".
    s->source_change = h.change;
  }
}

Result<EngineStats> EngineImpl::CommitAndStats() {
  if (state_.load() == State::kStarted) {
    // Failures are handled by the committer (mode change) and show in Stats.
    (void)committer_.Commit(/*flush_always=*/false, /*refresh_space=*/true, kStatusCommitWaitNanos);
  }
  return Stats();
}

}  // namespace clonefs
