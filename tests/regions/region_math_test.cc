// Region arithmetic against a naive per-byte reference, plus the edges where
// dm-clone had overflow bugs: 2^31+ and 2^32+ regions, images near 2^64,
// offset+length wrapping, the last partial region.
#include "regions/region_math.h"

#include <cstdint>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace clonefs {
namespace {

uint64_t TestSeed() {
  if (const char* s = std::getenv("CLONEFS_TEST_SEED")) return std::strtoull(s, nullptr, 0);
  return std::random_device{}();
}

std::vector<RegionPiece> Collect(const RegionGeometry& g, uint64_t off, uint64_t len) {
  std::vector<RegionPiece> v;
  for (RegionPiece p : g.Split(off, len)) v.push_back(p);
  return v;
}

// Reference: walk byte by byte, start a new piece whenever the region changes.
std::vector<RegionPiece> NaiveSplit(uint64_t image, uint64_t rs, uint64_t off, uint64_t len) {
  std::vector<RegionPiece> v;
  for (uint64_t b = off; b < off + len; b++) {
    uint64_t r = b / rs;
    if (v.empty() || v.back().region != r) {
      RegionPiece p;
      p.region = r;
      p.offset = b;
      p.offset_in_region = b - r * rs;
      v.push_back(p);
    }
    v.back().length++;
  }
  for (RegionPiece& p : v) {
    uint64_t rlen = std::min(rs, image - p.region * rs);
    p.covers_region = p.offset_in_region == 0 && p.length == rlen;
  }
  return v;
}

void ExpectSameSplit(const RegionGeometry& g, uint64_t off, uint64_t len) {
  SCOPED_TRACE("image=" + std::to_string(g.image_size()) +
               " rs=" + std::to_string(g.region_size()) + " off=" + std::to_string(off) +
               " len=" + std::to_string(len));
  ASSERT_TRUE(g.Contains(off, len));
  std::vector<RegionPiece> got = Collect(g, off, len);
  std::vector<RegionPiece> want = NaiveSplit(g.image_size(), g.region_size(), off, len);
  ASSERT_EQ(got.size(), want.size());
  ASSERT_EQ(g.Split(off, len).size(), want.size());
  for (size_t i = 0; i < got.size(); i++) {
    SCOPED_TRACE("piece " + std::to_string(i));
    EXPECT_EQ(got[i].region, want[i].region);
    EXPECT_EQ(got[i].offset, want[i].offset);
    EXPECT_EQ(got[i].length, want[i].length);
    EXPECT_EQ(got[i].offset_in_region, want[i].offset_in_region);
    EXPECT_EQ(got[i].covers_region, want[i].covers_region);
    EXPECT_EQ(g.CanSkipCopy(got[i]), want[i].covers_region && want[i].length == g.region_size());
  }
}

// Offsets worth trying in a small image: region edges +-1, and the ends.
std::vector<uint64_t> InterestingOffsets(uint64_t image, uint64_t rs) {
  std::set<uint64_t> s = {0, image - 1};
  if (image > 1) s.insert(1);
  for (uint64_t b = 0; b <= image; b += rs) {
    for (int64_t d = -1; d <= 1; d++) {
      int64_t o = static_cast<int64_t>(b) + d;
      if (o >= 0 && static_cast<uint64_t>(o) < image) s.insert(static_cast<uint64_t>(o));
    }
  }
  return {s.begin(), s.end()};
}

TEST(RegionMathTest, MakeValidatesRegionSizeAndImageSize) {
  for (uint64_t bad : {0ull, 1ull, 512ull, 2048ull, 3000ull, 4095ull, 4097ull, 12288ull,
                       (1ull << 30) + 4096, 1ull << 31, 1ull << 63}) {
    Result<RegionGeometry> r = RegionGeometry::Make(1 << 20, bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_TRUE(r.status().IsInvalidArgument());
      EXPECT_NE(r.status().message().find(std::to_string(bad)), std::string::npos);
    }
  }
  for (uint32_t shift = 12; shift <= 30; shift++) {
    Result<RegionGeometry> r = RegionGeometry::Make(12345, 1ull << shift);
    ASSERT_TRUE(r.ok()) << shift;
    EXPECT_EQ(r->region_shift(), shift);
    EXPECT_EQ(r->nr_regions(), (12345 + (1ull << shift) - 1) >> shift);
  }
  Result<RegionGeometry> zero = RegionGeometry::Make(0, 4096);
  ASSERT_FALSE(zero.ok());
  EXPECT_TRUE(zero.status().IsInvalidArgument());
}

TEST(RegionMathTest, RegionCountsAndLengths) {
  struct Case {
    uint64_t image, rs, nr, last_len;
  } cases[] = {
      {1, 4096, 1, 1},
      {4095, 4096, 1, 4095},
      {4096, 4096, 1, 4096},
      {4097, 4096, 2, 1},
      {8192, 4096, 2, 4096},
      {10 * 4096 + 7, 4096, 11, 7},
      {(1ull << 30) * 3 - 1, 1ull << 30, 3, (1ull << 30) - 1},
      {UINT64_MAX, 1ull << 30, 1ull << 34, (1ull << 30) - 1},
      {UINT64_MAX, 4096, 1ull << 52, 4095},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.image) + "/" + std::to_string(c.rs));
    RegionGeometry g = *RegionGeometry::Make(c.image, c.rs);
    EXPECT_EQ(g.nr_regions(), c.nr);
    EXPECT_EQ(g.RegionLength(c.nr - 1), c.last_len);
    EXPECT_EQ(g.IsPartialRegion(c.nr - 1), c.last_len != c.rs);
    EXPECT_EQ(g.RegionStart(c.nr - 1) + g.RegionLength(c.nr - 1), c.image);
    EXPECT_EQ(g.RegionOf(c.image - 1), c.nr - 1);
    if (c.nr > 1) {
      EXPECT_EQ(g.RegionLength(c.nr - 2), c.rs);
      EXPECT_FALSE(g.IsPartialRegion(0));
    }
  }
}

TEST(RegionMathTest, SplitMatchesNaiveReferenceSystematically) {
  // The constructor accepts 512-byte regions, which keeps these exhaustive.
  for (uint64_t rs : {uint64_t{512}, uint64_t{1024}}) {
    for (uint64_t image : std::vector<uint64_t>{1, 100, rs - 1, rs, rs + 1, 2 * rs, 3 * rs + 17,
                                                5 * rs - 1, 5 * rs}) {
      RegionGeometry g(image, rs);
      std::vector<uint64_t> offs = InterestingOffsets(image, rs);
      for (uint64_t off : offs) {
        for (uint64_t end : offs) {
          if (end < off) continue;
          ExpectSameSplit(g, off, end - off + 1);  // ends on an interesting byte
        }
      }
    }
  }
}

TEST(RegionMathTest, SplitMatchesNaiveReferenceAllPairsTinyImage) {
  RegionGeometry g(3 * 512 + 100, 512);
  for (uint64_t off = 0; off < g.image_size(); off += 7) {
    for (uint64_t len = 1; off + len <= g.image_size(); len += 13) ExpectSameSplit(g, off, len);
    ExpectSameSplit(g, off, g.image_size() - off);
  }
}

TEST(RegionMathTest, SplitMatchesNaiveReferenceRandomly) {
  uint64_t seed = TestSeed();
  SCOPED_TRACE("seed=" + std::to_string(seed) + " (rerun with CLONEFS_TEST_SEED)");
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 3000; i++) {
    uint64_t rs = 512ull << (rng() % 4);
    uint64_t image = 1 + rng() % (12 * rs);
    RegionGeometry g(image, rs);
    uint64_t off = rng() % image;
    uint64_t len = 1 + rng() % (image - off);
    ExpectSameSplit(g, off, len);
    if (HasFatalFailure()) return;
  }
}

TEST(RegionMathTest, SplitAtOffsetZeroAndWholeImage) {
  RegionGeometry g = *RegionGeometry::Make(10 * 4096 + 5, 4096);
  std::vector<RegionPiece> v = Collect(g, 0, g.image_size());
  ASSERT_EQ(v.size(), 11u);
  for (uint64_t r = 0; r < 10; r++) {
    EXPECT_EQ(v[r].region, r);
    EXPECT_EQ(v[r].offset, r * 4096);
    EXPECT_EQ(v[r].length, 4096u);
    EXPECT_TRUE(v[r].covers_region);
    EXPECT_TRUE(g.CanSkipCopy(v[r]));
  }
  // The last region is covered completely but is partial: never skip the copy.
  EXPECT_EQ(v[10].length, 5u);
  EXPECT_TRUE(v[10].covers_region);
  EXPECT_FALSE(g.CanSkipCopy(v[10]));
  std::vector<RegionPiece> first = Collect(g, 0, 1);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_FALSE(first[0].covers_region);
  EXPECT_FALSE(g.CanSkipCopy(first[0]));
}

TEST(RegionMathTest, CanSkipCopyWhenImageIsRegionMultiple) {
  RegionGeometry g = *RegionGeometry::Make(4 * 65536, 65536);
  std::vector<RegionPiece> v = Collect(g, 3 * 65536, 65536);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_TRUE(g.CanSkipCopy(v[0]));
  v = Collect(g, 3 * 65536 + 1, 65535);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_FALSE(g.CanSkipCopy(v[0]));
}

TEST(RegionMathTest, RequestSpanningManyRegions) {
  RegionGeometry g = *RegionGeometry::Make(1ull << 32, 4096);
  uint64_t off = 4096 * 1000 + 123, len = 4096 * 5000;
  std::vector<RegionPiece> v = Collect(g, off, len);
  ASSERT_EQ(v.size(), 5001u);
  EXPECT_EQ(g.Split(off, len).size(), 5001u);
  uint64_t pos = off;
  for (size_t i = 0; i < v.size(); i++) {
    EXPECT_EQ(v[i].offset, pos);
    EXPECT_EQ(v[i].region, 1000 + i);
    pos += v[i].length;
  }
  EXPECT_EQ(pos, off + len);
  EXPECT_EQ(v.front().length, 4096u - 123);
  EXPECT_EQ(v.back().length, 123u);
  // Whole 4 GiB image: 2^20 pieces, counted without iterating.
  EXPECT_EQ(g.Split(0, g.image_size()).size(), 1ull << 20);
}

TEST(RegionMathTest, MoreThan2To31And2To32Regions) {
  // 2^44 bytes in 4 KiB regions: exactly 2^32 regions.
  RegionGeometry g = *RegionGeometry::Make(1ull << 44, 4096);
  EXPECT_EQ(g.nr_regions(), 1ull << 32);
  EXPECT_EQ(g.RegionOf((1ull << 44) - 1), (1ull << 32) - 1);
  uint64_t r31 = 1ull << 31;
  EXPECT_EQ(g.RegionStart(r31), 1ull << 43);
  std::vector<RegionPiece> v = Collect(g, g.RegionStart(r31) - 100, 4096 + 200);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0].region, r31 - 1);
  EXPECT_EQ(v[0].offset_in_region, 4096u - 100);
  EXPECT_EQ(v[0].length, 100u);
  EXPECT_EQ(v[1].region, r31);
  EXPECT_EQ(v[1].offset, 1ull << 43);
  EXPECT_TRUE(v[1].covers_region);
  EXPECT_EQ(v[2].region, r31 + 1);
  EXPECT_EQ(v[2].length, 100u);
  EXPECT_EQ(g.Split(0, g.image_size()).size(), 1ull << 32);
  EXPECT_EQ(g.RunLength(r31, r31), 1ull << 43);
  EXPECT_EQ(g.RunLength(0, g.nr_regions()), 1ull << 44);

  // 2^45 + 4097 bytes: regions beyond 2^32 and a 1-byte last region.
  RegionGeometry h = *RegionGeometry::Make((1ull << 45) + 4097, 4096);
  EXPECT_EQ(h.nr_regions(), (1ull << 33) + 2);
  uint64_t r = (1ull << 32) + 5;
  EXPECT_EQ(h.RegionStart(r), ((1ull << 32) + 5) * 4096);
  EXPECT_EQ(h.RegionOf(h.RegionStart(r) + 4095), r);
  EXPECT_EQ(h.RegionOf(h.RegionStart(r) + 4096), r + 1);
  v = Collect(h, h.RegionStart(r) + 1, 3 * 4096);
  ASSERT_EQ(v.size(), 4u);
  EXPECT_EQ(v[0].region, r);
  EXPECT_EQ(v[3].region, r + 3);
  EXPECT_EQ(v[3].length, 1u);
  uint64_t last = h.nr_regions() - 1;
  EXPECT_EQ(h.RegionLength(last), 1u);
  EXPECT_TRUE(h.IsPartialRegion(last));
  v = Collect(h, h.image_size() - 10, 10);
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].region, last - 1);
  EXPECT_EQ(v[0].length, 9u);
  EXPECT_EQ(v[1].region, last);
  EXPECT_TRUE(v[1].covers_region);
  EXPECT_FALSE(h.CanSkipCopy(v[1]));
  EXPECT_EQ(h.RunLength(last - 1, 2), 4097u);
}

TEST(RegionMathTest, ImageEndingAtTopOfAddressSpace) {
  RegionGeometry g = *RegionGeometry::Make(UINT64_MAX, 1ull << 30);
  uint64_t last = g.nr_regions() - 1;
  EXPECT_EQ(g.RunLength(last, 1), (1ull << 30) - 1);
  EXPECT_EQ(g.RunLength(0, g.nr_regions()), UINT64_MAX);
  std::vector<RegionPiece> v = Collect(g, UINT64_MAX - 5, 5);
  ASSERT_EQ(v.size(), 1u);
  EXPECT_EQ(v[0].region, last);
  EXPECT_EQ(v[0].offset + v[0].length, UINT64_MAX);
  v = Collect(g, g.RegionStart(last) - 1, (1ull << 30));
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[1].length, (1ull << 30) - 1);
  EXPECT_TRUE(v[1].covers_region);
  EXPECT_FALSE(g.CanSkipCopy(v[1]));
  EXPECT_EQ(g.Split(0, UINT64_MAX).size(), 1ull << 34);
}

TEST(RegionMathTest, ContainsRejectsEmptyOutOfRangeAndWrapping) {
  RegionGeometry g = *RegionGeometry::Make(1 << 20, 4096);
  EXPECT_TRUE(g.Contains(0, 1 << 20));
  EXPECT_TRUE(g.Contains((1 << 20) - 1, 1));
  EXPECT_FALSE(g.Contains(0, 0));
  EXPECT_FALSE(g.Contains(5, 0));
  EXPECT_FALSE(g.Contains(1 << 20, 1));
  EXPECT_FALSE(g.Contains((1 << 20) - 1, 2));
  EXPECT_FALSE(g.Contains(0, (1 << 20) + 1));
  // offset + length wraps around 2^64 to a small number inside the image.
  EXPECT_FALSE(g.Contains(4096, UINT64_MAX - 4095));
  EXPECT_FALSE(g.Contains(1, UINT64_MAX));
  EXPECT_FALSE(g.Contains(UINT64_MAX, 1));
  EXPECT_FALSE(g.Contains(UINT64_MAX, UINT64_MAX));

  RegionGeometry top = *RegionGeometry::Make(UINT64_MAX, 4096);
  EXPECT_TRUE(top.Contains(0, UINT64_MAX));
  EXPECT_TRUE(top.Contains(UINT64_MAX - 1, 1));
  EXPECT_FALSE(top.Contains(UINT64_MAX - 1, 2));
  EXPECT_FALSE(top.Contains(1, UINT64_MAX));
  EXPECT_FALSE(top.Contains(UINT64_MAX, 1));
}

TEST(RegionMathTest, RunLengthMatchesSumOfRegionLengths) {
  for (uint64_t image : {4096ull * 7, 4096ull * 7 + 1, 4096ull * 7 - 1, 100ull}) {
    RegionGeometry g = *RegionGeometry::Make(image, 4096);
    for (uint64_t first = 0; first < g.nr_regions(); first++) {
      uint64_t sum = 0;
      for (uint64_t count = 1; first + count <= g.nr_regions(); count++) {
        sum += g.RegionLength(first + count - 1);
        EXPECT_EQ(g.RunLength(first, count), sum) << image << " " << first << " " << count;
      }
    }
  }
}

}  // namespace
}  // namespace clonefs
