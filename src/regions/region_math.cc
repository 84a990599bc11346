#include "regions/region_math.h"

#include <bit>
#include <cassert>
#include <string>

namespace clonefs {

RegionGeometry::RegionGeometry(uint64_t image_size, uint64_t region_size)
    : image_size_(image_size),
      region_size_(region_size),
      shift_(static_cast<uint32_t>(std::countr_zero(region_size))),
      nr_regions_((image_size >> shift_) + ((image_size & (region_size - 1)) != 0)) {
  assert(std::has_single_bit(region_size) && region_size >= 512);
  assert(image_size > 0);
}

Result<RegionGeometry> RegionGeometry::Make(uint64_t image_size, uint64_t region_size) {
  if (!std::has_single_bit(region_size) || region_size < 4096 || region_size > (1ull << 30)) {
    return Status::InvalidArgument("region size " + std::to_string(region_size) +
                                   " must be a power of two from 4096 (4 KiB) to 1073741824 (1 GiB)");
  }
  if (image_size == 0) return Status::InvalidArgument("image size is 0");
  return RegionGeometry(image_size, region_size);
}

uint64_t RegionGeometry::RegionLength(uint64_t r) const {
  assert(r < nr_regions_);
  uint64_t start = RegionStart(r);
  uint64_t left = image_size_ - start;
  return left < region_size_ ? left : region_size_;
}

uint64_t RegionGeometry::RunLength(uint64_t first, uint64_t count) const {
  assert(count > 0 && first < nr_regions_ && count <= nr_regions_ - first);
  uint64_t last = first + count - 1;
  return RegionStart(last) + RegionLength(last) - RegionStart(first);
}

bool RegionGeometry::Contains(uint64_t offset, uint64_t length) const {
  return length > 0 && offset < image_size_ && length <= image_size_ - offset;
}

RegionGeometry::Splitter RegionGeometry::Split(uint64_t offset, uint64_t length) const {
  assert(Contains(offset, length));
  return Splitter(this, offset, offset + length);
}

RegionPiece RegionGeometry::Splitter::Iterator::operator*() const {
  RegionPiece p;
  p.region = g_->RegionOf(pos_);
  p.offset = pos_;
  uint64_t rstart = g_->RegionStart(p.region);
  uint64_t rlen = g_->RegionLength(p.region);
  p.offset_in_region = pos_ - rstart;
  uint64_t rend = rstart + rlen;
  uint64_t pend = end_ < rend ? end_ : rend;
  p.length = pend - pos_;
  p.covers_region = p.offset_in_region == 0 && p.length == rlen;
  return p;
}

RegionGeometry::Splitter::Iterator& RegionGeometry::Splitter::Iterator::operator++() {
  uint64_t r = g_->RegionOf(pos_);
  uint64_t rend = g_->RegionStart(r) + g_->RegionLength(r);
  pos_ = end_ < rend ? end_ : rend;
  return *this;
}

uint64_t RegionGeometry::Splitter::size() const {
  if (offset_ >= end_) return 0;
  return g_->RegionOf(end_ - 1) - g_->RegionOf(offset_) + 1;
}

}  // namespace clonefs
