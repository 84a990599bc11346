// Unit tests of the pure codecs: CRC-32C, superblock and bitmap chunks.
#include <gtest/gtest.h>

#include <random>

#include "metadata/chunk_codec.h"
#include "metadata/crc32c.h"
#include "metadata/superblock_codec.h"
#include "md_test_util.h"

namespace clonefs::metadata {
namespace {

using testing::TestSeed;

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(Crc32c(0, "123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c(0, "", 0), 0u);
  // Continuation equals one pass.
  EXPECT_EQ(Crc32c(Crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
}

Superblock SampleSuperblock() {
  Superblock sb;
  sb.format_version = kFormatVersion;
  sb.uuid = NewUuid();
  sb.region_size = 65536;
  sb.image_size = 10 * 65536 + 17;
  sb.nr_regions = 11;
  sb.created_unix_s = 1700000000;
  sb.source = FileIdentity{sb.image_size, 1234, -5, 0x1122334455667788ull, "/mnt/nfs/src.img",
                           0, 0x99aabbccull, FileIdentity::kMtimeUnstable, ""};
  sb.dest = FileIdentity{sb.image_size + 4096,
                         99,
                         42,
                         0,
                         "/data/dest.img",
                         1700000000123456789,
                         0,
                         FileIdentity::kGeneration,
                         "loop:backing=8:1:12:0",
                         0x89abcdefu};
  return sb;
}

TEST(SuperblockCodec, RoundTrip) {
  const Superblock sb = SampleSuperblock();
  const std::string enc = EncodeSuperblock(sb);
  auto dec = DecodeSuperblock(enc);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_EQ(dec->format_version, sb.format_version);
  EXPECT_EQ(dec->uuid, sb.uuid);
  EXPECT_EQ(dec->region_size, sb.region_size);
  EXPECT_EQ(dec->image_size, sb.image_size);
  EXPECT_EQ(dec->nr_regions, sb.nr_regions);
  EXPECT_EQ(dec->created_unix_s, sb.created_unix_s);
  for (auto [a, b] : {std::pair{&dec->source, &sb.source}, std::pair{&dec->dest, &sb.dest}}) {
    EXPECT_EQ(a->size, b->size);
    EXPECT_EQ(a->inode, b->inode);
    EXPECT_EQ(a->mtime_ns, b->mtime_ns);
    EXPECT_EQ(a->fingerprint, b->fingerprint);
    EXPECT_EQ(a->path, b->path);
    EXPECT_EQ(a->btime_ns, b->btime_ns);
    EXPECT_EQ(a->fingerprint2, b->fingerprint2);
    EXPECT_EQ(a->flags, b->flags);
    EXPECT_EQ(a->device_id, b->device_id);
    EXPECT_EQ(a->generation, b->generation);
  }
}

// A version 2 superblock (no generation) decodes with none recorded and
// re-encodes byte for byte; one that claims a generation is damaged.
TEST(SuperblockCodec, Version2StillDecodes) {
  Superblock sb = SampleSuperblock();
  sb.format_version = 2;
  sb.dest.flags = 0;
  const std::string v2 = EncodeSuperblock(sb);
  EXPECT_EQ(v2.size() + 8, EncodeSuperblock(SampleSuperblock()).size());  // two u32 generations
  auto dec = DecodeSuperblock(v2);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_EQ(dec->format_version, 2u);
  EXPECT_EQ(dec->dest.flags & FileIdentity::kGeneration, 0u);
  EXPECT_EQ(dec->dest.generation, 0u);
  EXPECT_EQ(dec->dest.btime_ns, sb.dest.btime_ns);
  EXPECT_EQ(EncodeSuperblock(*dec), v2);
  sb.dest.flags = FileIdentity::kGeneration;
  auto bad = DecodeSuperblock(EncodeSuperblock(sb));
  EXPECT_TRUE(bad.status().IsCorruption()) << bad.status().ToString();
}

// A version 1 superblock (written by earlier clonefs) still decodes: the
// fields added in version 2 read as "not recorded", and it re-encodes as
// version 1 byte for byte.
TEST(SuperblockCodec, Version1StillDecodes) {
  Superblock sb = SampleSuperblock();
  sb.format_version = 1;
  const std::string v1 = EncodeSuperblock(sb);
  EXPECT_LT(v1.size(), EncodeSuperblock(SampleSuperblock()).size());
  auto dec = DecodeSuperblock(v1);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_EQ(dec->format_version, 1u);
  EXPECT_EQ(dec->source.fingerprint, sb.source.fingerprint);
  EXPECT_EQ(dec->source.fingerprint2, 0u);
  EXPECT_EQ(dec->source.flags, 0u);
  EXPECT_EQ(dec->dest.btime_ns, 0);
  EXPECT_EQ(dec->dest.device_id, "");
  EXPECT_EQ(EncodeSuperblock(*dec), v1);
}

TEST(IdentityDifferences, SameFileHasNone) {
  const Superblock sb = SampleSuperblock();
  EXPECT_TRUE(IdentityDifferences("source", sb.source, sb.source).empty());
  EXPECT_TRUE(IdentityDifferences("dest", sb.dest, sb.dest).empty());
}

TEST(IdentityDifferences, RecreatedFileDiffersByBirthTime) {
  FileIdentity rec{0, 12, 0, 0, "/d", 1000, 0, 0, ""};
  FileIdentity now = rec;
  now.btime_ns = 2000;  // same inode number, created again
  auto d = IdentityDifferences("dest", rec, now);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("removed and created again"), std::string::npos) << d[0];
  now.btime_ns = 0;  // a file system without birth times: not compared
  EXPECT_TRUE(IdentityDifferences("dest", rec, now).empty());
}

// Where the file system keeps no birth time (ext4 with 128-byte inodes), a
// file created again under the same inode number differs by its generation.
TEST(IdentityDifferences, RecreatedFileDiffersByGeneration) {
  FileIdentity rec{0, 12, 0, 0, "/d", 0, 0, FileIdentity::kGeneration, "", 1111};
  FileIdentity now = rec;
  EXPECT_TRUE(IdentityDifferences("dest", rec, now).empty());
  now.generation = 2222;
  auto d = IdentityDifferences("dest", rec, now);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("dest inode generation: metadata has 1111, file has 2222"), std::string::npos)
      << d[0];
  EXPECT_NE(d[0].find("removed and created again since the clone last used it"), std::string::npos)
      << d[0];
  // Recorded by neither, or by one side only (older metadata, a file system
  // without generations): not compared, whatever the values. 0 is a value.
  FileIdentity old = rec;
  old.flags = 0;
  old.generation = 0;
  EXPECT_TRUE(IdentityDifferences("dest", old, now).empty());
  EXPECT_TRUE(IdentityDifferences("dest", now, old).empty());
  now.generation = 0;
  EXPECT_EQ(IdentityDifferences("dest", rec, now).size(), 1u);
}

TEST(IdentityDifferences, DeviceIdDecidesForBlockDevices) {
  FileIdentity rec{1 << 20, 0x700, 0, 0, "/dev/loop0", 0, 0, 0, "loop:backing=8:1:12:5"};
  FileIdentity now = rec;
  now.inode = 0x701;  // renumbered, same backing file: the same device
  EXPECT_TRUE(IdentityDifferences("dest", rec, now).empty());
  now = rec;
  now.device_id = "loop:backing=8:1:13:7";  // same number, other backing file
  auto d = IdentityDifferences("dest", rec, now);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("another disk or backing file"), std::string::npos) << d[0];
}

TEST(IdentityDifferences, MtimeIgnoredWhereUnstableButContentIsNot) {
  FileIdentity rec{4096, 0, 111, 0xaa, "/s", 0, 0xbb, 0, ""};
  FileIdentity now = rec;
  now.mtime_ns = 222;
  EXPECT_EQ(IdentityDifferences("source", rec, now).size(), 1u);
  now.flags = FileIdentity::kMtimeUnstable;  // e.g. now behind nbdfuse
  EXPECT_TRUE(IdentityDifferences("source", rec, now).empty());
  now.fingerprint2 = 0xcc;  // a real content change is still seen
  auto d = IdentityDifferences("source", rec, now);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("wide fingerprint"), std::string::npos) << d[0];
}

// SPEC §5/§9: a remote source is its export, size and content; the URI (a
// host, a port, a socket path) is a transport detail and never compared.
TEST(IdentityDifferences, RemoteSourceByExportSizeAndContent) {
  const uint32_t remote = FileIdentity::kRemote | FileIdentity::kMtimeUnstable;
  FileIdentity rec{1 << 30, 0, 0, 0xaa, "nbd+unix:///disk?socket=/run/a.sock", 0, 0xbb, remote,
                   "nbd export 'disk'"};
  FileIdentity now = rec;
  now.path = "nbd://10.0.0.2:10809/disk";  // another way to reach the same export
  EXPECT_TRUE(IdentityDifferences("source", rec, now).empty());
  now.device_id = "nbd export 'other'";
  auto d = IdentityDifferences("source", rec, now);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("another export"), std::string::npos) << d[0];
  now = rec;
  now.fingerprint = 0xcc;  // same export name, other content
  EXPECT_EQ(IdentityDifferences("source", rec, now).size(), 1u);
  // The flag survives the superblock codec.
  Superblock sb = SampleSuperblock();
  sb.source = rec;
  auto dec = DecodeSuperblock(EncodeSuperblock(sb));
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  EXPECT_EQ(dec->source.flags, remote);
  EXPECT_EQ(dec->source.device_id, "nbd export 'disk'");
}

TEST(SuperblockCodec, UuidsAreFreshAndWellFormed) {
  const std::string a = NewUuid(), b = NewUuid();
  EXPECT_NE(a, b);
  ASSERT_EQ(a.size(), 36u);
  EXPECT_EQ(a[14], '4');  // version 4
  EXPECT_TRUE(DecodeSuperblock(EncodeSuperblock(SampleSuperblock())).ok());
}

TEST(SuperblockCodec, EveryFlippedByteIsDetected) {
  const std::string enc = EncodeSuperblock(SampleSuperblock());
  for (size_t i = 0; i < enc.size(); ++i) {
    std::string bad = enc;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    auto dec = DecodeSuperblock(bad);
    ASSERT_FALSE(dec.ok()) << "byte " << i;
    EXPECT_TRUE(dec.status().IsCorruption()) << "byte " << i << ": " << dec.status().ToString();
  }
}

TEST(SuperblockCodec, TruncationsAreCorruption) {
  const std::string enc = EncodeSuperblock(SampleSuperblock());
  for (size_t n = 0; n < enc.size(); ++n) {
    auto dec = DecodeSuperblock(enc.substr(0, n));
    ASSERT_FALSE(dec.ok()) << n;
    EXPECT_TRUE(dec.status().IsCorruption()) << n;
  }
  auto longer = DecodeSuperblock(enc + "x");
  EXPECT_TRUE(longer.status().IsCorruption());
}

TEST(SuperblockCodec, ReasonsAreSpecific) {
  auto magic = DecodeSuperblock(std::string(64, 'x'));
  EXPECT_NE(magic.status().message().find("magic"), std::string::npos) << magic.status().ToString();

  std::string enc = EncodeSuperblock(SampleSuperblock());
  enc[20] ^= 1;  // inside the body: checksum catches it
  auto crc = DecodeSuperblock(enc);
  EXPECT_NE(crc.status().message().find("checksum"), std::string::npos) << crc.status().ToString();
}

TEST(SuperblockCodec, NewerVersionIsMismatchNotCorruption) {
  Superblock sb = SampleSuperblock();
  sb.format_version = kFormatVersion + 1;
  auto dec = DecodeSuperblock(EncodeSuperblock(sb));
  ASSERT_FALSE(dec.ok());
  EXPECT_TRUE(dec.status().IsMismatch()) << dec.status().ToString();
  EXPECT_NE(dec.status().message().find("format version"), std::string::npos);
}

TEST(SuperblockCodec, InconsistentGeometryIsCorruption) {
  Superblock sb = SampleSuperblock();
  sb.nr_regions = 12;  // correctly checksummed, but wrong
  EXPECT_TRUE(DecodeSuperblock(EncodeSuperblock(sb)).status().IsCorruption());
  sb = SampleSuperblock();
  sb.region_size = 5000;
  EXPECT_TRUE(DecodeSuperblock(EncodeSuperblock(sb)).status().IsCorruption());
  sb = SampleSuperblock();
  sb.uuid = "not-a-uuid";
  EXPECT_TRUE(DecodeSuperblock(EncodeSuperblock(sb)).status().IsCorruption());
}

TEST(SuperblockCodec, NrRegionsRoundsUpWithoutOverflow) {
  EXPECT_EQ(NrRegionsFor(1, 4096), 1u);
  EXPECT_EQ(NrRegionsFor(4096, 4096), 1u);
  EXPECT_EQ(NrRegionsFor(4097, 4096), 2u);
  EXPECT_EQ(NrRegionsFor(UINT64_MAX, 4096), (UINT64_MAX >> 12) + 1);
  EXPECT_EQ(NrRegionsFor(0, 4096), 0u);
}

TEST(RegionSize, Validation) {
  EXPECT_TRUE(ValidateRegionSize(4096).ok());
  EXPECT_TRUE(ValidateRegionSize(1ull << 30).ok());
  EXPECT_TRUE(ValidateRegionSize(65536).ok());
  auto s = ValidateRegionSize(5000);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message(), "region size 5000 is not a power of two; use e.g. 4096");
  EXPECT_TRUE(ValidateRegionSize(0).IsInvalidArgument());
  EXPECT_NE(ValidateRegionSize(2048).message().find("below the minimum"), std::string::npos);
  EXPECT_NE(ValidateRegionSize(1ull << 31).message().find("above the maximum"), std::string::npos);
}

TEST(ChunkCodec, KeysSortByIndex) {
  for (uint64_t c : std::initializer_list<uint64_t>{0, 1, 255, 256, 1ull << 40, UINT64_MAX}) {
    auto back = DecodeChunkKey(EncodeChunkKey(c));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, c);
  }
  EXPECT_LT(EncodeChunkKey(255), EncodeChunkKey(256));
  EXPECT_LT(EncodeChunkKey(1), EncodeChunkKey(1ull << 40));
  EXPECT_TRUE(DecodeChunkKey("1234567").status().IsCorruption());
}

std::vector<uint64_t> RandomChunk(std::mt19937_64& rng, uint64_t valid) {
  std::vector<uint64_t> w(kWordsPerChunk, 0);
  const int style = rng() % 4;
  if (style == 0) {  // a few long runs
    for (int k = 0; k < 3; ++k) {
      const uint64_t a = rng() % valid, len = 1 + rng() % (valid - a);
      for (uint64_t i = a; i < a + len; ++i) w[i / 64] |= 1ull << (i % 64);
    }
  } else if (style == 1) {  // dense random
    for (uint64_t i = 0; i < valid; ++i) {
      if (rng() & 1) w[i / 64] |= 1ull << (i % 64);
    }
  } else if (style == 2) {  // sparse
    for (int k = 0; k < 20; ++k) {
      const uint64_t i = rng() % valid;
      w[i / 64] |= 1ull << (i % 64);
    }
  } else {  // full
    for (uint64_t i = 0; i < valid; ++i) w[i / 64] |= 1ull << (i % 64);
  }
  if (ChunkIsZero(w.data())) w[0] = 1;
  return w;
}

TEST(ChunkCodec, RandomRoundTrips) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int iter = 0; iter < 400; ++iter) {
    const uint64_t valid = (iter % 3 == 0) ? 1 + rng() % kRegionsPerChunk : kRegionsPerChunk;
    const auto w = RandomChunk(rng, valid);
    const std::string enc = EncodeChunkValue(w.data(), valid);
    ASSERT_LE(enc.size(), 1 + kChunkBytes);
    std::vector<uint64_t> back(kWordsPerChunk, 0xdead);
    Status s = DecodeChunkValue(enc, valid, back.data());
    ASSERT_TRUE(s.ok()) << s.ToString() << " iter " << iter;
    ASSERT_EQ(back, w) << "iter " << iter << " tag " << int(enc[0]);
  }
}

TEST(ChunkCodec, PicksCompactEncodings) {
  std::vector<uint64_t> w(kWordsPerChunk, 0);
  w[0] = 1;
  EXPECT_EQ(EncodeChunkValue(w.data(), kRegionsPerChunk)[0], char(kTagRuns));
  EXPECT_LE(EncodeChunkValue(w.data(), kRegionsPerChunk).size(), 3u);
  std::fill(w.begin(), w.end(), ~0ull);
  EXPECT_EQ(EncodeChunkValue(w.data(), kRegionsPerChunk), std::string(1, char(kTagFull)));
  std::fill(w.begin(), w.end(), 0x5555555555555555ull);  // 16384 one-bit runs
  EXPECT_EQ(EncodeChunkValue(w.data(), kRegionsPerChunk)[0], char(kTagRaw));
  // A last chunk of 100 regions, all hydrated, is "full".
  std::fill(w.begin(), w.end(), 0);
  w[0] = ~0ull;
  w[1] = (1ull << 36) - 1;
  EXPECT_EQ(EncodeChunkValue(w.data(), 100), std::string(1, char(kTagFull)));
}

TEST(ChunkCodec, MalformedValuesAreCorruption) {
  std::vector<uint64_t> w(kWordsPerChunk);
  auto bad = [&](const std::string& v, uint64_t valid, const char* what) {
    Status s = DecodeChunkValue(v, valid, w.data());
    EXPECT_TRUE(s.IsCorruption()) << what << ": " << s.ToString();
    EXPECT_FALSE(s.message().empty());
  };
  bad("", kRegionsPerChunk, "empty");
  bad(std::string(1, char(9)), kRegionsPerChunk, "unknown tag");
  bad(std::string(1, char(kTagFull)) + "x", kRegionsPerChunk, "full with payload");
  bad(std::string(1, char(kTagRaw)) + std::string(100, '\xff'), kRegionsPerChunk, "short raw");
  bad(std::string(1, char(kTagRaw)) + std::string(kChunkBytes, '\0'), kRegionsPerChunk, "zero raw");
  bad(std::string(1, char(kTagRaw)) + std::string(kChunkBytes, '\xff'), 100, "raw past end");
  bad(std::string(1, char(kTagRuns)), kRegionsPerChunk, "no runs");
  bad(std::string(1, char(kTagRuns)) + "\x05", kRegionsPerChunk, "half a run");
  bad(std::string(1, char(kTagRuns)) + std::string("\x00\x00", 2), kRegionsPerChunk, "zero length");
  bad(std::string(1, char(kTagRuns)) + std::string("\x00\x02\x00\x02", 4), kRegionsPerChunk,
      "zero gap after a run");
  bad(std::string(1, char(kTagRuns)) + std::string("\x60\x10", 2), 100, "run past end");
  bad(std::string(1, char(kTagRuns)) + std::string("\xff\xff\xff\xff\xff", 5), kRegionsPerChunk,
      "overlong varint");
}

}  // namespace
}  // namespace clonefs::metadata
