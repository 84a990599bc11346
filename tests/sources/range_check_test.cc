// RangeCheck: what a whole-file answer to a Range request looks like, and
// when the check cannot tell.
#include "sources/range_check.h"

#include <gtest/gtest.h>

namespace clonefs {
namespace {

TEST(RangeCheckTest, AnAnswerStartingWithTheHeadElsewhereIsSuspect) {
  std::vector<uint8_t> head = {0, 0, 0, 7, 1, 2, 3, 4};
  RangeCheck c(head);
  ASSERT_TRUE(c.armed());
  EXPECT_EQ(c.probe_offset(), 3u);
  EXPECT_EQ(c.probe_byte(), 7);
  EXPECT_TRUE(c.LooksLikeTheStart(4096, head.data(), head.size()));
  EXPECT_TRUE(c.LooksLikeTheStart(4096, head.data(), 5));  // a short piece, past the probe
  std::vector<uint8_t> longer = head;
  longer.resize(100, 9);  // longer than the head: only the head is compared
  EXPECT_TRUE(c.LooksLikeTheStart(1, longer.data(), longer.size()));
  EXPECT_FALSE(c.LooksLikeTheStart(0, head.data(), head.size())) << "offset 0 is the start";
  EXPECT_FALSE(c.LooksLikeTheStart(4096, head.data(), 3)) << "no byte past the zeros";
  std::vector<uint8_t> other = head;
  other[7] = 5;
  EXPECT_FALSE(c.LooksLikeTheStart(4096, other.data(), other.size()));
  EXPECT_TRUE(c.ProbeSaysIgnored(0));  // the file's first byte, not the probed one
  EXPECT_FALSE(c.ProbeSaysIgnored(7));
}

TEST(RangeCheckTest, OneByteValueOrLessDisarms) {
  EXPECT_FALSE(RangeCheck(std::vector<uint8_t>(65536, 0)).armed());
  EXPECT_FALSE(RangeCheck(std::vector<uint8_t>{}).armed());
  EXPECT_FALSE(RangeCheck(std::vector<uint8_t>{42}).armed());
  std::vector<uint8_t> zeros(4096, 0);
  EXPECT_FALSE(RangeCheck(zeros).LooksLikeTheStart(8192, zeros.data(), zeros.size()));
}

}  // namespace
}  // namespace clonefs
