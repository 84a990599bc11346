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
  // The source's data extents are walked (from the first unhydrated
  // region, skipping hydrated stretches), and the unhydrated bytes in each
  // are counted from the bitmap. The queries grow with the source's extents,
  // not with how finely hydration has cut up what is left: a copier that
  // zeroes holes ahead of its paced copies leaves thousands of short runs,
  // and asking the source once per run spent the budget in the first few
  // percent (the rest then counted as data).
  // Queries are also cut off after kRemainingQueryNanos: a file source on
  // a distant NFS server answers each lseek(SEEK_DATA) with a round trip,
  // and status, `wait` and the service manager's status line ask often.
  int budget = source_->RemoteHoleQueries() ? kRemainingQueriesRemote : kRemainingQueries;
  const uint64_t started = clock_->NowNanos();
  auto spent = [&] {
    return budget-- <= 0 || clock_->NowNanos() - started >= kRemainingQueryNanos;
  };
  Device* src = source_.get();
  const uint64_t size = geo_.image_size();
  uint64_t runs = kRemainingRuns;
  uint64_t data = 0;
  // What is not checked (from `from` on) counts as data.
  auto rest_is_data = [&](uint64_t from) {
    return std::min(unhydrated, data + UnhydratedBytesIn(from, size, &runs));
  };
  uint64_t off = geo_.RegionStart(md_->FindNextUnhydratedRegion(0));
  while (off < size) {
    if (spent()) return rest_is_data(off);
    Result<uint64_t> d = src->NextData(off);
    if (!d.ok()) return rest_is_data(off);
    const uint64_t ds = std::min(std::max(*d, off), size);
    if (ds >= size) break;
    if (spent()) return rest_is_data(ds);
    Result<uint64_t> h = src->NextHole(ds);
    if (!h.ok()) return rest_is_data(ds);
    const uint64_t de = std::min(std::max(*h, ds + 1), size);
    data += UnhydratedBytesIn(ds, de, &runs);
    if (de >= size) break;
    // On to the next unhydrated byte: hydrated stretches need no query.
    const uint64_t r = geo_.RegionOf(de);
    const uint64_t next = md_->IsRegionHydrated(r) ? md_->FindNextUnhydratedRegion(r) : r;
    off = next >= geo_.nr_regions() ? size : std::max(de, geo_.RegionStart(next));
  }
  return std::min(unhydrated, data);
}

uint64_t EngineImpl::UnhydratedBytesIn(uint64_t a, uint64_t b, uint64_t* runs) const {
  const uint64_t nr = geo_.nr_regions();
  const uint64_t size = geo_.image_size();
  b = std::min(b, size);
  uint64_t bytes = 0;
  uint64_t r = a < b ? md_->FindNextUnhydratedRegion(geo_.RegionOf(a)) : nr;
  while (r < nr && geo_.RegionStart(r) < b) {
    // Past the run budget, the rest of [a, b) counts as unhydrated.
    if (*runs == 0) return bytes + (b - std::max(a, geo_.RegionStart(r)));
    --*runs;
    const uint64_t stop = md_->FindNextHydratedRegion(r);
    const uint64_t lo = std::max(a, geo_.RegionStart(r));
    const uint64_t hi = std::min(b, stop >= nr ? size : geo_.RegionStart(stop));
    if (hi > lo) bytes += hi - lo;
    if (stop >= nr) break;
    r = md_->FindNextUnhydratedRegion(stop);
  }
  return bytes;
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
