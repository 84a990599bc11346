// ExtentCache: lookups, and overlapping answers keeping what was cached.
#include "sources/extent_cache.h"

#include <gtest/gtest.h>

#include <random>

namespace clonefs {
namespace {

TEST(ExtentCacheTest, FindsTheExtentContainingAnOffset) {
  ExtentCache c;
  EXPECT_FALSE(c.Find(0).has_value());
  c.Insert({{0, 4096, false}, {4096, 65536, true}, {65536, 65537, false}});
  EXPECT_EQ(c.Find(0)->end, 4096u);
  EXPECT_FALSE(c.Find(4095)->hole);
  EXPECT_TRUE(c.Find(4096)->hole);
  EXPECT_EQ(c.Find(65535)->start, 4096u);
  EXPECT_FALSE(c.Find(65536)->hole);
  EXPECT_FALSE(c.Find(65537).has_value());
}

TEST(ExtentCacheTest, OverlapsKeepCachedBytesAndFillGaps) {
  ExtentCache c;
  c.Insert({{100, 200, true}, {300, 400, true}});
  c.Insert({{0, 500, false}, {500, 500, true}});  // the empty one is ignored
  EXPECT_FALSE(c.Find(0)->hole);
  EXPECT_EQ(c.Find(0)->end, 100u);
  EXPECT_TRUE(c.Find(150)->hole);
  EXPECT_FALSE(c.Find(250)->hole);
  EXPECT_EQ(c.Find(250)->start, 200u);
  EXPECT_EQ(c.Find(250)->end, 300u);
  EXPECT_TRUE(c.Find(399)->hole);
  EXPECT_FALSE(c.Find(450)->hole);
  EXPECT_FALSE(c.Find(500).has_value());
  EXPECT_EQ(c.size(), 5u);
}

// Random inserts against a byte map: every cached byte keeps the first
// answer it got, and every answered byte is cached.
TEST(ExtentCacheTest, RandomInsertsMatchAByteModel) {
  std::mt19937_64 rng(12345);
  ExtentCache c;
  std::vector<int> model(2000, -1);  // -1 unknown, 0 data, 1 hole
  for (int round = 0; round < 300; ++round) {
    uint64_t a = rng() % 2000, b = rng() % 2000;
    if (a > b) std::swap(a, b);
    bool hole = rng() % 2;
    c.Insert({{a, b, hole}});
    for (uint64_t i = a; i < b; ++i) {
      if (model[i] < 0) model[i] = hole;
    }
  }
  for (uint64_t i = 0; i < model.size(); ++i) {
    auto e = c.Find(i);
    if (model[i] < 0) {
      EXPECT_FALSE(e.has_value()) << i;
    } else {
      ASSERT_TRUE(e.has_value()) << i;
      EXPECT_EQ(e->hole, model[i] == 1) << i;
      EXPECT_LE(e->start, i);
      EXPECT_GT(e->end, i);
    }
  }
}

}  // namespace
}  // namespace clonefs
