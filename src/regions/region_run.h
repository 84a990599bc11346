// RegionRun: regions [first, first + count), a value type.
#pragma once

#include <cstdint>
#include <vector>

namespace clonefs {

struct RegionRun {
  uint64_t first = 0;
  uint64_t count = 0;
  uint64_t end() const { return first + count; }
  bool operator==(const RegionRun&) const = default;
};

// The regions in `runs`, counted once per run (overlaps are not merged).
inline uint64_t RegionCount(const std::vector<RegionRun>& runs) {
  uint64_t n = 0;
  for (const RegionRun& r : runs) n += r.count;
  return n;
}

}  // namespace clonefs
