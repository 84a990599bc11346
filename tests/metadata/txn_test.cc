// Component tests of marks, queries and transactions over a real store:
// edges, the two-phase commit, read-only mode, abort, failures, space.
#include <gtest/gtest.h>
#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "md_test_util.h"
#include "metadata/chunk_codec.h"
#include "metadata/fault_fs.h"
#include "metadata/metadata.h"

namespace clonefs::metadata {
namespace {

using testing::MustOpen;
using testing::Options;
using testing::Snapshot;
using testing::TempDir;

std::unique_ptr<Metadata> Reopen(std::unique_ptr<Metadata>* md, const MetadataOptions& o) {
  md->reset();
  return MustOpen(o);
}

TEST(MetadataMarks, EdgesAndRangeChecks) {
  TempDir t;
  const uint64_t n = 2 * kRegionsPerChunk + 3;
  MetadataOptions o = Options(t.path(), n);
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  EXPECT_TRUE(md->SetRegionHydrated(n).IsInvalidArgument());
  EXPECT_TRUE(md->SetRegionHydrated(UINT64_MAX).IsInvalidArgument());
  EXPECT_TRUE(md->CondSetRange(1, UINT64_MAX).IsInvalidArgument());  // start + n wraps
  EXPECT_TRUE(md->CondSetRange(UINT64_MAX, 1).IsInvalidArgument());
  EXPECT_TRUE(md->CondSetRange(UINT64_MAX - 1, 3).IsInvalidArgument());
  EXPECT_TRUE(md->CondSetRange(n - 1, 2).IsInvalidArgument());
  EXPECT_TRUE(md->CondSetRange(n, 0).IsInvalidArgument());
  EXPECT_TRUE(md->CondSetRange(0, 0).ok());
  EXPECT_FALSE(md->ChangedThisTransaction());
  EXPECT_EQ(md->NrHydratedRegions(), 0u);

  ASSERT_TRUE(md->SetRegionHydrated(0).ok());
  ASSERT_TRUE(md->SetRegionHydrated(n - 1).ok());
  EXPECT_TRUE(md->IsRegionHydrated(0));
  EXPECT_TRUE(md->IsRegionHydrated(n - 1));
  EXPECT_FALSE(md->IsRegionHydrated(n));
  EXPECT_FALSE(md->IsRegionHydrated(UINT64_MAX));
  EXPECT_TRUE(md->IsRangeHydrated(n - 1, 1));
  EXPECT_FALSE(md->IsRangeHydrated(n - 1, 2));
  EXPECT_FALSE(md->IsRangeHydrated(UINT64_MAX, 2));
  EXPECT_TRUE(md->IsRangeHydrated(UINT64_MAX, 0));
  EXPECT_EQ(md->FindNextHydratedRegion(1), n - 1);
  EXPECT_EQ(md->FindNextHydratedRegion(n), n);
  EXPECT_EQ(md->FindNextHydratedRegion(UINT64_MAX), n);
  EXPECT_EQ(md->FindNextUnhydratedRegion(0), 1u);
  EXPECT_EQ(md->FindNextUnhydratedRegion(n - 1), n);
  EXPECT_EQ(md->FindNextUnhydratedRegion(UINT64_MAX), n);

  ASSERT_TRUE(md->CondSetRange(1, n - 2).ok());
  EXPECT_TRUE(md->IsHydrationDone());
  EXPECT_EQ(md->NrHydratedRegions(), n);
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 0u);
  ASSERT_TRUE(md->Commit().ok());
  EXPECT_EQ(md->NrCommittedHydratedRegions(), n);
  md = Reopen(&md, o);
  ASSERT_TRUE(md);
  EXPECT_TRUE(md->IsHydrationDone());
  EXPECT_EQ(md->FindNextUnhydratedRegion(0), n);
}

TEST(MetadataTxn, MarksAfterFreezeBelongToTheNextCommit) {
  TempDir t;
  MetadataOptions o = Options(t.path(), 1000);
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  auto frozen = md->Freeze();
  ASSERT_TRUE(frozen.ok());
  EXPECT_EQ(*frozen, 0u);
  ASSERT_TRUE(md->SetRegionHydrated(1).ok());
  ASSERT_TRUE(md->CondSetRange(10, 5).ok());
  EXPECT_TRUE(md->ChangedThisTransaction());
  frozen = md->Freeze();
  ASSERT_TRUE(frozen.ok());
  EXPECT_EQ(*frozen, 6u);
  ASSERT_TRUE(md->SetRegionHydrated(2).ok());  // after the freeze
  ASSERT_TRUE(md->CondSetRange(12, 10).ok());  // overlaps the frozen range
  ASSERT_TRUE(md->PersistFrozen().ok());
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 6u);
  EXPECT_EQ(md->NrHydratedRegions(), 14u);  // 6 frozen + 2 + 15..21
  EXPECT_TRUE(md->ChangedThisTransaction());
  md = Reopen(&md, o);
  ASSERT_TRUE(md);
  std::vector<bool> want(1000, false);
  for (uint64_t r : {1, 10, 11, 12, 13, 14}) want[r] = true;
  EXPECT_EQ(Snapshot(*md), want);
}

TEST(MetadataTxn, UnpersistedFreezeMergesIntoTheNext) {
  TempDir t;
  MetadataOptions o = Options(t.path(), 100000);
  auto md = MustOpen(o);
  ASSERT_TRUE(md->SetRegionHydrated(5).ok());
  EXPECT_EQ(*md->Freeze(), 1u);
  ASSERT_TRUE(md->SetRegionHydrated(90000).ok());
  EXPECT_EQ(*md->Freeze(), 2u);
  ASSERT_TRUE(md->PersistFrozen().ok());
  EXPECT_FALSE(md->ChangedThisTransaction());
  md = Reopen(&md, o);
  EXPECT_TRUE(md->IsRegionHydrated(5));
  EXPECT_TRUE(md->IsRegionHydrated(90000));
  EXPECT_EQ(md->NrHydratedRegions(), 2u);
}

TEST(MetadataTxn, CommitWithoutChangesDoesNoIo) {
  TempDir t;
  MetadataOptions o = Options(t.path(), 1000);
  o.fault_fs = std::make_shared<FaultInjectionFs>();
  auto md = MustOpen(o);
  ASSERT_TRUE(md->SetRegionHydrated(3).ok());
  ASSERT_TRUE(md->Commit().ok());
  o.fault_fs->SetFailWrites(true);
  o.fault_fs->SetFailSyncs(true);
  EXPECT_TRUE(md->Commit().ok());
  EXPECT_TRUE(md->SetRegionHydrated(3).ok());  // already hydrated: no change
  EXPECT_FALSE(md->ChangedThisTransaction());
  EXPECT_TRUE(md->Commit().ok());
  EXPECT_EQ(o.fault_fs->InjectedFailures(), 0u);
  // A real change does reach the filesystem (and fails here).
  ASSERT_TRUE(md->SetRegionHydrated(4).ok());
  EXPECT_FALSE(md->Commit().ok());
  EXPECT_GT(o.fault_fs->InjectedFailures(), 0u);
  o.fault_fs->SetFailWrites(false);
  o.fault_fs->SetFailSyncs(false);
}

TEST(MetadataTxn, ReadOnlyModeRefusesChangesButAnswersQueries) {
  TempDir t;
  MetadataOptions o = Options(t.path(), 1000);
  auto md = MustOpen(o);
  ASSERT_TRUE(md->SetRegionHydrated(1).ok());
  ASSERT_TRUE(md->Commit().ok());
  ASSERT_TRUE(md->SetRegionHydrated(2).ok());
  md->SetReadOnly();
  EXPECT_TRUE(md->IsReadOnly());
  EXPECT_TRUE(md->SetRegionHydrated(3).IsReadOnly());
  EXPECT_TRUE(md->SetRegionHydrated(1).IsReadOnly());
  EXPECT_TRUE(md->CondSetRange(0, 5).IsReadOnly());
  EXPECT_TRUE(md->Freeze().status().IsReadOnly());
  EXPECT_TRUE(md->PersistFrozen().IsReadOnly());
  EXPECT_TRUE(md->Commit().IsReadOnly());
  EXPECT_TRUE(md->IsRegionHydrated(2));
  EXPECT_EQ(md->NrHydratedRegions(), 2u);
  md->SetReadWrite();
  EXPECT_FALSE(md->IsReadOnly());
  ASSERT_TRUE(md->SetRegionHydrated(3).ok());
  ASSERT_TRUE(md->Commit().ok());
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 3u);
}

TEST(MetadataTxn, ReadOnlyOpenSeesTheStoreAndCannotChangeIt) {
  TempDir t;
  MetadataOptions o = Options(t.path(), 1000);
  {
    auto md = MustOpen(o);
    ASSERT_TRUE(md->CondSetRange(100, 50).ok());
    ASSERT_TRUE(md->Commit().ok());
  }
  MetadataOptions ro = o;
  ro.read_only = true;
  auto md = MustOpen(ro);
  ASSERT_TRUE(md);
  EXPECT_TRUE(md->IsReadOnly());
  EXPECT_EQ(md->NrHydratedRegions(), 50u);
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 50u);
  md->SetReadWrite();
  EXPECT_TRUE(md->IsReadOnly());
  EXPECT_TRUE(md->SetRegionHydrated(1).IsReadOnly());
  EXPECT_TRUE(md->Commit().IsReadOnly());
  EXPECT_TRUE(md->Abort().ok());  // rollback is a reload; allowed
  EXPECT_EQ(md->NrHydratedRegions(), 50u);
  EXPECT_TRUE(md->GetSpace().ok());
  EXPECT_TRUE(Metadata::Open(o).status().IsBusy());
}

TEST(MetadataTxn, AbortRollsBackToTheLastCommit) {
  TempDir t;
  MetadataOptions o = Options(t.path(), 3 * kRegionsPerChunk);
  auto md = MustOpen(o);
  ASSERT_TRUE(md->CondSetRange(0, 40000).ok());
  ASSERT_TRUE(md->Commit().ok());
  const std::vector<bool> committed = Snapshot(*md);
  ASSERT_TRUE(md->SetRegionHydrated(70000).ok());
  ASSERT_TRUE(md->CondSetRange(39990, 100).ok());
  ASSERT_TRUE(md->Freeze().ok());
  ASSERT_TRUE(md->SetRegionHydrated(80000).ok());
  md->SetReadOnly();
  ASSERT_TRUE(md->Abort().ok());
  EXPECT_EQ(Snapshot(*md), committed);
  EXPECT_EQ(md->NrHydratedRegions(), 40000u);
  EXPECT_FALSE(md->ChangedThisTransaction());
  md->SetReadWrite();
  ASSERT_TRUE(md->Commit().ok());  // nothing left to commit
  md = Reopen(&md, o);
  EXPECT_EQ(Snapshot(*md), committed);
}

TEST(MetadataTxn, ReloadDiscardsInCoreMarks) {
  TempDir t;
  auto md = MustOpen(Options(t.path(), 1000));
  ASSERT_TRUE(md->SetRegionHydrated(1).ok());
  ASSERT_TRUE(md->Commit().ok());
  ASSERT_TRUE(md->SetRegionHydrated(2).ok());
  md->SetReadOnly();
  ASSERT_TRUE(md->ReloadInCoreBitset().ok());
  EXPECT_TRUE(md->IsRegionHydrated(1));
  EXPECT_FALSE(md->IsRegionHydrated(2));
  EXPECT_FALSE(md->ChangedThisTransaction());
  EXPECT_EQ(md->NrHydratedRegions(), 1u);
}

// A failed commit: Failed until Abort; Abort (after the fault clears) yields
// the last commit or, as a disk might have written it, the failed one.
TEST(MetadataTxn, FailedCommitNeedsAbort) {
  for (const bool fail_sync : {false, true}) {
    SCOPED_TRACE(fail_sync ? "sync fails" : "write fails");
    TempDir t;
    MetadataOptions o = Options(t.path(), 2 * kRegionsPerChunk);
    o.fault_fs = std::make_shared<FaultInjectionFs>();
    auto md = MustOpen(o);
    ASSERT_TRUE(md->CondSetRange(0, 10).ok());
    ASSERT_TRUE(md->Commit().ok());
    const std::vector<bool> last = Snapshot(*md);
    ASSERT_TRUE(md->SetRegionHydrated(40000).ok());
    std::vector<bool> failed = Snapshot(*md);
    if (fail_sync) {
      o.fault_fs->SetFailSyncs(true);
    } else {
      o.fault_fs->SetFailWrites(true);
    }
    ASSERT_EQ(*md->Freeze(), 1u);
    Status s = md->PersistFrozen();
    EXPECT_TRUE(s.IsIoError()) << s.ToString();
    EXPECT_TRUE(md->Freeze().status().IsFailed());
    EXPECT_TRUE(md->PersistFrozen().IsFailed());
    EXPECT_TRUE(md->Commit().IsFailed());
    EXPECT_TRUE(md->SetRegionHydrated(50000).ok());  // marks still work
    md->SetReadOnly();
    // Abort while the fault persists rolls back from the open store, but
    // cannot reopen it: commits keep failing, without touching RocksDB.
    ASSERT_TRUE(md->Abort().ok());
    EXPECT_EQ(Snapshot(*md), last);
    md->SetReadWrite();
    EXPECT_TRUE(md->Freeze().status().IsFailed());
    const uint64_t injected = o.fault_fs->InjectedFailures();
    EXPECT_TRUE(md->Commit().IsFailed());
    EXPECT_EQ(o.fault_fs->InjectedFailures(), injected);
    md->SetReadOnly();
    o.fault_fs->SetFailWrites(false);
    o.fault_fs->SetFailSyncs(false);
    ASSERT_TRUE(md->Abort().ok());
    const std::vector<bool> after = Snapshot(*md);
    EXPECT_TRUE(after == last || after == failed);
    EXPECT_FALSE(md->IsRegionHydrated(50000));
    EXPECT_EQ(md->NrCommittedHydratedRegions(), testing::CountTrue(after));
    md->SetReadWrite();
    ASSERT_TRUE(md->SetRegionHydrated(60000).ok());
    ASSERT_TRUE(md->Commit().ok());
    std::vector<bool> want = after;
    want[60000] = true;
    md = Reopen(&md, o);
    EXPECT_EQ(Snapshot(*md), want);
  }
}

TEST(MetadataTxn, SpaceFigures) {
  TempDir t;
  auto md = MustOpen(Options(t.path(), 8 * kRegionsPerChunk));
  auto before = md->GetSpace();
  ASSERT_TRUE(before.ok());
  EXPECT_GT(before->used_blocks, 0u);
  EXPECT_GE(before->total_blocks, before->used_blocks);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 60000; ++i) ASSERT_TRUE(md->SetRegionHydrated(rng() % md->nr_regions()).ok());
  ASSERT_TRUE(md->Commit().ok());
  auto after = md->GetSpace();
  ASSERT_TRUE(after.ok());
  EXPECT_GT(after->used_blocks, before->used_blocks);  // ~8 raw chunks in the WAL
  uint64_t bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(t.path())) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && !name.starts_with("LOG") && name != "LOCK") bytes += e.file_size();
  }
  EXPECT_EQ(after->used_blocks, (bytes + 4095) / 4096);
  // The logs beside the store are not metadata: RocksDB's info log (1 MiB
  // before it rotates) and the daemon's log (4 MiB) and record would
  // otherwise outweigh the store itself many times over.
  for (const char* name : {"LOG.old.1700000000000000", "clonefs.log", "clonefs.log.1",
                           "daemon.info", "000123.log.bak"}) {
    std::ofstream(t.path() + "/" + name) << std::string(1 << 20, 'x');
  }
  auto with_logs = md->GetSpace();
  ASSERT_TRUE(with_logs.ok());
  EXPECT_EQ(with_logs->used_blocks, after->used_blocks);
  struct statvfs v;
  ASSERT_EQ(statvfs(t.path().c_str(), &v), 0);
  const double free_blocks = static_cast<double>(v.f_bavail) * v.f_frsize / 4096;
  EXPECT_NEAR(static_cast<double>(after->free_blocks()), free_blocks, free_blocks * 0.01 + 256);
}

// 2^32 regions (16 TiB of 4 KiB regions): 64-bit arithmetic everywhere.
TEST(MetadataLarge, FourBillionRegions) {
  TempDir t;
  const uint64_t n = 1ull << 32;
  MetadataOptions o = Options(t.path(), n);
  o.image_size = n * 4096 - 1;  // partial last region
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  EXPECT_EQ(md->nr_regions(), n);
  ASSERT_TRUE(md->SetRegionHydrated(0).ok());
  ASSERT_TRUE(md->SetRegionHydrated(n - 1).ok());
  ASSERT_TRUE(md->SetRegionHydrated((1ull << 31) + 7).ok());
  ASSERT_TRUE(md->CondSetRange(n - 100000, 50000).ok());
  EXPECT_TRUE(md->CondSetRange(n - 10, 11).IsInvalidArgument());
  EXPECT_TRUE(md->SetRegionHydrated(n).IsInvalidArgument());
  ASSERT_TRUE(md->Commit().ok());
  md = Reopen(&md, o);
  ASSERT_TRUE(md);
  EXPECT_EQ(md->NrHydratedRegions(), 50003u);
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 50003u);
  EXPECT_TRUE(md->IsRegionHydrated(n - 1));
  EXPECT_TRUE(md->IsRegionHydrated((1ull << 31) + 7));
  // The searches below scan 256 MiB of bitmap each, except under TSan, where
  // every word a scan reads is an instrumented atomic load (95% of the test's
  // 24 s): there they start 4 chunks before what they find, still crossing
  // chunk boundaries and 2^31. A scan has no threads for TSan to check; the
  // normal and ASan builds keep the long scans.
#if defined(__SANITIZE_THREAD__)
  const uint64_t from_low = (1ull << 31) - 4 * kRegionsPerChunk;
  const uint64_t from_high = n - 100000 - 4 * kRegionsPerChunk;
#else
  const uint64_t from_low = 1, from_high = (1ull << 31) + 8;
#endif
  EXPECT_EQ(md->FindNextHydratedRegion(from_low), (1ull << 31) + 7);
  EXPECT_EQ(md->FindNextHydratedRegion(from_high), n - 100000);
  EXPECT_EQ(md->FindNextUnhydratedRegion(n - 100000), n - 50000);
  EXPECT_TRUE(md->IsRangeHydrated(n - 100000, 50000));
  EXPECT_FALSE(md->IsHydrationDone());
  auto space = md->GetSpace();
  ASSERT_TRUE(space.ok());
}

}  // namespace
// A metadata directory removed while open (rm -rf DEST.clonefs): RocksDB
// goes on writing and syncing into unlinked files, so a commit would be
// reported durable and be gone at the next restart. The commit fails
// instead, and Abort rolls back from the store still open. Once the clone is
// complete the store is no longer needed and commits go on.
TEST(MetadataTxn, CommitFailsOnceTheDirectoryIsRemoved) {
  TempDir t;
  const std::string dir = t.Sub("md");
  auto md = MustOpen(Options(dir, 100));
  ASSERT_TRUE(md->SetRegionHydrated(1).ok());
  ASSERT_TRUE(md->Commit().ok());
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(md->SetRegionHydrated(2).ok());
  Status s = md->Commit();
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_NE(s.message().find("was removed"), std::string::npos) << s.ToString();
  s = md->Commit();  // also an empty one: nothing is durable there any more
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  md->SetReadOnly();
  ASSERT_TRUE(md->Abort().ok());
  EXPECT_TRUE(md->IsRegionHydrated(1));
  EXPECT_FALSE(md->IsRegionHydrated(2));
  EXPECT_EQ(md->NrHydratedRegions(), 1u);
}

TEST(MetadataTxn, CommitFailsOnceTheStoreFilesAreRemoved) {
  TempDir t;
  auto md = MustOpen(Options(t.path(), 100));
  for (const auto& e : std::filesystem::directory_iterator(t.path())) {
    std::filesystem::remove(e.path());
  }
  ASSERT_TRUE(md->SetRegionHydrated(2).ok());
  Status s = md->Commit();
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_NE(s.message().find("CURRENT"), std::string::npos) << s.ToString();
}

TEST(MetadataTxn, ACompleteCloneCommitsWithoutItsDirectory) {
  TempDir t;
  const std::string dir = t.Sub("md");
  auto md = MustOpen(Options(dir, 100));
  ASSERT_TRUE(md->CondSetRange(0, 100).ok());
  ASSERT_TRUE(md->Commit().ok());
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(md->Commit().ok());
}

}  // namespace clonefs::metadata
