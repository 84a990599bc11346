// Status figures that need a look at the source or the copier: what is left
// to copy, and why background copying is stopped.
#include <algorithm>
#include <string>

#include "base/clock.h"
#include "engine/engine_impl.h"

namespace clonefs {

uint64_t EngineImpl::RemainingCopyBytes(uint64_t unhydrated) const {
  if (unhydrated == 0 || md_->IsHydrationDone()) return 0;
  // Asking a source that is down would hold the status query for its timeout
  // (`clonefs status` waited 30 s on a file source whose NFS or FUSE server
  // had stopped, then said "ok"). A source that has left a request
  // unanswered for a second is not asked either: the copier looks at it
  // every second, so a stalled one shows here long before the timeout.
  const SourceHealth health = source_->Health();
  if (!health.up() || source_watch_.changed()) return unhydrated;
  const uint64_t now = WallNowNanos();
  if (health.oldest_request_unix_ns != 0 && now > health.oldest_request_unix_ns &&
      now - health.oldest_request_unix_ns >= kRemainingSilenceNanos) {
    return unhydrated;
  }
  int budget = source_->AsyncReads() ? kRemainingQueriesRemote : kRemainingQueries;
  Device* src = source_.get();
  const uint64_t nr = geo_.nr_regions();
  uint64_t holes = 0;
  uint64_t r = md_->FindNextUnhydratedRegion(0);
  while (r < nr && budget > 0) {
    const uint64_t stop = md_->FindNextHydratedRegion(r);
    const uint64_t a = geo_.RegionStart(r);
    const uint64_t b = stop >= nr ? geo_.image_size() : geo_.RegionStart(stop);
    for (uint64_t off = a; off < b && budget > 0;) {
      --budget;
      Result<uint64_t> d = src->NextData(off);
      if (!d.ok()) return unhydrated - holes;  // cannot say: the rest is data
      const uint64_t data = std::min(std::max(*d, off), b);
      holes += data - off;
      if (data >= b || budget-- <= 0) break;
      Result<uint64_t> h = src->NextHole(data);
      if (!h.ok()) return unhydrated - holes;
      off = std::max(std::min(*h, b), data + 1);
    }
    r = stop >= nr ? nr : md_->FindNextUnhydratedRegion(stop);
  }
  return unhydrated - std::min(holes, unhydrated);
}

std::string EngineImpl::CopyStopped(EngineMode mode) const {
  if (md_->IsHydrationDone()) return "";
  if (mode == EngineMode::kFail) return "fail mode";
  if (source_watch_.changed()) return "source changed";
  if (dest_watch_.changed()) return "dest changed";
  if (mode == EngineMode::kReadOnly) return "metadata read-only";
  if (health_.dest() == DestCondition::kFull) {
    const uint64_t in = dest_full_gate_.NextProbeIn(clock_->NowNanos());
    return "dest full (next try in " + std::to_string((in + 999'999'999) / 1'000'000'000) + " s)";
  }
  if (!copier_.enabled()) return "hydration disabled";
  if (copier_.threshold() == 0) return "hydration_threshold 0";
  const CopierPause pause = copier_.pause();
  if (pause.paused()) {
    std::string why = "waiting for the source (" + std::string(SourceBackoffStateName(pause.state));
    if (!pause.reason.empty()) why += ": " + pause.reason;
    return why + ")";
  }
  return "";
}

}  // namespace clonefs
