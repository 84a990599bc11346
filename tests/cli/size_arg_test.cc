#include "size_arg.h"

#include <gtest/gtest.h>

namespace clonefs::cli {
namespace {

TEST(ParseCount, BoundsAndDigitsOnly) {
  EXPECT_EQ(ParseCount("0", 10), 0u);
  EXPECT_EQ(ParseCount("10", 10), 10u);
  EXPECT_FALSE(ParseCount("11", 10).has_value());
  EXPECT_FALSE(ParseCount("4294967296", UINT32_MAX).has_value());
  EXPECT_EQ(ParseCount("4294967295", UINT32_MAX), UINT32_MAX);
  EXPECT_FALSE(ParseCount("8k", 100).has_value());
  EXPECT_FALSE(ParseCount("", 100).has_value());
  // Found by tests/fuzz/size_arg_count_fuzz's property: with a bound below 9,
  // max - digit wrapped around and any single digit was accepted.
  EXPECT_FALSE(ParseCount("4", 0).has_value());
  EXPECT_EQ(ParseCount("0", 0), 0u);
  EXPECT_FALSE(ParseCount("9", 8).has_value());
  // Also found by it: leading zeros are a number too, however many.
  EXPECT_EQ(ParseCount("000000000000000000000042", 100), 42u);
  EXPECT_FALSE(ParseCount("000000000000000000000101", 100).has_value());
}

TEST(ParseSeconds, SecondsDecimalsAndMilliseconds) {
  EXPECT_EQ(ParseSeconds("30"), 30000u);
  EXPECT_EQ(ParseSeconds("30s"), 30000u);
  EXPECT_EQ(ParseSeconds("2.5"), 2500u);
  EXPECT_EQ(ParseSeconds("2.5S"), 2500u);
  EXPECT_EQ(ParseSeconds("0.125s"), 125u);
  EXPECT_EQ(ParseSeconds("500ms"), 500u);
  EXPECT_EQ(ParseSeconds("86400"), 86400000u);
  EXPECT_EQ(ParseSeconds("86401"), std::nullopt);
  EXPECT_EQ(ParseSeconds("1.2345"), std::nullopt);
  EXPECT_EQ(ParseSeconds("1."), std::nullopt);
  EXPECT_EQ(ParseSeconds(""), std::nullopt);
  EXPECT_EQ(ParseSeconds("-1"), std::nullopt);
  EXPECT_EQ(ParseSeconds("5m"), std::nullopt);
}

}  // namespace
}  // namespace clonefs::cli
