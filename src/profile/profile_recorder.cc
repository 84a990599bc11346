#include "profile/profile_recorder.h"

#include <algorithm>

namespace clonefs::profile {

ProfileRecorder::ProfileRecorder(const RegionGeometry& geo, const SourceKey& source)
    : geo_(geo), source_(source) {
  const uint64_t words = (geo_.nr_regions() + 63) / 64;
  bits_ = std::make_unique<std::atomic<uint64_t>[]>(words);
  for (uint64_t i = 0; i < words; ++i) bits_[i].store(0, std::memory_order_relaxed);
}

void ProfileRecorder::Touch(uint64_t first, uint64_t count) {
  if (first >= geo_.nr_regions() || count == 0) return;
  const uint64_t end = std::min(first + count, geo_.nr_regions());
  uint64_t r = first;
  while (r < end && Test(r)) ++r;
  if (r == end) return;  // the fast path: all touched before
  std::lock_guard<std::mutex> l(mu_);
  for (; r < end; ++r) {
    const uint64_t bit = uint64_t{1} << (r & 63);
    if (bits_[r >> 6].load(std::memory_order_relaxed) & bit) continue;
    bits_[r >> 6].fetch_or(bit, std::memory_order_relaxed);
    regions_.fetch_add(1, std::memory_order_relaxed);
    if (!runs_.empty() && runs_.back().end() == r) {
      ++runs_.back().count;
    } else {
      runs_.push_back(RegionRun{r, 1});
    }
  }
}

Profile ProfileRecorder::Snapshot() const {
  Profile p;
  p.source = source_;
  p.region_size = geo_.region_size();
  std::lock_guard<std::mutex> l(mu_);
  p.runs = runs_;
  return p;
}

}  // namespace clonefs::profile
