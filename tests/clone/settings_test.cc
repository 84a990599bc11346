// Unit tests of the stored-settings encoding (src/clone/settings.h,
// docs/metadata-format.md §11).
#include "clone/settings.h"

#include <gtest/gtest.h>

#include "metadata/crc32c.h"

// GCC 12 with -fsanitize=address reports a false "may be used uninitialized"
// inside std::optional<std::string>'s assignment in these tests.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace clonefs::clone {
namespace {

Settings Full() {
  Settings s;
  s.rate_bytes_per_s = 1 << 20;
  s.hydration_threshold = 0;
  s.hydration_batch_size = 4294967295u;
  s.hydration_enabled = false;
  s.on_complete = "touch '/tmp/done file'\nsync";
  s.name = "x.img";
  s.discard_passdown = false;
  s.direct_io = false;
  s.allow_other = true;
  s.passthrough = false;
  s.fuse_options = "ro,fsname=a\\,b";
  s.fuse_transport = "dev";
  s.threads = 1024;
  s.source_timeout_ms = 2500;
  return s;
}

// Re-seals a record whose bytes a test edited, so only the edit is wrong.
std::string Reseal(std::string rec) {
  rec.resize(rec.size() - 4);
  const uint32_t crc = metadata::Crc32c(0, rec.data(), rec.size());
  for (int i = 0; i < 4; ++i) rec.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return rec;
}

// A record built by hand from (key, value) pairs, with any version.
std::string Record(const std::vector<std::pair<std::string, std::string>>& pairs,
                   uint32_t version = kSettingsVersion) {
  std::string out(kSettingsMagic);
  auto u32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  };
  u32(version);
  u32(static_cast<uint32_t>(pairs.size()));
  for (const auto& [k, v] : pairs) {
    out.push_back(static_cast<char>(k.size() & 0xff));
    out.push_back(static_cast<char>(k.size() >> 8));
    out += k;
    u32(static_cast<uint32_t>(v.size()));
    out += v;
  }
  u32(0);
  return Reseal(out);
}

TEST(SettingsCodec, RoundTripsEveryField) {
  const Settings s = Full();
  auto back = DecodeSettings(EncodeSettings(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, s);
}

TEST(SettingsCodec, RoundTripsEmptyAndPartial) {
  auto empty = DecodeSettings(EncodeSettings(Settings{}));
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());
  Settings p;
  p.rate_bytes_per_s = 0;  // "unlimited" given explicitly is not "not stored"
  p.on_complete = "";      // cleared
  auto back = DecodeSettings(EncodeSettings(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, p);
  EXPECT_FALSE(back->name.has_value());
  EXPECT_FALSE(back->empty());
}

TEST(SettingsCodec, UnknownKeysAreKeptAndWrittenBack) {
  const std::string rec = Record({{"rate", "5"}, {"zz_future_knob", "42"}});
  auto s = DecodeSettings(rec);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->rate_bytes_per_s, 5u);
  ASSERT_EQ(s->unknown.size(), 1u);
  EXPECT_EQ(s->unknown.at("zz_future_knob"), "42");
  Settings change;
  change.rate_bytes_per_s = 7;
  auto again = DecodeSettings(EncodeSettings(Merge(*s, change)));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->rate_bytes_per_s, 7u);
  EXPECT_EQ(again->unknown.at("zz_future_knob"), "42");
  EXPECT_NE(DescribeSettings(*again).find("unknown: zz_future_knob=42"), std::string::npos);
}

TEST(SettingsCodec, NewerVersionIsNotSupported) {
  auto s = DecodeSettings(Record({{"rate", "5"}}, kSettingsVersion + 1));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsNotSupported()) << s.status().ToString();
  EXPECT_NE(s.status().message().find("newer than this clonefs reads"), std::string::npos);
}

void ExpectCorrupt(const std::string& rec, const std::string& reason) {
  auto s = DecodeSettings(rec);
  ASSERT_FALSE(s.ok()) << "accepted a bad record (" << reason << ")";
  EXPECT_TRUE(s.status().IsCorruption()) << s.status().ToString();
  EXPECT_NE(s.status().message().find(reason), std::string::npos) << s.status().ToString();
}

TEST(SettingsCodec, BadInputIsCorruption) {
  const std::string good = EncodeSettings(Full());
  ExpectCorrupt("", "too short");
  ExpectCorrupt(good.substr(0, 10), "too short");
  std::string magic = good;
  magic[0] = 'X';
  ExpectCorrupt(magic, "bad magic");
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x20;
  ExpectCorrupt(flipped, "checksum mismatch");
  ExpectCorrupt(Reseal(good.substr(0, good.size() - 10) + std::string(4, '\0')), "truncated");
  ExpectCorrupt(Reseal(good.substr(0, good.size() - 4) + "xx" + std::string(4, '\0')),
                "trailing bytes");
  ExpectCorrupt(Record({{"rate", "5"}}, 0), "version 0");
  ExpectCorrupt(Record({{"rate", "5"}, {"rate", "6"}}), "appears twice");
  ExpectCorrupt(Record({{"Rate", "5"}}), "key 'Rate'");
  ExpectCorrupt(Record({{"rate", "5M"}}), "rate: '5M' is not a decimal number");
  ExpectCorrupt(Record({{"rate", "99999999999999999999"}}), "out of range");
  ExpectCorrupt(Record({{"hydration_threshold", "4294967296"}}), "out of range");
  ExpectCorrupt(Record({{"hydration_batch_size", "0"}}), "out of range");
  ExpectCorrupt(Record({{"threads", "0"}}), "out of range");
  ExpectCorrupt(Record({{"hydration", "yes"}}), "neither on nor off");
  ExpectCorrupt(Record({{"passthrough", "1"}}), "neither on nor off");
  ExpectCorrupt(Record({{"fuse_transport", "fast"}}), "fuse_transport must be auto, uring or dev");
  ExpectCorrupt(Record({{"name", "a/b"}}), "not a valid file name");
  ExpectCorrupt(Record({{"name", ""}}), "not a valid file name");
  // An entry count that promises more than the record holds.
  std::string count = Record({{"rate", "5"}});
  count[12] = 2;
  ExpectCorrupt(Reseal(count), "truncated");
}

TEST(SettingsMerge, GivenFieldsReplaceStoredOnes) {
  Settings stored;
  stored.rate_bytes_per_s = 1;
  stored.name = "a.img";
  stored.on_complete = "touch F";
  Settings given;
  given.rate_bytes_per_s = 2;
  given.on_complete = "";
  const Settings m = Merge(stored, given);
  EXPECT_EQ(m.rate_bytes_per_s, 2u);
  EXPECT_EQ(m.name, "a.img");
  EXPECT_EQ(m.on_complete, "");
  EXPECT_EQ(Merge(stored, Settings{}), stored);
}

TEST(SettingsDescribe, ReadsAsMountOptions) {
  EXPECT_EQ(DescribeSettings(Settings{}), "none");
  Settings s;
  s.rate_bytes_per_s = 1 << 20;
  s.name = "x.img";
  s.discard_passdown = false;
  s.on_complete = "touch F";
  EXPECT_EQ(DescribeSettings(s),
            "--rate 1M --no-discard-passdown --name x.img --on-complete 'touch F'");
  s = Settings{};
  s.rate_bytes_per_s = 1000;
  s.on_complete = "it's";
  EXPECT_EQ(DescribeSettings(s), "--rate 1000 --on-complete 'it'\\''s'");
  s = Settings{};
  s.source_timeout_ms = 2500;
  EXPECT_EQ(DescribeSettings(s), "--source-timeout 2.5s");
  s.source_timeout_ms = 30000;
  EXPECT_EQ(DescribeSettings(s), "--source-timeout 30s");
  s = Settings{};
  s.passthrough = false;
  EXPECT_EQ(DescribeSettings(s), "--no-passthrough");
  s.passthrough = true;
  EXPECT_EQ(DescribeSettings(s), "--passthrough");
  s = Settings{};
  s.fuse_transport = "uring";
  EXPECT_EQ(DescribeSettings(s), "--fuse-transport uring");
}

TEST(SettingsCodec, SourceTimeoutIsBounded) {
  Settings s;
  s.source_timeout_ms = kMinSourceTimeoutMs;
  Result<Settings> back = DecodeSettings(EncodeSettings(s));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->source_timeout_ms, kMinSourceTimeoutMs);
  EXPECT_FALSE(FromPairs({{"source_timeout_ms", "99"}}).ok());
  EXPECT_FALSE(FromPairs({{"source_timeout_ms", "86400001"}}).ok());
}

}  // namespace
}  // namespace clonefs::clone
