// ValidateRegionSize, apart from Metadata::Open so that the pure codecs
// (superblock_codec.cc) link without RocksDB.
#include <algorithm>
#include <bit>
#include <string>

#include "metadata/metadata.h"

namespace clonefs::metadata {

Status ValidateRegionSize(uint64_t rs) {
  if (rs == 0 || (rs & (rs - 1)) != 0) {
    uint64_t hint = rs == 0 ? 65536 : std::bit_floor(rs);
    hint = std::clamp(hint, kMinRegionSize, kMaxRegionSize);
    return Status::InvalidArgument("region size " + std::to_string(rs) +
                                   " is not a power of two; use e.g. " + std::to_string(hint));
  }
  if (rs < kMinRegionSize) {
    return Status::InvalidArgument("region size " + std::to_string(rs) +
                                   " is below the minimum 4096 (4 KiB)");
  }
  if (rs > kMaxRegionSize) {
    return Status::InvalidArgument("region size " + std::to_string(rs) +
                                   " is above the maximum 1073741824 (1 GiB)");
  }
  return Status::OK();
}

}  // namespace clonefs::metadata
