#include "sources/range_check.h"

#include <algorithm>
#include <cstring>

namespace clonefs {

RangeCheck::RangeCheck(std::vector<uint8_t> head) : head_(std::move(head)) {
  for (size_t i = 1; i < head_.size(); ++i) {
    if (head_[i] != head_[0]) {
      probe_offset_ = i;
      break;
    }
  }
}

bool RangeCheck::LooksLikeTheStart(uint64_t off, const uint8_t* data, size_t len) const {
  if (!armed() || off == 0 || len <= probe_offset_) return false;
  return std::memcmp(data, head_.data(), std::min(len, head_.size())) == 0;
}

}  // namespace clonefs
