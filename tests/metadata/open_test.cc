// Component tests of Metadata::Open: formatting, validation, refusal of
// foreign or mismatching stores, locking and corruption detection.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "child_process.h"
#include "md_test_util.h"
#include "metadata/chunk_codec.h"
#include "metadata/metadata.h"
#include "metadata/superblock_codec.h"
#include "raw_store.h"

namespace clonefs::metadata {
namespace {

using testing::ChildProcess;
using testing::MustOpen;
using testing::Options;
using testing::RawStore;
using testing::Snapshot;
using testing::TempDir;

bool Contains(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

TEST(MetadataOpen, FormatsANewDirectoryAndReopens) {
  TempDir t;
  MetadataOptions o = Options(t.Sub("a/b/md"), 100000);
  o.image_size -= 100;  // partial last region
  std::string uuid;
  {
    auto md = MustOpen(o);
    ASSERT_TRUE(md);
    const Superblock& sb = md->superblock();
    EXPECT_EQ(sb.format_version, kFormatVersion);
    EXPECT_EQ(sb.uuid.size(), 36u);
    EXPECT_EQ(sb.region_size, 4096u);
    EXPECT_EQ(sb.image_size, o.image_size);
    EXPECT_EQ(sb.nr_regions, 100000u);
    EXPECT_EQ(sb.source.fingerprint, o.source.fingerprint);
    EXPECT_EQ(sb.source.path, "/src.img");
    EXPECT_EQ(sb.dest.inode, 22u);
    EXPECT_NEAR(static_cast<double>(sb.created_unix_s), static_cast<double>(time(nullptr)), 60);
    EXPECT_EQ(md->NrHydratedRegions(), 0u);
    EXPECT_FALSE(md->IsHydrationDone());
    ASSERT_TRUE(md->SetRegionHydrated(7).ok());
    ASSERT_TRUE(md->CondSetRange(99990, 10).ok());
    ASSERT_TRUE(md->Commit().ok());
    uuid = sb.uuid;
  }
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  EXPECT_EQ(md->superblock().uuid, uuid);
  EXPECT_EQ(md->NrHydratedRegions(), 11u);
  EXPECT_EQ(md->NrCommittedHydratedRegions(), 11u);
  EXPECT_TRUE(md->IsRegionHydrated(7));
  EXPECT_TRUE(md->IsRangeHydrated(99990, 10));
  auto sb = Metadata::ReadSuperblock(o.dir);
  EXPECT_TRUE(sb.status().IsBusy()) << sb.status().ToString();  // we hold it
  md.reset();
  sb = Metadata::ReadSuperblock(o.dir);
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->uuid, uuid);
}

// Each open starts a new WAL; the previous one is left empty by the clean
// close. Those must not pile up, one per mount, for the life of the clone.
TEST(MetadataOpen, RepeatedOpensDoNotAccumulateWals) {
  TempDir t;
  MetadataOptions o = Options(t.Sub("md"), 1000);
  auto count_wals = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(o.dir)) {
      if (e.path().extension() == ".log") ++n;
    }
    return n;
  };
  {
    auto md = MustOpen(o);
    ASSERT_TRUE(md);
    ASSERT_TRUE(md->SetRegionHydrated(5).ok());
    ASSERT_TRUE(md->Commit().ok());
  }
  for (int i = 0; i < 8; ++i) {
    auto md = MustOpen(o);  // nothing changes: the memtables stay empty
    ASSERT_TRUE(md);
    EXPECT_EQ(md->NrCommittedHydratedRegions(), 1u);
  }
  EXPECT_LE(count_wals(), 2);
}

TEST(MetadataOpen, FormatsAnEmptyExistingDirectory) {
  TempDir t;
  auto md = MustOpen(Options(t.path(), 10));
  ASSERT_TRUE(md);
  EXPECT_TRUE(std::filesystem::exists(t.Sub("CURRENT")));
}

TEST(MetadataOpen, RefusesAForeignDirectory) {
  TempDir t;
  std::ofstream(t.Sub("notes.txt")) << "precious";
  auto r = Metadata::Open(Options(t.path(), 10));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status(), "not empty")) << r.status().ToString();
  EXPECT_TRUE(Contains(r.status(), "no clonefs metadata")) << r.status().ToString();
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(t.path()), {}), 1);
  EXPECT_TRUE(Metadata::ReadSuperblock(t.path()).status().IsInvalidArgument());
}

TEST(MetadataOpen, RefusesAFileAsDirectory) {
  TempDir t;
  std::ofstream(t.Sub("f")) << "x";
  auto r = Metadata::Open(Options(t.Sub("f"), 10));
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
}

TEST(MetadataOpen, CompletesAFormatInterruptedBeforeCurrent) {
  TempDir t;
  // What RocksDB leaves when a process dies creating a database.
  std::ofstream(t.Sub("LOCK"));
  std::ofstream(t.Sub("IDENTITY")) << "x";
  std::ofstream(t.Sub("MANIFEST-000001")) << "partial";
  std::ofstream(t.Sub("000001.dbtmp"));
  EXPECT_TRUE(Metadata::ReadSuperblock(t.path()).status().IsNotFound());
  auto md = MustOpen(Options(t.path(), 10));
  ASSERT_TRUE(md);
  ASSERT_TRUE(md->SetRegionHydrated(3).ok());
  ASSERT_TRUE(md->Commit().ok());
  md.reset();
  md = MustOpen(Options(t.path(), 10));
  ASSERT_TRUE(md);
  EXPECT_TRUE(md->IsRegionHydrated(3));
}

TEST(MetadataOpen, NotFoundWhenNotAllowedToFormat) {
  TempDir t;
  MetadataOptions o = Options(t.Sub("missing"), 10);
  o.create_if_missing = false;
  EXPECT_TRUE(Metadata::Open(o).status().IsNotFound());
  EXPECT_FALSE(std::filesystem::exists(o.dir));
  o.dir = t.path();  // exists, empty
  EXPECT_TRUE(Metadata::Open(o).status().IsNotFound());
  o.create_if_missing = true;
  o.read_only = true;
  EXPECT_TRUE(Metadata::Open(o).status().IsNotFound());
  EXPECT_TRUE(std::filesystem::is_empty(t.path()));
  EXPECT_TRUE(Metadata::ReadSuperblock(t.path()).status().IsNotFound());
  EXPECT_TRUE(Metadata::ReadSuperblock(t.Sub("missing")).status().IsNotFound());
}

TEST(MetadataOpen, ReportsEveryBadOptionAtOnce) {
  MetadataOptions o;
  o.region_size = 5000;
  auto r = Metadata::Open(o);
  ASSERT_TRUE(r.status().IsInvalidArgument());
  EXPECT_TRUE(Contains(r.status(), "no metadata directory"));
  EXPECT_TRUE(Contains(r.status(), "image size is 0"));
  EXPECT_TRUE(Contains(r.status(), "region size 5000 is not a power of two"));
  TempDir t;
  o = Options(t.path(), 10, 1ull << 31);
  EXPECT_TRUE(Contains(Metadata::Open(o).status(), "above the maximum"));
}

// One mismatch per field, with both values in the message.
struct MismatchCase {
  const char* name;
  void (*change)(MetadataOptions*);
  const char* expect;
};

const MismatchCase kMismatches[] = {
    {"region_size", [](MetadataOptions* o) { o->region_size = 8192; },
     "region size: metadata has 4096, requested 8192"},
    {"image_size", [](MetadataOptions* o) { o->image_size += 1; },
     "image size: metadata has 409600, requested 409601"},
    {"source_size", [](MetadataOptions* o) { o->source.size = 5; },
     "source size: metadata has 409600, file has 5"},
    {"source_inode", [](MetadataOptions* o) { o->source.inode = 12; },
     "source inode: metadata has 11, file has 12"},
    {"source_mtime", [](MetadataOptions* o) { o->source.mtime_ns = 2000; },
     "source mtime: metadata has 1000 ns, file has 2000 ns"},
    {"source_fingerprint", [](MetadataOptions* o) { o->source.fingerprint = 0x1234; },
     "source fingerprint differs: the source file was replaced or modified"},
    {"dest_size", [](MetadataOptions* o) { o->dest.size = 1; },
     "dest size: metadata has 409600, file has 1"},
    {"dest_inode", [](MetadataOptions* o) { o->dest.inode = 23; },
     "dest inode: metadata has 22, file has 23"},
};

TEST(MetadataOpen, MismatchNamesEachField) {
  TempDir t;
  const MetadataOptions base = Options(t.path(), 100);
  ASSERT_TRUE(MustOpen(base));
  for (const auto& c : kMismatches) {
    SCOPED_TRACE(c.name);
    MetadataOptions o = base;
    c.change(&o);
    auto r = Metadata::Open(o);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsMismatch()) << r.status().ToString();
    EXPECT_TRUE(Contains(r.status(), c.expect)) << r.status().ToString();
  }
  // Several at once, all named; the store is left alone.
  MetadataOptions o = base;
  kMismatches[0].change(&o);
  kMismatches[5].change(&o);
  auto r = Metadata::Open(o);
  EXPECT_TRUE(Contains(r.status(), "region size") && Contains(r.status(), "fingerprint"))
      << r.status().ToString();
  EXPECT_TRUE(MustOpen(base));
}

TEST(MetadataOpen, UnrecordedIdentityFieldsAreNotCompared) {
  TempDir t;
  MetadataOptions o = Options(t.path(), 100);
  o.dest.mtime_ns = 0;  // not recorded at format
  ASSERT_TRUE(MustOpen(o));
  o.dest.mtime_ns = 777;
  o.source.fingerprint = 0;  // not known now
  EXPECT_TRUE(MustOpen(o));
  // verify_identities=false skips identities but never geometry.
  o.source.inode = 999;
  EXPECT_TRUE(Metadata::Open(o).status().IsMismatch());
  o.verify_identities = false;
  EXPECT_TRUE(MustOpen(o));
  o.region_size = 65536;
  o.image_size = 100 * 4096;
  EXPECT_TRUE(Metadata::Open(o).status().IsMismatch());
}

// A store written before format 3 has no dest generation: it still opens,
// and a read-write open records the dest's generation (format 3), after
// which a dest with another generation is refused. A read-only open
// records nothing.
TEST(MetadataOpen, OlderStoreGetsTheDestGenerationRecorded) {
  TempDir t;
  MetadataOptions o = Options(t.path(), 100);
  ASSERT_TRUE(MustOpen(o));
  {  // rewrite the superblock as format 2 wrote it
    RawStore raw(t.path());
    auto sb = DecodeSuperblock(raw.Get(RawStore::kDefault, std::string(kSuperblockKey)));
    ASSERT_TRUE(sb.ok());
    sb->format_version = 2;
    raw.Put(RawStore::kDefault, std::string(kSuperblockKey), EncodeSuperblock(*sb));
  }
  MetadataOptions now = o;
  now.dest.flags |= FileIdentity::kGeneration;
  now.dest.generation = 4242;
  MetadataOptions ro = now;
  ro.read_only = true;
  ASSERT_TRUE(MustOpen(ro));
  EXPECT_EQ(Metadata::ReadSuperblock(t.path())->format_version, 2u);

  auto md = MustOpen(now);
  ASSERT_TRUE(md);
  EXPECT_EQ(md->superblock().dest.generation, 4242u);
  md.reset();
  auto sb = Metadata::ReadSuperblock(t.path());
  ASSERT_TRUE(sb.ok()) << sb.status().ToString();
  EXPECT_EQ(sb->format_version, kFormatVersion);
  EXPECT_NE(sb->dest.flags & FileIdentity::kGeneration, 0u);
  EXPECT_EQ(sb->dest.generation, 4242u);

  EXPECT_TRUE(MustOpen(now));
  MetadataOptions recreated = now;
  recreated.dest.generation = 4243;
  auto r = Metadata::Open(recreated);
  EXPECT_TRUE(r.status().IsMismatch() && Contains(r.status(), "dest inode generation"))
      << r.status().ToString();
  // A dest on a file system without generations is not compared on it.
  EXPECT_TRUE(MustOpen(o));
}

TEST(MetadataOpen, SecondOpenInThisProcessIsBusy) {
  TempDir t;
  auto md = MustOpen(Options(t.path(), 10));
  ASSERT_TRUE(md);
  for (const std::string& spelling :
       {t.path(), t.path() + "/.",
        t.path() + "/../" + std::filesystem::path(t.path()).filename().string()}) {
    auto r = Metadata::Open(Options(spelling, 10));
    ASSERT_FALSE(r.ok()) << spelling;
    EXPECT_TRUE(r.status().IsBusy()) << r.status().ToString();
    EXPECT_TRUE(Contains(r.status(), "is in use by another clonefs")) << r.status().ToString();
    EXPECT_TRUE(Contains(r.status(), "pid " + std::to_string(getpid())));
  }
  MetadataOptions ro = Options(t.path(), 10);
  ro.read_only = true;
  EXPECT_TRUE(Metadata::Open(ro).status().IsBusy());
  md.reset();
  EXPECT_TRUE(MustOpen(Options(t.path(), 10)));
}

TEST(MetadataOpen, OtherProcessHoldingTheStoreMakesOpenBusy) {
  TempDir t;
  ASSERT_TRUE(MustOpen(Options(t.path(), 10)));  // format, then release
  ChildProcess child({MD_CHILD_PATH, "hold", t.path(), "10"});
  ASSERT_TRUE(child.started());
  ASSERT_EQ(child.ReadLine(), "READY");
  auto r = Metadata::Open(Options(t.path(), 10));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsBusy()) << r.status().ToString();
  EXPECT_TRUE(Contains(
      r.status(), "in use by another clonefs process (pid " + std::to_string(child.pid()) + ")"))
      << r.status().ToString();
  EXPECT_TRUE(Metadata::ReadSuperblock(t.path()).status().IsBusy());
  child.CloseStdin();
  EXPECT_EQ(child.Wait(), 0);
  EXPECT_TRUE(MustOpen(Options(t.path(), 10)));
}

TEST(MetadataOpen, OpenInAnotherProcessWhileWeHoldItIsBusy) {
  TempDir t;
  auto md = MustOpen(Options(t.path(), 10));
  ASSERT_TRUE(md);
  ChildProcess child({MD_CHILD_PATH, "tryopen", t.path(), "10"});
  const std::string out = child.ReadAll();
  EXPECT_EQ(child.Wait(), 0) << out;
  EXPECT_NE(out.find("pid " + std::to_string(getpid())), std::string::npos) << out;
}

// --- corruption: damage a closed store with raw RocksDB writes ---

class MetadataCorruption : public ::testing::Test {
 protected:
  void SetUp() override {
    o_ = Options(t_.path(), 3 * kRegionsPerChunk + 10);
    auto md = MustOpen(o_);
    ASSERT_TRUE(md);
    ASSERT_TRUE(md->CondSetRange(0, 100).ok());
    ASSERT_TRUE(md->SetRegionHydrated(kRegionsPerChunk + 5).ok());
    ASSERT_TRUE(md->Commit().ok());
  }
  Status Reopen() {
    auto r = Metadata::Open(o_);
    return r.ok() ? Status::OK() : r.status();
  }
  TempDir t_;
  MetadataOptions o_;
};

TEST_F(MetadataCorruption, UnknownChunkTag) {
  RawStore(t_.path()).Put(RawStore::kRegions, EncodeChunkKey(1), "\x09garbage");
  Status s = Reopen();
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_TRUE(Contains(s, "chunk 1") && Contains(s, "unknown tag 9")) << s.ToString();
}

TEST_F(MetadataCorruption, TruncatedRawChunk) {
  RawStore(t_.path()).Put(RawStore::kRegions, EncodeChunkKey(0), std::string(1, '\x01') + "abc");
  Status s = Reopen();
  EXPECT_TRUE(s.IsCorruption() && Contains(s, "raw bitmap of 3 bytes")) << s.ToString();
}

TEST_F(MetadataCorruption, ChunkBeyondTheImage) {
  RawStore(t_.path()).Put(RawStore::kRegions, EncodeChunkKey(4), std::string(1, '\x02'));
  Status s = Reopen();
  EXPECT_TRUE(s.IsCorruption() && Contains(s, "beyond the image")) << s.ToString();
}

TEST_F(MetadataCorruption, BitsPastTheLastRegion) {
  std::string value(1 + kChunkBytes, '\xff');  // 0x01, then kChunkBytes bytes of 0xff
  value[0] = '\x01';
  RawStore(t_.path()).Put(RawStore::kRegions, EncodeChunkKey(3), value);
  Status s = Reopen();
  EXPECT_TRUE(s.IsCorruption() && Contains(s, "beyond the end")) << s.ToString();
}

TEST_F(MetadataCorruption, BadChunkKey) {
  RawStore(t_.path()).Put(RawStore::kRegions, "short", std::string(1, '\x02'));
  Status s = Reopen();
  EXPECT_TRUE(s.IsCorruption() && Contains(s, "key has 5 bytes")) << s.ToString();
}

TEST_F(MetadataCorruption, DamagedSuperblock) {
  {
    RawStore raw(t_.path());
    std::string sb = raw.Get(RawStore::kDefault, std::string(kSuperblockKey));
    sb[sb.size() / 2] ^= 0x40;
    raw.Put(RawStore::kDefault, std::string(kSuperblockKey), sb);
  }
  Status s = Reopen();
  EXPECT_TRUE(s.IsCorruption() && Contains(s, "checksum")) << s.ToString();
  EXPECT_TRUE(Metadata::ReadSuperblock(t_.path()).status().IsCorruption());
}

TEST_F(MetadataCorruption, MissingSuperblockWithData) {
  RawStore(t_.path()).Delete(RawStore::kDefault, std::string(kSuperblockKey));
  Status s = Reopen();
  EXPECT_TRUE(s.IsCorruption() && Contains(s, "without a clonefs superblock")) << s.ToString();
}

TEST_F(MetadataCorruption, UnexpectedColumnFamily) {
  RawStore(t_.path()).AddColumnFamily("other");
  Status s = Reopen();
  EXPECT_TRUE(s.IsCorruption() && Contains(s, "column families")) << s.ToString();
}

TEST_F(MetadataCorruption, GarbledFilesAreRefusedNotReformatted) {
  std::vector<std::string> before;
  for (const auto& e : std::filesystem::directory_iterator(t_.path())) {
    const std::string name = e.path().filename().string();
    before.push_back(name);
    if (name.rfind("MANIFEST-", 0) == 0) {
      std::ofstream f(e.path(), std::ios::binary | std::ios::trunc);
      f << std::string(300, '\x5a');
    }
  }
  Status s = Reopen();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(s.IsCorruption() || s.IsIoError()) << s.ToString();
  // Nothing was reformatted: the same files are still there.
  for (const auto& name : before) EXPECT_TRUE(std::filesystem::exists(t_.Sub(name))) << name;
}

}  // namespace
}  // namespace clonefs::metadata
