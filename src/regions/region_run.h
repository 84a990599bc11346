// RegionRun: regions [first, first + count), a value type.
#pragma once

#include <cstdint>

namespace clonefs {

struct RegionRun {
  uint64_t first = 0;
  uint64_t count = 0;
  uint64_t end() const { return first + count; }
  bool operator==(const RegionRun&) const = default;
};

}  // namespace clonefs
