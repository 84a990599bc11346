// ProfileRecorder: records the order in which a workload first reads or
// writes the regions of an image (SPEC §10, access profiles), as the runs of
// a profile (profile.h).
//
// A bitmap of regions touched (one bit per region: 2 MiB for a 1 TiB image
// of 64 KiB regions) and the runs in the order first touched; a touch that
// continues the last run extends it, so a sequential workload makes one run.
// Touch() of regions all touched before costs relaxed atomic loads only.
//
// THREAD SAFETY: every method may be called from any thread. mu_ guards the
// run list and bit updates; bits are atomic words so the fast path reads
// them without it.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "profile/profile.h"
#include "regions/region_math.h"

namespace clonefs::profile {

class ProfileRecorder {
 public:
  ProfileRecorder(const RegionGeometry& geo, const SourceKey& source);

  // Records a read or write of regions [first, first+count) (clipped to the
  // image); regions already touched keep their earlier place.
  void Touch(uint64_t first, uint64_t count);
  // The profile so far.
  Profile Snapshot() const;
  // Regions touched so far.
  uint64_t regions() const { return regions_.load(std::memory_order_relaxed); }

 private:
  bool Test(uint64_t r) const {
    return (bits_[r >> 6].load(std::memory_order_relaxed) >> (r & 63)) & 1;
  }

  const RegionGeometry geo_;
  const SourceKey source_;
  std::unique_ptr<std::atomic<uint64_t>[]> bits_;
  std::atomic<uint64_t> regions_{0};
  mutable std::mutex mu_;
  std::vector<RegionRun> runs_;  // GUARDED_BY(mu_)
};

}  // namespace clonefs::profile
