// A full metadata file system (SPEC §5 failure rules, §7a): RocksDB's writes
// fail with ENOSPC (FaultInjectionFs::SetNoSpace). Nothing may abort: the
// failed commit is rolled back while the file system is still full, later
// commits fail without any RocksDB write, the store closes, a reopen while
// full is refused with NoSpace, and once space is back nothing committed
// before is lost.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "md_test_util.h"
#include "metadata/chunk_codec.h"
#include "metadata/fault_fs.h"
#include "metadata/metadata.h"
#include "metadata/rocks_info_log.h"

namespace clonefs::metadata {
namespace {

using testing::MustOpen;
using testing::Options;
using testing::TempDir;

class MetadataNoSpace : public ::testing::Test {
 protected:
  MetadataNoSpace() : o_(Options(t_.path(), 3 * kRegionsPerChunk)) {
    o_.fault_fs = std::make_shared<FaultInjectionFs>();
  }
  // Region 7 and 70000 committed, then region 500 and 90000 marked; the
  // file system fills up and their commit fails.
  std::unique_ptr<Metadata> FailACommit() {
    auto md = MustOpen(o_);
    EXPECT_TRUE(md->SetRegionHydrated(7).ok());
    EXPECT_TRUE(md->SetRegionHydrated(70000).ok());
    EXPECT_TRUE(md->Commit().ok());
    EXPECT_TRUE(md->SetRegionHydrated(500).ok());
    EXPECT_TRUE(md->SetRegionHydrated(90000).ok());
    fs().SetNoSpace(true);
    Status s = md->Commit();
    EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
    return md;
  }
  void ExpectLastCommit(const Metadata& md) {
    EXPECT_TRUE(md.IsRegionHydrated(7));
    EXPECT_TRUE(md.IsRegionHydrated(70000));
    EXPECT_FALSE(md.IsRegionHydrated(500));
    EXPECT_FALSE(md.IsRegionHydrated(90000));
    EXPECT_EQ(md.NrHydratedRegions(), 2u);
    EXPECT_EQ(md.NrCommittedHydratedRegions(), 2u);
  }
  FaultInjectionFs& fs() { return *o_.fault_fs; }

  TempDir t_;
  MetadataOptions o_;
};

TEST_F(MetadataNoSpace, FailedCommitRollsBackWhileFullAndLaterCommitsDoNoIo) {
  auto md = FailACommit();
  EXPECT_TRUE(md->Freeze().status().IsFailed());
  EXPECT_TRUE(md->Commit().IsFailed());
  md->SetReadOnly();
  ASSERT_TRUE(md->Abort().ok());  // the file system is still full
  ExpectLastCommit(*md);
  EXPECT_FALSE(md->ChangedThisTransaction());
  EXPECT_TRUE(md->GetSpace().ok());

  // Every later commit fails at once: no RocksDB call, no injected failure.
  md->SetReadWrite();
  ASSERT_TRUE(md->SetRegionHydrated(600).ok());
  const uint64_t injected = fs().InjectedFailures();
  for (int i = 0; i < 3; ++i) {
    Status s = md->Commit();
    EXPECT_TRUE(s.IsFailed()) << s.ToString();
  }
  EXPECT_EQ(fs().InjectedFailures(), injected);
  md.reset();  // closes without touching the failed writers

  // A reopen while still full is refused with NoSpace, and changes nothing.
  auto again = Metadata::Open(o_);
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(again.status().IsNoSpace()) << again.status().ToString();

  fs().SetNoSpace(false);
  md = MustOpen(o_);
  ASSERT_TRUE(md);
  ExpectLastCommit(*md);
  ASSERT_TRUE(md->SetRegionHydrated(600).ok());
  ASSERT_TRUE(md->Commit().ok());
  md.reset();
  md = MustOpen(o_);
  EXPECT_TRUE(md->IsRegionHydrated(600));
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 3u);
}

TEST_F(MetadataNoSpace, AbortReopensTheStoreOnceSpaceIsBack) {
  auto md = FailACommit();
  md->SetReadOnly();
  ASSERT_TRUE(md->Abort().ok());
  fs().SetNoSpace(false);
  md->SetReadWrite();
  EXPECT_TRUE(md->Commit().IsFailed());  // not reopened yet
  md->SetReadOnly();
  ASSERT_TRUE(md->Abort().ok());  // reopens
  ExpectLastCommit(*md);
  md->SetReadWrite();
  ASSERT_TRUE(md->SetRegionHydrated(90000).ok());
  ASSERT_TRUE(md->Commit().ok());
  md.reset();
  md = MustOpen(o_);
  EXPECT_TRUE(md->IsRegionHydrated(7));
  EXPECT_TRUE(md->IsRegionHydrated(90000));
  EXPECT_FALSE(md->IsRegionHydrated(500));
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 3u);
}

// Repeated failures while full: every commit attempt and every Abort returns
// a clean error or OK, never an abort of the process.
TEST_F(MetadataNoSpace, RepeatedAttemptsWhileFullFailCleanly) {
  auto md = FailACommit();
  for (int i = 0; i < 5; ++i) {
    md->SetReadOnly();
    Status a = md->Abort();  // the first rolls back; later ones retry the reopen
    EXPECT_TRUE(i == 0 ? a.ok() : a.IsNoSpace()) << i << ": " << a.ToString();
    md->SetReadWrite();
    EXPECT_TRUE(md->SetRegionHydrated(1000 + i).ok());
    EXPECT_FALSE(md->Commit().ok());
  }
  md.reset();
  fs().SetNoSpace(false);
  md = MustOpen(o_);
  ExpectLastCommit(*md);
}

// A settings record that cannot be written (ENOSPC) also stops commits, at
// once and without I/O, until Abort has reopened the store.
TEST_F(MetadataNoSpace, AFailedSettingsWriteStopsCommitsUntilAbort) {
  auto md = MustOpen(o_);
  ASSERT_TRUE(md->SetRegionHydrated(7).ok());
  ASSERT_TRUE(md->Commit().ok());
  fs().SetNoSpace(true);
  Status s = md->PutSettings("settings");
  EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
  ASSERT_TRUE(md->SetRegionHydrated(8).ok());
  const uint64_t injected = fs().InjectedFailures();
  Result<uint64_t> f = md->Freeze();
  EXPECT_TRUE(f.status().IsNoSpace()) << f.status().ToString();
  EXPECT_TRUE(md->PutSettings("settings").IsNoSpace());
  EXPECT_EQ(fs().InjectedFailures(), injected);
  md->SetReadOnly();
  ASSERT_TRUE(md->Abort().ok());
  EXPECT_FALSE(md->IsRegionHydrated(8));
  fs().SetNoSpace(false);
  ASSERT_TRUE(md->Abort().ok());  // reopens
  md->SetReadWrite();
  ASSERT_TRUE(md->SetRegionHydrated(8).ok());
  ASSERT_TRUE(md->Commit().ok());
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 2u);
}

// RocksDB's info log: lines it cannot write are dropped (its own logger
// aborted the process on the line after a failed write); it rotates at
// kMaxBytes.
TEST(RocksInfoLogTest, DropsLinesItCannotWriteAndRotates) {
  TempDir t;
  ASSERT_EQ(symlink("/dev/full", t.Sub("LOG").c_str()), 0);  // every write: ENOSPC
  {
    auto log = RocksInfoLog::Open(t.path());
    for (int i = 0; i < 100; ++i) rocksdb::Log(rocksdb::InfoLogLevel::WARN_LEVEL, log, "line %d", i);
  }
  ASSERT_EQ(unlink(t.Sub("LOG").c_str()), 0);
  auto log = RocksInfoLog::Open(t.path());
  const std::string filler(200, 'x');
  const int lines = static_cast<int>(RocksInfoLog::kMaxBytes / 200) + 100;
  for (int i = 0; i < lines; ++i) {
    rocksdb::Log(rocksdb::InfoLogLevel::INFO_LEVEL, log, "%d %s", i, filler.c_str());
  }
  ASSERT_TRUE(std::filesystem::exists(t.Sub("LOG.old")));
  EXPECT_LE(std::filesystem::file_size(t.Sub("LOG")), RocksInfoLog::kMaxBytes);
  EXPECT_LE(std::filesystem::file_size(t.Sub("LOG.old")), RocksInfoLog::kMaxBytes);
  std::ifstream f(t.Sub("LOG"));
  std::string last, line;
  while (std::getline(f, line)) last = line;
  EXPECT_NE(last.find(std::to_string(lines - 1) + " x"), std::string::npos) << last;
}

}  // namespace
}  // namespace clonefs::metadata
