// CheckTable (metadata/table_check.h) and the XXH3 it uses (libxxhash), on
// tables written by RocksDB's SstFileWriter into an in-memory Env: an
// intact table passes; a flipped bit anywhere from the index block to the
// end of the file (index, properties, metaindex, footer) is refused.
#include <gtest/gtest.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/sst_file_writer.h>
#include <rocksdb/table.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <xxhash.h>
#include "metadata/table_check.h"

// The XXH3 inside librocksdb (xxHash 0.8.1 under RocksDB's prefix): the
// function whose output RocksDB stores in its tables. Test oracle only.
extern "C" uint64_t ROCKSDB_XXH3_64bits(const void* data, size_t len);

namespace clonefs::metadata {
namespace {

// libxxhash's XXH3 is the one RocksDB's tables are checked with.
TEST(Xxh3, MatchesTheCopyInsideRocksDb) {
  std::mt19937_64 rng(7);
  std::string bytes(70000, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 1100; ++n) lengths.push_back(n);  // every short path and block edge
  for (size_t n : {2047, 2048, 2049, 3071, 3072, 3073, 16384, 16389, 65536, 70000}) {
    lengths.push_back(n);
  }
  for (size_t n : lengths) {
    for (size_t start : {size_t{0}, size_t{3}}) {
      if (start + n > bytes.size()) continue;
      ASSERT_EQ(XXH3_64bits(bytes.data() + start, n), ROCKSDB_XXH3_64bits(bytes.data() + start, n))
          << "length " << n << " at " << start;
    }
  }
  EXPECT_EQ(XXH3_64bits(nullptr, 0), 0x2D06800538D394C2ull);  // xxHash's published XXH3("")
}

// A table of `keys` 8-byte big-endian keys with 200-byte random values,
// written like clonefs's (16 KiB blocks, LZ4 if built in) with `checksum`.
std::string MakeTable(rocksdb::ChecksumType checksum, int keys) {
  std::unique_ptr<rocksdb::Env> env(rocksdb::NewMemEnv(rocksdb::Env::Default()));
  rocksdb::Options o;
  o.env = env.get();
  rocksdb::BlockBasedTableOptions t;
  t.checksum = checksum;
  t.block_size = 16 << 10;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  o.compression = rocksdb::kLZ4Compression;
  rocksdb::SstFileWriter w(rocksdb::EnvOptions(), o);
  const std::string path = "/table.sst";
  EXPECT_TRUE(w.Open(path).ok());
  std::mt19937_64 rng(11);
  for (int k = 0; k < keys; ++k) {
    std::string key(8, '\0');
    for (int i = 0; i < 8; ++i) key[7 - i] = static_cast<char>(static_cast<uint64_t>(k) >> (8 * i));
    std::string value(200, '\0');
    for (char& c : value) c = static_cast<char>(rng() % 16);
    EXPECT_TRUE(w.Put(key, value).ok());
  }
  EXPECT_TRUE(w.Finish().ok());
  std::string bytes;
  EXPECT_TRUE(rocksdb::ReadFileToString(env.get(), path, &bytes).ok());
  return bytes;
}

Result<std::vector<TableBlock>> Check(const std::string& bytes) {
  auto read = [&](uint64_t off, size_t n, std::string* out) {
    if (off > bytes.size() || n > bytes.size() - off) return Status::IoError("read past the end");
    *out = bytes.substr(off, n);
    return Status::OK();
  };
  return CheckTable(read, bytes.size(), "000042.sst");
}

class TableCheck : public ::testing::TestWithParam<rocksdb::ChecksumType> {};

TEST_P(TableCheck, IntactTablePasses) {
  const std::string bytes = MakeTable(GetParam(), 1000);
  auto blocks = Check(bytes);
  ASSERT_TRUE(blocks.ok()) << blocks.status().ToString();
  ASSERT_GE(blocks->size(), 3u);
  EXPECT_EQ(blocks->front().what, "metaindex");
  EXPECT_EQ(blocks->back().what, "index");
  EXPECT_TRUE(std::any_of(blocks->begin(), blocks->end(),
                          [](const TableBlock& b) { return b.what == "rocksdb.properties"; }));
}

// Everything after the data blocks is a block CheckTable verifies, or the
// footer: each single-bit flip there is refused, and named.
TEST_P(TableCheck, EveryFlipAfterTheDataBlocksIsRefused) {
  const std::string bytes = MakeTable(GetParam(), 1000);
  auto blocks = Check(bytes);
  ASSERT_TRUE(blocks.ok()) << blocks.status().ToString();
  uint64_t first = bytes.size() - kTableFooterSize;
  for (const TableBlock& b : *blocks) first = std::min(first, b.offset);
  ASSERT_GT(first, 16384u) << "expected several data blocks before the index";
  int refused = 0;
  for (uint64_t i = first; i < bytes.size(); ++i) {
    for (const char bit : {'\x01', '\x02', '\x10', '\x80'}) {
      std::string damaged = bytes;
      damaged[i] ^= bit;
      auto r = Check(damaged);
      ASSERT_FALSE(r.ok()) << "byte " << i << " ^ " << int(static_cast<uint8_t>(bit)) << " of "
                           << bytes.size() << " passed";
      ASSERT_TRUE(r.status().IsCorruption()) << r.status().ToString();
      ASSERT_EQ(r.status().message().rfind("000042.sst is damaged at offset ", 0), 0u)
          << r.status().ToString();
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
}

TEST_P(TableCheck, CutShortOrEmptyIsRefused) {
  const std::string bytes = MakeTable(GetParam(), 100);
  for (size_t keep : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 1}) {
    auto r = Check(bytes.substr(0, keep));
    EXPECT_TRUE(!r.ok() && r.status().IsCorruption()) << keep << " bytes";
  }
}

INSTANTIATE_TEST_SUITE_P(Checksums, TableCheck, ::testing::Values(rocksdb::kXXH3, rocksdb::kCRC32c),
                         [](const auto& info) {
                           return std::string(info.param == rocksdb::kXXH3 ? "XXH3" : "CRC32c");
                         });

}  // namespace
}  // namespace clonefs::metadata
