// Component tests of the stored-settings record (Metadata::GetSettings,
// PutSettings, ReadSettings) and of opening a store with its own region size.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "md_test_util.h"
#include "metadata/fault_fs.h"
#include "metadata/metadata.h"

namespace clonefs::metadata {
namespace {

using testing::MustOpen;
using testing::Options;
using testing::TempDir;

TEST(MetadataSettings, PersistedAcrossReopenAndReadableWithoutOpen) {
  TempDir t;
  MetadataOptions o = Options(t.Sub("md"), 100);
  {
    auto md = MustOpen(o);
    ASSERT_TRUE(md);
    auto none = md->GetSettings();
    ASSERT_TRUE(none.ok()) << none.status().ToString();
    EXPECT_FALSE(none->has_value());
    ASSERT_TRUE(md->PutSettings(std::string("first\0blob", 10)).ok());
    ASSERT_TRUE(md->PutSettings("second").ok());  // replaces
    auto busy = Metadata::ReadSettings(o.dir);
    EXPECT_TRUE(busy.status().IsBusy()) << busy.status().ToString();
  }
  auto raw = Metadata::ReadSettings(o.dir);
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  ASSERT_TRUE(raw->has_value());
  EXPECT_EQ(**raw, "second");
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  auto again = md->GetSettings();
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ(**again, "second");
}

TEST(MetadataSettings, ReadSettingsOfNoMetadataIsNotFound) {
  TempDir t;
  EXPECT_TRUE(Metadata::ReadSettings(t.Sub("missing")).status().IsNotFound());
  EXPECT_TRUE(Metadata::ReadSettings(t.path()).status().IsNotFound());  // empty directory
  auto md = MustOpen(Options(t.Sub("md"), 10));  // formatted, no record yet
  md.reset();
  auto raw = Metadata::ReadSettings(t.Sub("md"));
  ASSERT_TRUE(raw.ok()) << raw.status().ToString();
  EXPECT_FALSE(raw->has_value());
}

TEST(MetadataSettings, FailsCleanlyInReadOnlyMode) {
  TempDir t;
  MetadataOptions o = Options(t.Sub("md"), 100);
  {
    auto md = MustOpen(o);
    ASSERT_TRUE(md);
    ASSERT_TRUE(md->PutSettings("kept").ok());
    md->SetReadOnly();  // what the engine does after a failed commit
    Status s = md->PutSettings("refused");
    EXPECT_TRUE(s.IsReadOnly()) << s.ToString();
    auto got = md->GetSettings();
    ASSERT_TRUE(got.ok() && got->has_value());
    EXPECT_EQ(**got, "kept");
    md->SetReadWrite();
    EXPECT_TRUE(md->PutSettings("stored").ok());
  }
  o.read_only = true;
  o.create_if_missing = false;
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  Status s = md->PutSettings("refused");
  EXPECT_TRUE(s.IsReadOnly()) << s.ToString();
  auto got = md->GetSettings();
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ(**got, "stored");
}

TEST(MetadataSettings, FailedCommitRefusesSettingsUntilAbortReopensTheStore) {
  TempDir t;
  MetadataOptions o = Options(t.Sub("md"), 100);
  o.fault_fs = std::make_shared<FaultInjectionFs>();
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  ASSERT_TRUE(md->PutSettings("before").ok());
  ASSERT_TRUE(md->SetRegionHydrated(3).ok());
  o.fault_fs->SetFailWrites(true);
  o.fault_fs->SetFailSyncs(true);
  EXPECT_FALSE(md->Commit().ok());
  Status s = md->PutSettings("during");
  EXPECT_TRUE(s.IsFailed()) << s.ToString();
  o.fault_fs->SetFailWrites(false);
  o.fault_fs->SetFailSyncs(false);
  md->SetReadOnly();
  ASSERT_TRUE(md->Abort().ok());  // reopens the store
  md->SetReadWrite();
  auto got = md->GetSettings();
  ASSERT_TRUE(got.ok() && got->has_value()) << got.status().ToString();
  EXPECT_EQ(**got, "before");
  EXPECT_TRUE(md->PutSettings("after").ok());
  md.reset();
  auto raw = Metadata::ReadSettings(o.dir);
  ASSERT_TRUE(raw.ok() && raw->has_value());
  EXPECT_EQ(**raw, "after");
}

// Settings calls from another thread while the commit side commits and
// aborts (each Abort after a failed commit reopens the store). Run under TSan
// and ASan to catch a use of the store while it is replaced.
TEST(MetadataSettings, SafeAgainstConcurrentCommitsAndAbortReopens) {
  TempDir t(TempDir::kMemory);
  MetadataOptions o = Options(t.Sub("md"), 4096);
  o.fault_fs = std::make_shared<FaultInjectionFs>();
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> stored{0};
  std::thread settings([&] {
    for (uint64_t i = 0; !stop.load(); ++i) {
      const std::string v = "v" + std::to_string(i);
      Status s = md->PutSettings(v);
      if (s.ok()) ++stored;
      // Any other outcome must be a clean refusal or the injected failure.
      EXPECT_TRUE(s.ok() || s.IsReadOnly() || s.IsFailed() || s.IsIoError() || s.IsNoSpace())
          << s.ToString();
      auto got = md->GetSettings();
      EXPECT_TRUE(got.ok() || got.status().IsFailed() || got.status().IsIoError())
          << got.status().ToString();
    }
  });
  const int rounds = testing::Scaled(40);
  for (int i = 0; i < rounds; ++i) {
    ASSERT_TRUE(md->SetRegionHydrated(static_cast<uint64_t>(i)).ok());
    if (i % 4 == 3) {
      o.fault_fs->SetFailSyncs(true);
      EXPECT_FALSE(md->Commit().ok());
      o.fault_fs->SetFailSyncs(false);
      md->SetReadOnly();
      ASSERT_TRUE(md->Abort().ok());
      md->SetReadWrite();
    } else {
      ASSERT_TRUE(md->Commit().ok());
    }
  }
  while (stored.load() < 3) std::this_thread::yield();
  stop.store(true);
  settings.join();
  ASSERT_TRUE(md->PutSettings("last").ok());
  md.reset();
  auto raw = Metadata::ReadSettings(o.dir);
  ASSERT_TRUE(raw.ok() && raw->has_value());
  EXPECT_EQ(**raw, "last");
}

TEST(MetadataSettings, UseStoredRegionSizeOpensWithTheRecordedOne) {
  TempDir t;
  MetadataOptions o = Options(t.Sub("md"), 64, 8192);
  ASSERT_TRUE(MustOpen(o));
  MetadataOptions again = o;
  again.region_size = 65536;  // the default a resumed mount would carry
  auto refused = Metadata::Open(again);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(refused.status().IsMismatch()) << refused.status().ToString();
  again.use_stored_region_size = true;
  auto md = MustOpen(again);
  ASSERT_TRUE(md);
  EXPECT_EQ(md->region_size(), 8192u);
  EXPECT_EQ(md->nr_regions(), 64u);
  md.reset();
  // A new store is formatted with the given region size.
  MetadataOptions fresh = Options(t.Sub("md2"), 64, 8192);
  fresh.region_size = 16384;
  fresh.use_stored_region_size = true;
  auto md2 = MustOpen(fresh);
  ASSERT_TRUE(md2);
  EXPECT_EQ(md2->region_size(), 16384u);
}

}  // namespace
}  // namespace clonefs::metadata
