// SEEK_DATA / SEEK_HOLE over the image as the user sees it.
#include "engine/engine_impl.h"

namespace clonefs {

// Walks runs of equal hydration state from `off`; each run takes its answer
// from the device that serves its reads. Regions may be hydrated while it
// walks (no lock is held): each step moves forward, so the answer is never
// below `off`, and a region read as unhydrated answers from the source, whose
// data it still holds.
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
    // The run is region r (in the state just read) and the regions after it
    // in the same state. The search starts past r: r itself may be hydrated
    // between the two queries, and a run ending at r's start would move pos
    // backwards, below the offset asked for.
    const uint64_t next = r + 1 >= nr                 ? nr
                          : hydrated                  ? md_->FindNextUnhydratedRegion(r + 1)
                                                      : md_->FindNextHydratedRegion(r + 1);
    const uint64_t run_end = next >= nr ? size : geo_.RegionStart(next);
    if (!hydrated && source_watch_.changed()) return source_watch_.Refusal();
    Device* dev = hydrated ? dest_.get() : source_.get();
    Result<uint64_t> answer = data ? dev->NextData(pos) : dev->NextHole(pos);
    if (!answer.ok() && !hydrated && CompletedAndReleased()) {
      continue;  // completed (the source released) meanwhile: r is hydrated now
    }
    if (!answer.ok()) {
      return hydrated ? answer.status() : source_watch_.AfterReadError(answer.status());
    }
    uint64_t found = *answer;
    if (found < pos) found = pos;  // a device answer never moves backwards
    if (found < run_end) return found;
    pos = run_end;
  }
  return size;
}

Result<uint64_t> EngineImpl::SeekData(uint64_t off) { return Seek(off, /*data=*/true); }
Result<uint64_t> EngineImpl::SeekHole(uint64_t off) { return Seek(off, /*data=*/false); }

}  // namespace clonefs
