// Damaged tables at Open (docs/metadata-format.md, "Damaged tables"): a
// metadata store whose table files (*.sst) are damaged is refused with
// Corruption naming the table, by a mount's read-write Open and by the
// read-only opens of clonefs check and info, and RocksDB never aborts the
// process on one (SPEC §7: a clear message, a non-zero exit, nothing lost).
//
// RocksDB 7.8.3 parses a table's properties block before verifying its
// checksum, and Debian's build keeps assert(): without the check of
// metadata/table_check.h, a flipped high bit at the end of that block aborts
// the opening process (DataBlockHashIndex::Initialize). So the opens run in
// a child process (md_child opens), one store per line; a child that dies
// is a failure of that case, and a new child takes the next one.
//
// The store: 16 bitmap chunks of random bits, committed and closed cleanly,
// so each column family has one table (the regions table has several data
// blocks). Flipped, one at a time, in each table: bytes of every block the
// check reads when RocksDB opens a table (metaindex, properties, index: the
// first, middle and last bytes, the restart count at the end of the block,
// the trailer's compression type and checksum), bytes of the footer, and
// bytes spread over the data blocks (which RocksDB verifies itself before it
// reads them, when Open reads the bitmap).
//
// CLONEFS_TEST_SST_EVERY_BYTE=1 (a test-only switch) flips a low and a high
// bit of every byte of every table instead (of every 61st in data blocks):
// minutes, not seconds.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "child_process.h"
#include "md_test_util.h"
#include "metadata/metadata.h"
#include "metadata/table_check.h"

namespace clonefs::metadata {
namespace {

using testing::ChildProcess;
using testing::CopyDir;
using testing::MustOpen;
using testing::Options;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

namespace fs = std::filesystem;

constexpr uint64_t kChunkRegions = 32768;
constexpr uint64_t kRegions = 16 * kChunkRegions;

// The blocks CheckTable verifies in an intact table.
std::vector<TableBlock> BlocksOf(const std::string& name, const std::string& bytes) {
  auto read = [&](uint64_t off, size_t n, std::string* out) {
    *out = bytes.substr(off, n);
    return Status::OK();
  };
  auto blocks = CheckTable(read, bytes.size(), name);
  EXPECT_TRUE(blocks.ok()) << blocks.status().ToString();
  return blocks.ok() ? *blocks : std::vector<TableBlock>{};
}

// What holds byte `off` of a table whose checked blocks are `blocks`.
std::string Locate(uint64_t off, const std::vector<TableBlock>& blocks, uint64_t size) {
  if (off >= size - kTableFooterSize) return "footer";
  for (const TableBlock& b : blocks) {
    if (off >= b.offset && off < b.offset + b.size) return b.what + " block";
    if (off >= b.offset + b.size && off < b.offset + b.size + 5) return b.what + " trailer";
  }
  return "data blocks";
}

struct Flip {
  uint64_t offset;
  char bit;
  std::string where;
};

// The sample described at the top, for one table.
std::vector<Flip> SampleFlips(const std::string& name, const std::string& bytes) {
  std::vector<Flip> flips;
  const std::vector<TableBlock> blocks = BlocksOf(name, bytes);
  if (std::getenv("CLONEFS_TEST_SST_EVERY_BYTE") != nullptr) {
    for (const char bit : {'\x01', '\x80'}) {
      for (uint64_t i = 0; i < bytes.size(); ++i) {
        const std::string where = Locate(i, blocks, bytes.size());
        if (where != "data blocks" || i % 61 == 0) flips.push_back({i, bit, where});
      }
    }
    return flips;
  }
  EXPECT_EQ(blocks.size(), 3u) << "metaindex, properties, index";
  uint64_t data_end = bytes.size() - kTableFooterSize;
  for (const TableBlock& b : blocks) {
    data_end = std::min(data_end, b.offset);
    const std::string w = b.what + " block";
    for (uint64_t at : {b.offset, b.offset + b.size / 2}) flips.push_back({at, '\x80', w});
    for (uint64_t k = 1; k <= 4; ++k) {  // the restart count; its high bit marks a hash index
      flips.push_back({b.offset + b.size - k, k == 1 ? '\x80' : '\x01', w});
    }
    flips.push_back({b.offset + b.size, '\x01', b.what + " trailer"});      // compression type
    flips.push_back({b.offset + b.size + 1, '\x80', b.what + " trailer"});  // checksum
  }
  const uint64_t footer = bytes.size() - kTableFooterSize;
  const uint64_t step = testing::UnderSanitizer() ? 3 : 1;
  for (uint64_t i = footer; i < bytes.size(); i += step) {
    flips.push_back({i, (i - footer) % 2 == 0 ? '\x01' : '\x80', "footer"});
  }
  const int spread = testing::Scaled(12, 3);
  for (int k = 0; k < spread; ++k) {
    flips.push_back({data_end * static_cast<uint64_t>(k) / static_cast<uint64_t>(spread),
                     k % 2 == 0 ? '\x01' : '\x80', "data blocks"});
  }
  return flips;
}

class SstDamage : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { signal(SIGPIPE, SIG_IGN); }  // writes to a dead child

  void SetUp() override {
    MetadataOptions o = Options(live_.Sub("md"), kRegions);
    {
      auto md = MustOpen(o);
      ASSERT_TRUE(md);
      std::mt19937_64 rng(20261130);  // fixed: the sample's positions depend on the tables
      for (uint64_t r = 0; r < kRegions; ++r) {
        if (rng() & 1) {
          ASSERT_TRUE(md->SetRegionHydrated(r).ok());
        }
      }
      ASSERT_TRUE(md->Commit().ok());
      hydrated_ = md->NrHydratedRegions();
    }  // a clean close flushes each column family into one table
    pristine_ = live_.Sub("md");
    for (const auto& e : fs::directory_iterator(pristine_)) {
      if (e.path().extension() == ".sst") tables_.push_back(e.path().filename().string());
    }
    std::sort(tables_.begin(), tables_.end());
    ASSERT_EQ(tables_.size(), 2u) << "one table per column family";
  }

  // Opens `dir` in the child ("rw" or "ro"); "" if the child died on it
  // (then *death says how, and the next call starts a new child).
  std::string OpenInChild(const std::string& mode, const std::string& dir, std::string* death) {
    if (!child_) {
      child_ = std::make_unique<ChildProcess>(
          std::vector<std::string>{MD_CHILD_PATH, "opens", "-", std::to_string(kRegions)});
      EXPECT_TRUE(child_->started());
    }
    std::string answer;
    if (child_->WriteLine(mode + " " + dir)) answer = child_->ReadLine();
    if (answer.empty()) {
      const int rc = child_->Wait();
      *death = rc < 0 ? "killed by signal " + std::to_string(-rc) : "exited " + std::to_string(rc);
      child_.reset();
    }
    return answer;
  }

  // Damages byte `f.offset` of `table` in a fresh copy of the store, opens it
  // as `mode`, and expects a refusal naming the table, and the table as
  // damaged (nothing rewritten). Counts the outcome in outcomes_ (by what
  // holds the byte); returns false if the open was not refused.
  bool ExpectRefused(const std::string& mode, const std::string& table, const std::string& bytes,
                     const Flip& f) {
    const std::string dir = work_.Sub("md");
    fs::remove_all(dir);
    CopyDir(pristine_, dir);
    std::string damaged = bytes;
    damaged[f.offset] ^= f.bit;
    WriteFile(dir + "/" + table, damaged);
    std::string death;
    const std::string answer = OpenInChild(mode, dir, &death);
    const std::string what = mode + " open, " + table + " byte " + std::to_string(f.offset) +
                             " ^ " + std::to_string(static_cast<uint8_t>(f.bit)) + " (" + f.where +
                             ")";
    Outcome& counts = outcomes_[f.where];
    if (answer.empty()) {
      ++counts.died;
      ADD_FAILURE() << what << ": the opening process died (" << death << ")";
      return false;
    }
    if (answer.rfind("corruption: ", 0) != 0 || answer.find(table) == std::string::npos) {
      ++(answer.rfind("OK ", 0) == 0 ? counts.opened : counts.other);
      ADD_FAILURE() << what << ": " << answer;
      return false;
    }
    if (counts.refused++ == 0) counts.example = answer;
    EXPECT_EQ(ReadFile(dir + "/" + table), damaged) << what << ": the table was rewritten";
    return true;
  }

  // Per place in the table: how the opens went.
  struct Outcome {
    int refused = 0, died = 0, opened = 0, other = 0;
    std::string example;  // the first refusal
  };
  void PrintOutcomes() const {
    for (const auto& [where, c] : outcomes_) {
      printf("  %-28s refused %5d  process died %5d  opened %5d  other %5d\n    %s\n",
             where.c_str(), c.refused, c.died, c.opened, c.other, c.example.c_str());
    }
  }

  TempDir live_{TempDir::kMemory}, work_{TempDir::kMemory};
  std::map<std::string, Outcome> outcomes_;
  std::string pristine_;
  std::vector<std::string> tables_;
  uint64_t hydrated_ = 0;
  std::unique_ptr<ChildProcess> child_;
};

TEST_F(SstDamage, IntactStoreOpens) {
  std::string death;
  for (const char* mode : {"rw", "ro"}) {
    EXPECT_EQ(OpenInChild(mode, pristine_, &death), "OK " + std::to_string(hydrated_))
        << mode << " " << death;
  }
}

TEST_F(SstDamage, EveryBlockOfEveryTableIsRefusedWithoutAbort) {
  int cases = 0, failed = 0;
  for (const std::string& table : tables_) {
    const std::string bytes = ReadFile(pristine_ + "/" + table);
    const std::vector<Flip> flips = SampleFlips(table, bytes);
    for (size_t i = 0; i < flips.size(); ++i) {
      // Read-write (mount) for each, read-only (check, info) for every third.
      for (const char* mode : {"rw", "ro"}) {
        if (mode[0] == 'r' && mode[1] == 'o' && i % 3 != 0) continue;
        ++cases;
        failed += !ExpectRefused(mode, table, bytes, flips[i]);
      }
    }
  }
  PrintOutcomes();
  EXPECT_EQ(failed, 0) << "of " << cases << " damaged stores";
  EXPECT_GT(cases, 100);
}

// The refusal names the table, the offset of the damaged block and the
// block; a mount adds what to do (src/fuse/preflight.cc).
TEST_F(SstDamage, MessageNamesTableOffsetAndBlock) {
  const std::string table = tables_.back();
  const std::string bytes = ReadFile(pristine_ + "/" + table);
  std::vector<TableBlock> blocks = BlocksOf(table, bytes);
  ASSERT_EQ(blocks.size(), 3u);
  const TableBlock& properties = blocks[1];
  ASSERT_EQ(properties.what, "rocksdb.properties");
  const std::string dir = work_.Sub("md");
  CopyDir(pristine_, dir);
  std::string damaged = bytes;
  damaged[properties.offset + properties.size - 1] ^= '\x80';
  WriteFile(dir + "/" + table, damaged);
  std::string death;
  const std::string answer = OpenInChild("rw", dir, &death);
  EXPECT_EQ(answer.rfind("corruption: ", 0), 0u) << answer << death;
  EXPECT_NE(answer.find(table + " is damaged at offset " + std::to_string(properties.offset) +
                        ": checksum mismatch in the rocksdb.properties block"),
            std::string::npos)
      << answer << death;
}

}  // namespace
}  // namespace clonefs::metadata
