// SEEK_DATA / SEEK_HOLE over the image as the user sees it.
#include "engine/engine_impl.h"

namespace clonefs {

// Walks runs of equal hydration state from `off`; each run takes its answer
// from the device that serves its reads.
Result<uint64_t> EngineImpl::Seek(uint64_t off, bool data) {
  if (committer_.mode() == EngineMode::kFail) {
    return Status::Failed("clone is in fail mode after a metadata rollback failure");
  }
  const uint64_t size = geo_.image_size();
  const uint64_t nr = geo_.nr_regions();
  uint64_t pos = off;
  while (pos < size) {
    const uint64_t r = geo_.RegionOf(pos);
    const bool hydrated = md_->IsRegionHydrated(r);
    const uint64_t next = hydrated ? md_->FindNextUnhydratedRegion(r) : md_->FindNextHydratedRegion(r);
    const uint64_t run_end = next >= nr ? size : geo_.RegionStart(next);
    if (!hydrated && source_watch_.changed()) return source_watch_.Refusal();
    Device* dev = hydrated ? dest_.get() : source_.get();
    Result<uint64_t> answer = data ? dev->NextData(pos) : dev->NextHole(pos);
    if (!answer.ok()) {
      return hydrated ? answer.status() : source_watch_.AfterReadError(answer.status());
    }
    uint64_t found = *answer;
    if (found < pos) found = pos;  // defensive: never move backwards
    if (found < run_end) return found;
    pos = run_end;
  }
  return size;
}

Result<uint64_t> EngineImpl::SeekData(uint64_t off) { return Seek(off, /*data=*/true); }
Result<uint64_t> EngineImpl::SeekHole(uint64_t off) { return Seek(off, /*data=*/false); }

}  // namespace clonefs
