// Unit tests: dm-clone message parsing (case, counts, ranges, suffixes,
// overflow) and byte-size parsing.
#include "control/message.h"

#include <gtest/gtest.h>

#include "control/units.h"

namespace clonefs::control {
namespace {

using K = Message::Kind;

Result<Message> P(std::vector<std::string> w) { return ParseMessage(w); }

TEST(MessageTest, ZeroArgumentMessagesAnyCase) {
  for (const char* kw : {"enable_hydration", "ENABLE_HYDRATION", "Enable_Hydration"}) {
    Result<Message> m = P({kw});
    ASSERT_TRUE(m.ok()) << kw;
    EXPECT_EQ(m->kind, K::kEnableHydration);
  }
  for (const char* kw : {"disable_hydration", "DISABLE_hydration"}) {
    Result<Message> m = P({kw});
    ASSERT_TRUE(m.ok()) << kw;
    EXPECT_EQ(m->kind, K::kDisableHydration);
  }
}

TEST(MessageTest, ZeroArgumentMessagesRefuseArguments) {
  for (const char* kw : {"enable_hydration", "disable_hydration"}) {
    Result<Message> m = P({kw, "1"});
    ASSERT_FALSE(m.ok()) << kw;
    EXPECT_TRUE(m.status().IsInvalidArgument());
    EXPECT_NE(m.status().message().find("takes 0 arguments, got 1"), std::string::npos)
        << m.status().message();
  }
}

TEST(MessageTest, ThresholdRange) {
  Result<Message> m = P({"hydration_threshold", "0"});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kind, K::kHydrationThreshold);
  EXPECT_EQ(m->value, 0u);
  m = P({"HYDRATION_THRESHOLD", "4294967295"});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->value, 4294967295u);
  EXPECT_FALSE(P({"hydration_threshold", "4294967296"}).ok());
  EXPECT_FALSE(P({"hydration_threshold", "99999999999999999999999"}).ok());
  EXPECT_FALSE(P({"hydration_threshold", "-1"}).ok());
  EXPECT_FALSE(P({"hydration_threshold", "+1"}).ok());
  EXPECT_FALSE(P({"hydration_threshold", "1k"}).ok());
  EXPECT_FALSE(P({"hydration_threshold", "0x10"}).ok());
  EXPECT_FALSE(P({"hydration_threshold", " 1"}).ok());
  EXPECT_FALSE(P({"hydration_threshold", ""}).ok());
}

TEST(MessageTest, BatchSizeAtLeastOne) {
  Result<Message> m = P({"hydration_batch_size", "1"});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kind, K::kHydrationBatchSize);
  EXPECT_EQ(m->value, 1u);
  m = P({"Hydration_Batch_Size", "4294967295"});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->value, 4294967295u);
  Result<Message> zero = P({"hydration_batch_size", "0"});
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.status().message().find("at least 1"), std::string::npos);
  EXPECT_FALSE(P({"hydration_batch_size", "4294967296"}).ok());
}

TEST(MessageTest, ExactCountsForValuedMessages) {
  for (const char* kw : {"hydration_threshold", "hydration_batch_size", "rate"}) {
    Result<Message> none = P({kw});
    ASSERT_FALSE(none.ok()) << kw;
    EXPECT_NE(none.status().message().find("takes 1 argument, got 0"), std::string::npos);
    Result<Message> two = P({kw, "1", "2"});
    ASSERT_FALSE(two.ok()) << kw;
    EXPECT_NE(two.status().message().find("takes 1 argument, got 2"), std::string::npos);
  }
}

TEST(MessageTest, RateSuffixes) {
  struct Case {
    const char* in;
    uint64_t want;
  } cases[] = {
      {"0", 0},
      {"1048576", 1048576},
      {"1K", 1024},
      {"1k", 1024},
      {"2KiB", 2048},
      {"3M", 3ull << 20},
      {"3mib", 3ull << 20},
      {"4G", 4ull << 30},
      {"5T", 5ull << 40},
      // One meaning for every size and rate (base/byte_size.h): MB is MiB,
      // as for mount --rate; "/s" is accepted here too.
      {"1KB", 1024},
      {"5MB", 5ull << 20},
      {"20mb", 20ull << 20},
      {"7GB", 7ull << 30},
      {"1TB", 1ull << 40},
      {"50M/s", 50ull << 20},
      {"50MiB/S", 50ull << 20},
      {"512B", 512},
      {"16777215T", 16777215ull << 40},
  };
  for (const Case& c : cases) {
    Result<Message> m = P({"RATE", c.in});
    ASSERT_TRUE(m.ok()) << c.in << ": " << m.status().ToString();
    EXPECT_EQ(m->kind, K::kRate);
    EXPECT_EQ(m->value, c.want) << c.in;
  }
}

TEST(MessageTest, RateRejects) {
  for (const char* bad : {"", "M", "1X", "1 M", "1.5M", "-1", "1MM", "16777216T",
                          "18446744073709551616", "99999999999999999999K", "0x10"}) {
    Result<Message> m = P({"rate", bad});
    EXPECT_FALSE(m.ok()) << "'" << bad << "' accepted";
  }
  EXPECT_TRUE(P({"rate", "18446744073709551615"}).ok());
  EXPECT_FALSE(P({"rate", "18446744073709551615K"}).ok());
}

TEST(MessageTest, UnknownMessageListsAccepted) {
  for (std::vector<std::string> w : std::vector<std::vector<std::string>>{
           {"hydrate"}, {"enable-hydration"}, {"threshold", "3"}, {""}, {}}) {
    Result<Message> m = P(w);
    ASSERT_FALSE(m.ok());
    const std::string& msg = m.status().message();
    for (const char* kw : {"enable_hydration", "disable_hydration", "hydration_threshold",
                           "hydration_batch_size", "rate"}) {
      EXPECT_NE(msg.find(kw), std::string::npos) << msg;
    }
  }
}

TEST(MessageTest, FormatRoundTrips) {
  std::vector<Message> ms = {{K::kEnableHydration, 0},    {K::kDisableHydration, 0},
                             {K::kHydrationThreshold, 0}, {K::kHydrationThreshold, 4294967295u},
                             {K::kHydrationBatchSize, 7}, {K::kRate, 0},
                             {K::kRate, UINT64_MAX}};
  for (const Message& m : ms) {
    std::string s = FormatMessage(m);
    std::vector<std::string> words;
    size_t sp = s.find(' ');
    words.push_back(s.substr(0, sp));
    if (sp != std::string::npos) words.push_back(s.substr(sp + 1));
    Result<Message> back = ParseMessage(words);
    ASSERT_TRUE(back.ok()) << s;
    EXPECT_EQ(*back, m) << s;
  }
}

TEST(UnitsTest, ParseDecimalBounds) {
  EXPECT_EQ(*ParseDecimal("0"), 0u);
  EXPECT_EQ(*ParseDecimal("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(ParseDecimal("18446744073709551616").ok());
  EXPECT_EQ(*ParseDecimal("255", 255), 255u);
  EXPECT_FALSE(ParseDecimal("256", 255).ok());
  EXPECT_EQ(*ParseDecimal("000123"), 123u);
}

// Found by tests/fuzz/units_decimal_fuzz: with a bound below 9, max - digit
// wrapped around and any single digit was accepted.
TEST(UnitsTest, ParseDecimalBoundBelowNine) {
  EXPECT_FALSE(ParseDecimal("4", 0).ok());
  EXPECT_EQ(*ParseDecimal("0", 0), 0u);
  EXPECT_FALSE(ParseDecimal("9", 8).ok());
  EXPECT_EQ(*ParseDecimal("08", 8), 8u);
}

TEST(UnitsTest, PercentNeverRoundsUp) {
  EXPECT_EQ(FormatPercent(999999, 1000000, 2), "99.99%");
  EXPECT_EQ(FormatPercent(1, 3, 2), "33.33%");
  EXPECT_EQ(FormatPercent(2, 3, 1), "66.6%");
  EXPECT_EQ(FormatPercent(5, 100, 2), "5.00%");
  EXPECT_EQ(FormatPercent(1, 1000, 2), "0.10%");
  EXPECT_EQ(FormatPercent(0, 7, 0), "0%");
  EXPECT_EQ(FormatPercent(7, 7, 2), "100.00%");
  EXPECT_EQ(FormatPercent(0, 0, 2), "100.00%");
  EXPECT_EQ(FormatPercent(UINT64_MAX - 1, UINT64_MAX, 4), "99.9999%");
  EXPECT_EQ(FlooredPercent(1ull << 62, 1ull << 63, 4), 500000u);
}

TEST(UnitsTest, Formatting) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(10ull << 30), "10.00 GiB");
  EXPECT_EQ(FormatRate(0, true), "unlimited");
  EXPECT_EQ(FormatRate(2 << 20), "2.00 MiB/s");
  EXPECT_EQ(FormatDuration(45), "45s");
  EXPECT_EQ(FormatDuration(185), "3m05s");
  EXPECT_EQ(FormatDuration(7380), "2h03m");
  EXPECT_EQ(FormatDuration(93600 * 2), "2d04h");
}


TEST(MessageSettingsTest, EachMessageStoresItsKnob) {
  auto change = [](std::vector<std::string> words) {
    Result<Message> m = ParseMessage(words);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return SettingsChangeOf(*m);
  };
  clone::Settings s = change({"rate", "2M"});
  EXPECT_EQ(s.rate_bytes_per_s, 2u << 20);
  EXPECT_FALSE(s.hydration_threshold.has_value());
  EXPECT_EQ(change({"rate", "0"}).rate_bytes_per_s, 0u);
  EXPECT_EQ(change({"hydration_threshold", "0"}).hydration_threshold, 0u);
  EXPECT_EQ(change({"hydration_batch_size", "7"}).hydration_batch_size, 7u);
  EXPECT_EQ(change({"disable_hydration"}).hydration_enabled, false);
  EXPECT_EQ(change({"enable_hydration"}).hydration_enabled, true);
  s = change({"enable_hydration"});
  s.hydration_enabled.reset();
  EXPECT_TRUE(s.empty()) << "a message changes one setting only";
}

}  // namespace
}  // namespace clonefs::control
