#include "engine/committer.h"

#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>

#include "base/log.h"
#include "base/test_hooks.h"

namespace clonefs {
namespace {

constexpr uint64_t kMaxWaitNanos = 100'000'000;          // re-check the clock this often
constexpr uint64_t kSpaceRefreshNanos = 1'000'000'000;   // space figures after timer commits

}  // namespace

Committer::Committer(const CommitterContext& ctx)
    : ctx_(ctx),
      mode_(ctx.md->IsReadOnly() ? EngineMode::kReadOnly : EngineMode::kReadWrite),
      next_(std::make_shared<Ticket>()) {
  if (mode_.load() == EngineMode::kReadOnly) failure_ = "its metadata was opened read-only";
  RefreshSpace();
}

Committer::~Committer() { Stop(); }

void Committer::Start() {
  std::lock_guard<std::mutex> lc(lifecycle_mu_);
  if (thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    running_ = true;
    stop_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void Committer::Stop() {
  std::lock_guard<std::mutex> lc(lifecycle_mu_);
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Status Committer::Commit(bool flush_always, bool refresh_space, uint64_t max_wait_ns) {
  std::unique_lock<std::mutex> l(mu_);
  if (!running_) return Status::Aborted("commit requested while the engine is not running");
  std::shared_ptr<Ticket> t = next_;  // shared: the commit thread runs it even if we stop waiting
  t->flush |= flush_always;
  t->refresh_space |= refresh_space;
  pending_ = true;
  cv_.notify_all();
  if (max_wait_ns == 0) {
    done_cv_.wait(l, [&] { return t->done; });
  } else if (!done_cv_.wait_for(l, std::chrono::nanoseconds(max_wait_ns),
                                [&] { return t->done; })) {
    const Progress p = progress();
    return Status::Busy(std::string("the commit has not finished yet") +
                        (p.step != nullptr ? std::string(" (") + p.step + ")" : std::string()));
  }
  return t->status;
}

Committer::Progress Committer::progress() const {
  Progress p;
  p.step = step_.load();
  if (p.step == nullptr) return p;
  const uint64_t since = step_since_ns_.load(), now = ctx_.clock->NowNanos();
  p.for_ns = now > since ? now - since : 0;
  return p;
}

void Committer::SetStep(const char* step) {
  if (step != nullptr) step_since_ns_.store(ctx_.clock->NowNanos());
  step_.store(step);
}

void Committer::RequestAsync() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!running_) return;
    pending_ = true;
  }
  cv_.notify_all();
}

metadata::SpaceInfo Committer::space() const {
  std::lock_guard<std::mutex> l(space_mu_);
  return space_;
}

void Committer::Loop() {
  // A clone that was already complete when opened is done, but its
  // completion happened in an earlier run: on_complete is for the commit
  // that completes it, so it is not called again on every mount.
  if (BecameComplete()) {
    CLONEFS_LOG_INFO("the clone was already complete when opened (%llu regions); the destination "
                     "alone is the image%s",
                     static_cast<unsigned long long>(ctx_.md->nr_regions()),
                     ctx_.on_complete ? "; the on-complete command ran when it completed" : "");
  }
  Clock* clock = ctx_.clock;
  const uint64_t interval = ctx_.interval_ms * 1'000'000;
  uint64_t deadline = clock->NowNanos() + interval;
  std::unique_lock<std::mutex> l(mu_);
  while (true) {
    if (pending_) {
      std::shared_ptr<Ticket> t = std::move(next_);
      next_ = std::make_shared<Ticket>();
      pending_ = false;
      l.unlock();
      Status s = RunCommit(t->flush);
      AfterCommit(t->refresh_space);
      l.lock();
      t->status = s;
      t->done = true;
      done_cv_.notify_all();
      deadline = clock->NowNanos() + interval;
      continue;
    }
    if (stop_) {
      running_ = false;
      return;
    }
    uint64_t now = clock->NowNanos();
    if (interval != 0 && now >= deadline) {
      l.unlock();
      if (ctx_.md->ChangedThisTransaction() && mode() == EngineMode::kReadWrite) {
        (void)RunCommit(false);  // a failure is handled (mode change) and logged inside
        AfterCommit(false);
      }
      l.lock();
      deadline = clock->NowNanos() + interval;
      continue;
    }
    uint64_t wait = interval != 0 ? std::min(deadline - now, kMaxWaitNanos) : kMaxWaitNanos;
    cv_.wait_for(l, std::chrono::nanoseconds(wait));
  }
}

Status Committer::RunCommit(bool flush_always) {
  switch (mode()) {
    case EngineMode::kFail:
      return Status::Failed("clone is in fail mode (metadata rollback failed); nothing is committed");
    case EngineMode::kReadOnly:
      return Status::ReadOnly("clone is read-only since " + failure_ +
                              "; nothing can be made durable until it is mounted again");
    case EngineMode::kReadWrite:
      break;
  }
  metadata::Metadata* md = ctx_.md;
  if (!flush_always && !md->ChangedThisTransaction()) return Status::OK();

  Result<uint64_t> frozen = md->Freeze();
  if (!frozen.ok()) return HandleFailure(frozen.status(), "freezing the transaction");
  if (TestKillPoint("commit.after_freeze")) return Status::Aborted("kill point commit.after_freeze");

  SetStep("flushing the destination");
  Status s = ctx_.dest->Flush();
  SetStep(nullptr);
  if (!s.ok()) return HandleFailure(s, "flushing the destination");
  if (TestKillPoint("commit.after_dest_flush")) {
    return Status::Aborted("kill point commit.after_dest_flush");
  }

  if (*frozen > 0) {
    SetStep("writing the metadata");
    s = md->PersistFrozen();
    SetStep(nullptr);
    if (!s.ok()) return HandleFailure(s, "writing the metadata");
    commits_.fetch_add(1);
  }
  if (TestKillPoint("commit.after_metadata_write")) {
    return Status::Aborted("kill point commit.after_metadata_write");
  }
  return Status::OK();
}

Status Committer::HandleFailure(const Status& s, const char* step) {
  failures_.fetch_add(1);
  failure_ = std::string("a commit failed while ") + step + " (" + s.ToString() + ")";
  if (ctx_.health != nullptr) {
    if (std::string_view(step) == "flushing the destination") {
      ctx_.health->DestFailed("dest flush in a commit", 0, s);
    } else {
      ctx_.health->MetadataFailed(std::string("commit failed while ") + step, s);
    }
  }
  if (s.IsNoSpace()) {
    failure_ += std::string_view(step) == "flushing the destination"
                    ? ": the destination's file system is full; free space on it, then mount "
                      "again"
                    : ": the metadata file system is full; free space on it (or move the "
                      "metadata directory to another file system and name it with --metadata), "
                      "then mount again";
  }
  CLONEFS_LOG_ERROR("commit failed while %s: %s; rolling back to the last commit and "
                    "switching to read-only mode",
                    step, s.ToString().c_str());
  ctx_.hydrator->CloseMarksAndSetReadOnly();
  SetStep("rolling back to the last commit");
  Status a = ctx_.md->Abort();
  SetStep(nullptr);
  if (a.ok()) {
    SetMode(EngineMode::kReadOnly);
  } else {
    CLONEFS_LOG_ERROR("metadata rollback failed: %s; switching to fail mode (every I/O fails)",
                      a.ToString().c_str());
    SetMode(EngineMode::kFail);
  }
  return Status::IoError(failure_, EIO);
}

void Committer::SetMode(EngineMode m) {
  mode_.store(m);
  if (ctx_.on_mode_change) ctx_.on_mode_change(m);
}

bool Committer::BecameComplete() {
  metadata::Metadata* md = ctx_.md;
  if (done_.load() || md->NrCommittedHydratedRegions() != md->nr_regions()) return false;
  done_.store(true);
  return true;
}

void Committer::AfterCommit(bool refresh_space) {
  uint64_t now = ctx_.clock->NowNanos();
  if (refresh_space || now - space_read_ns_ >= kSpaceRefreshNanos) RefreshSpace();
  if (BecameComplete()) {
    CLONEFS_LOG_INFO("hydration complete: all %llu regions are hydrated and committed; the "
                     "destination alone is the image",
                     static_cast<unsigned long long>(ctx_.md->nr_regions()));
    if (ctx_.on_complete) ctx_.on_complete();
  }
}

void Committer::RefreshSpace() {
  space_read_ns_ = ctx_.clock->NowNanos();
  Result<metadata::SpaceInfo> s = ctx_.md->GetSpace();
  if (!s.ok()) {
    CLONEFS_LOG_DEBUG("metadata space: %s", s.status().ToString().c_str());
    return;
  }
  std::lock_guard<std::mutex> l(space_mu_);
  space_ = *s;
}

}  // namespace clonefs
