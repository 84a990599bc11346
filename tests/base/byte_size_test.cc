#include "base/byte_size.h"

#include <gtest/gtest.h>

#include <string>

namespace clonefs {
namespace {

TEST(ParseSize, PlainAndBinaryUnits) {
  struct Case {
    const char* in;
    uint64_t want;
  } cases[] = {
      {"0", 0},
      {"4096", 4096},
      {"512b", 512},
      {"512B", 512},
      {"64K", 65536},
      {"64k", 65536},
      {"64KB", 65536},
      {"64KiB", 65536},
      {"64kib", 65536},
      {"1M", 1u << 20},
      {"5MB", 5u << 20},
      {"5MiB", 5u << 20},
      {"2G", 2ull << 30},
      {"2gb", 2ull << 30},
      {"1T", 1ull << 40},
      {"3P", 3ull << 50},
      {"007", 7},
      {"16777215T", 16777215ull << 40},
      {"18446744073709551615", UINT64_MAX},
  };
  for (const Case& c : cases) {
    Result<uint64_t> r = ParseSize(c.in);
    ASSERT_TRUE(r.ok()) << c.in << ": " << r.status().ToString();
    EXPECT_EQ(*r, c.want) << c.in;
  }
}

TEST(ParseSize, RejectsWithAReason) {
  for (const char* bad : {"", "K", "1.5M", "-1", "+1", "12Q", "1MM", "1 M", " 1", "1 ", "0x10",
                          "1Mi", "abc", "1/s", "50M/s", "1e3", "1KiBs", "1BB"}) {
    Result<uint64_t> r = ParseSize(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' accepted";
    if (!r.ok()) {
      EXPECT_TRUE(r.status().IsInvalidArgument());
      EXPECT_NE(r.status().message().find("powers of 1024"), std::string::npos)
          << r.status().message();
    }
  }
  EXPECT_NE(ParseSize("1.5M").status().message().find("has a fraction"), std::string::npos);
  Result<uint64_t> unit = ParseSize("12Q");
  EXPECT_NE(unit.status().message().find("unknown unit 'Q'"), std::string::npos);
  for (const char* big : {"18446744073709551616", "16777216T", "16384P", "99999999999999999999K"}) {
    Result<uint64_t> r = ParseSize(big);
    ASSERT_FALSE(r.ok()) << big;
    EXPECT_NE(r.status().message().find("too large"), std::string::npos) << r.status().message();
  }
}

TEST(ParseRate, ASizeWithAnOptionalPerSecond) {
  EXPECT_EQ(*ParseRate("0"), 0u);
  EXPECT_EQ(*ParseRate("5MB"), 5u << 20);
  EXPECT_EQ(*ParseRate("50M/s"), 50u << 20);
  EXPECT_EQ(*ParseRate("50MiB/S"), 50u << 20);
  EXPECT_EQ(*ParseRate("4096/s"), 4096u);
  for (const char* bad : {"/s", "M/s", "5M/", "5M/sec", "5M/s/s", "5 M/s", "5M//s"}) {
    EXPECT_FALSE(ParseRate(bad).ok()) << "'" << bad << "' accepted";
  }
  Result<uint64_t> r = ParseRate("5X/s");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'5X/s'"), std::string::npos) << r.status().message();
}

}  // namespace
// Leading zeros are a number too, however many (found by fuzzing the count
// parser, which had refused more than 20 characters).
TEST(ByteSize, LeadingZerosAnyNumberOfThem) {
  Result<uint64_t> v = ParseSize("00000000000000000000001K");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 1024u);
  v = ParseRate("000000000000000000000000000002M/s");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(*v, 2u << 20);
}

}  // namespace clonefs
