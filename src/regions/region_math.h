// Region arithmetic: the one place where byte offsets become region numbers.
//
// A pure value type: no locks, no I/O. All arithmetic is 64-bit and checked
// (dm-clone had two overflow bugs in exactly this code). Ranges are half-open.
//
// THREAD SAFETY: immutable after construction; share freely.
#pragma once

#include <cstdint>
#include <optional>

#include "base/result.h"

namespace clonefs {

// A byte range [offset, offset + length) inside one region.
struct RegionPiece {
  uint64_t region = 0;        // region number
  uint64_t offset = 0;        // absolute byte offset in the image
  uint64_t length = 0;        // bytes, > 0
  uint64_t offset_in_region = 0;
  // True if the piece covers its region entirely (the region's full length;
  // the last, partial region counts as covered only by definition of
  // RegionLength, but see CanSkipCopy).
  bool covers_region = false;
};

class RegionGeometry {
 public:
  // REQUIRES: region_size is a power of two >= 512; image_size > 0.
  // Use Make() for unchecked input.
  RegionGeometry(uint64_t image_size, uint64_t region_size);

  // InvalidArgument if region_size is not a power of two in [4 KiB, 1 GiB] or
  // image_size is 0.
  static Result<RegionGeometry> Make(uint64_t image_size, uint64_t region_size);

  uint64_t image_size() const { return image_size_; }
  uint64_t region_size() const { return region_size_; }
  uint32_t region_shift() const { return shift_; }
  uint64_t nr_regions() const { return nr_regions_; }

  // Region holding byte `offset`. REQUIRES: offset < image_size.
  uint64_t RegionOf(uint64_t offset) const { return offset >> shift_; }
  // First byte of region r. REQUIRES: r < nr_regions.
  uint64_t RegionStart(uint64_t r) const { return r << shift_; }
  // Length of region r: region_size, except for a partial last region.
  uint64_t RegionLength(uint64_t r) const;
  bool IsPartialRegion(uint64_t r) const { return RegionLength(r) != region_size_; }

  // Byte range of regions [first, first+count), clipped to the image.
  // REQUIRES: count > 0 and first+count <= nr_regions.
  uint64_t RunLength(uint64_t first, uint64_t count) const;

  // True if a request [offset, offset+length) is inside the image, length > 0,
  // and offset+length does not overflow.
  bool Contains(uint64_t offset, uint64_t length) const;

  // True if a write of `piece` may skip the copy from the source: it covers a
  // whole region of full region_size. The last partial region never may
  // (SPEC §3), because dest might be longer than the image.
  bool CanSkipCopy(const RegionPiece& piece) const {
    return piece.covers_region && !IsPartialRegion(piece.region);
  }

  // Splits [offset, offset+length) at region boundaries. Iterate with:
  //   for (RegionPiece p : geo.Split(off, len)) ...
  // REQUIRES: Contains(offset, length).
  class Splitter;
  Splitter Split(uint64_t offset, uint64_t length) const;

 private:
  uint64_t image_size_;
  uint64_t region_size_;
  uint32_t shift_;
  uint64_t nr_regions_;
};

class RegionGeometry::Splitter {
 public:
  class Iterator {
   public:
    RegionPiece operator*() const;
    Iterator& operator++();
    bool operator!=(const Iterator& o) const { return pos_ != o.pos_; }

   private:
    friend class Splitter;
    Iterator(const RegionGeometry* g, uint64_t pos, uint64_t end) : g_(g), pos_(pos), end_(end) {}
    const RegionGeometry* g_;
    uint64_t pos_;
    uint64_t end_;
  };
  Iterator begin() const { return Iterator(g_, offset_, end_); }
  Iterator end() const { return Iterator(g_, end_, end_); }
  // Number of pieces.
  uint64_t size() const;

 private:
  friend class RegionGeometry;
  Splitter(const RegionGeometry* g, uint64_t offset, uint64_t end) : g_(g), offset_(offset), end_(end) {}
  const RegionGeometry* g_;
  uint64_t offset_;
  uint64_t end_;
};

}  // namespace clonefs
