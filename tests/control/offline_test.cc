// Component tests: `clonefs info` and `clonefs check` on healthy, locked,
// mismatched and damaged metadata (real RocksDB stores in a temp dir).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "clone/settings.h"
#include "control/commands.h"
#include "control/offline.h"
#include "control/status_report.h"
#include "devices/posix_device.h"
#include "clone/identity.h"
#include "metadata/metadata.h"

#if defined(__SANITIZE_THREAD__)
// librocksdb and libstdc++ are not built with TSan. RocksDB's background
// threads copy option strings through libstdc++ under RocksDB's own locks,
// which TSan cannot see and reports, at random, as races (neither stack
// reaches code of ours). This binary starts no threads of its own, so
// ignoring accesses made from uninstrumented libraries hides nothing here.
extern "C" const char* __tsan_default_options() { return "ignore_noninstrumented_modules=1"; }
#endif

namespace clonefs::control {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kRegion = 64 * 1024;
constexpr uint64_t kImage = 40 * kRegion + 4096;  // 41 regions, last one partial

struct CmdRun {
  int rc;
  std::string out, err;
};

CmdRun Exec(int (*cmd)(const std::vector<std::string>&, const CommandIo&),
            std::vector<std::string> args) {
  std::ostringstream out, err;
  int rc = cmd(args, CommandIo{out, err, false});
  return CmdRun{rc, out.str(), err.str()};
}

void WriteFile(const std::string& path, uint64_t size, uint32_t seed) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  std::mt19937 rng(seed);
  std::string buf(size, '\0');
  for (auto& c : buf) c = static_cast<char>(rng());
  f.write(buf.data(), static_cast<std::streamsize>(buf.size()));
}

class OfflineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clonefs-offline-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    src_ = dir_ + "/src.img";
    dest_ = dir_ + "/dest.img";
    md_dir_ = dest_ + ".clonefs";
    WriteFile(src_, kImage, 1);
    WriteFile(dest_, kImage, 2);
  }
  void TearDown() override { fs::remove_all(dir_); }

  metadata::MetadataOptions Options() {
    metadata::MetadataOptions o;
    o.dir = md_dir_;
    o.image_size = kImage;
    o.region_size = kRegion;
    PosixDeviceOptions po;
    po.read_only = true;
    auto dev = OpenPosixDevice(src_, po);
    EXPECT_TRUE(dev.ok());
    auto sid = clone::SourceIdentity(**dev, src_);
    EXPECT_TRUE(sid.ok());
    o.source = *sid;
    auto did = clone::DestIdentity(dest_);
    EXPECT_TRUE(did.ok());
    o.dest = *did;
    return o;
  }

  // Formats the metadata with `hydrated` regions (including the last one
  // when `last`) committed.
  void MakeClone(uint64_t hydrated, bool last) {
    auto md = metadata::Metadata::Open(Options());
    ASSERT_TRUE(md.ok()) << md.status().ToString();
    for (uint64_t r = 0; r < hydrated; r++) ASSERT_TRUE((*md)->SetRegionHydrated(r).ok());
    if (last) {
      ASSERT_TRUE((*md)->SetRegionHydrated(40).ok());
    }
    ASSERT_TRUE((*md)->Commit().ok());
  }

  std::string dir_, src_, dest_, md_dir_;
};

TEST_F(OfflineTest, InfoHealthy) {
  MakeClone(10, /*last=*/true);
  CmdRun r = Exec(RunInfoCommand, {dest_});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("not mounted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("11/41 hydrated"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(src_), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("incomplete"), std::string::npos) << r.out;

  CmdRun j = Exec(RunInfoCommand, {"--metadata", md_dir_, "--json"});
  ASSERT_EQ(j.rc, kExitOk) << j.err;
  Result<StatusReport> rep = ReportFromJsonText(j.out);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString() << "\n" << j.out;
  EXPECT_FALSE(rep->live);
  EXPECT_EQ(rep->nr_regions, 41u);
  EXPECT_EQ(rep->hydrated_regions, 11u);
  EXPECT_EQ(rep->committed_hydrated_regions, 11u);
  EXPECT_EQ(rep->hydrated_bytes, 10 * kRegion + 4096);  // last region is 4 KiB
  EXPECT_EQ(rep->image_size, kImage);
  EXPECT_EQ(rep->region_size, kRegion);
  EXPECT_EQ(rep->info.dest, dest_);
  EXPECT_EQ(rep->info.uuid.size(), 36u);
  EXPECT_GT(rep->metadata_used_blocks, 0u);
  EXPECT_GE(rep->metadata_total_blocks, rep->metadata_used_blocks);
  EXPECT_FALSE(rep->hydration_done);
}

TEST_F(OfflineTest, InfoShowsTheStoredSettings) {
  MakeClone(1, false);
  {
    auto md = metadata::Metadata::Open(Options());
    ASSERT_TRUE(md.ok()) << md.status().ToString();
    clone::Settings s;
    s.rate_bytes_per_s = 1 << 20;
    // GCC 12 with ASan flags the optional's string as maybe-uninitialized
    // here (a false positive, as in tests/clone/settings_test.cc).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
    s.on_complete.emplace("touch /tmp/done");
#pragma GCC diagnostic pop
    ASSERT_TRUE((*md)->PutSettings(clone::EncodeSettings(s)).ok());
  }
  CmdRun r = Exec(RunInfoCommand, {dest_});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("Settings:     --rate 1M --on-complete 'touch /tmp/done'"),
            std::string::npos) << r.out;
  CmdRun j = Exec(RunInfoCommand, {dest_, "--json"});
  ASSERT_EQ(j.rc, kExitOk) << j.err;
  Result<StatusReport> rep = ReportFromJsonText(j.out);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->settings.rate_bytes_per_s, 1u << 20);

  // A damaged record is reported, not fatal to info.
  {
    auto md = metadata::Metadata::Open(Options());
    ASSERT_TRUE(md.ok());
    ASSERT_TRUE((*md)->PutSettings("garbage").ok());
  }
  r = Exec(RunInfoCommand, {dest_});
  ASSERT_EQ(r.rc, kExitOk) << r.err;
  EXPECT_NE(r.out.find("Settings:     cannot be read: settings: record is 7 bytes, too short"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--reset-settings"), std::string::npos) << r.out;
}

TEST_F(OfflineTest, InfoCompleteClone) {
  MakeClone(40, true);
  Result<StatusReport> rep = ReadOfflineReport(md_dir_);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(rep->hydration_done);
  EXPECT_EQ(rep->hydrated_bytes, kImage);
  EXPECT_EQ(rep->State(), "complete");
}

TEST_F(OfflineTest, InfoAndCheckRefuseALockedStore) {
  MakeClone(3, false);
  auto held = metadata::Metadata::Open(Options());  // as a running daemon would
  ASSERT_TRUE(held.ok()) << held.status().ToString();
  CmdRun r = Exec(RunInfoCommand, {dest_});
  EXPECT_EQ(r.rc, kInfoMounted);
  EXPECT_NE(r.err.find("in use by a running clonefs daemon"), std::string::npos) << r.err;
  CmdRun c = Exec(RunCheckCommand, {dest_});
  EXPECT_EQ(c.rc, kCheckLocked) << c.out;
  // Nothing was changed by either.
  ASSERT_TRUE((*held)->SetRegionHydrated(5).ok());
  ASSERT_TRUE((*held)->Commit().ok());
  held->reset();
  Result<StatusReport> rep = ReadOfflineReport(md_dir_);
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->hydrated_regions, 4u);
}

TEST_F(OfflineTest, InfoWithoutMetadata) {
  CmdRun r = Exec(RunInfoCommand, {dest_});
  EXPECT_EQ(r.rc, kExitFailure);
  EXPECT_FALSE(r.err.empty());
  EXPECT_FALSE(fs::exists(md_dir_) && !fs::is_empty(md_dir_)) << "info must not create metadata";
  EXPECT_EQ(Exec(RunInfoCommand, {}).rc, kExitUsage);
  EXPECT_EQ(Exec(RunCheckCommand, {}).rc, kCheckUsage);
}

TEST_F(OfflineTest, CheckHealthy) {
  MakeClone(7, false);
  CmdRun r = Exec(RunCheckCommand, {dest_});
  EXPECT_EQ(r.rc, kCheckClean) << r.out;
  EXPECT_NE(r.out.find("ok: superblock"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ok: bitmap: 7/41"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("identity matches"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("clean"), std::string::npos);
  CmdRun q = Exec(RunCheckCommand, {"--metadata", md_dir_, "--quiet"});
  EXPECT_EQ(q.rc, kCheckClean);
  EXPECT_TRUE(q.out.empty()) << q.out;
}

TEST_F(OfflineTest, CheckCannotOpen) {
  CmdRun r = Exec(RunCheckCommand, {"--metadata", dir_ + "/nothing-here"});
  EXPECT_EQ(r.rc, kCheckCannotOpen) << r.out;
  EXPECT_NE(r.out.find("cannot open"), std::string::npos) << r.out;
}

TEST_F(OfflineTest, CheckSourceModified) {
  MakeClone(7, false);
  {  // Change bytes inside the fingerprint's first sample; keep the size.
    int fd = open(src_.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "changed!", 8, 100), 8);
    close(fd);
  }
  CmdRun r = Exec(RunCheckCommand, {dest_});
  EXPECT_EQ(r.rc, kCheckMismatch) << r.out;
  EXPECT_NE(r.out.find("source fingerprint differs"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("source mtime"), std::string::npos) << r.out;
  // Fingerprints in one notation everywhere (base/hex.h): as profile files
  // and `clonefs profile show` print them, and as the mount refusal does.
  const std::regex fp("fingerprint differs: .*metadata has [0-9a-f]{16}, file has [0-9a-f]{16}\\)");
  EXPECT_TRUE(std::regex_search(r.out, fp)) << r.out;
  // The test's directory is random (mkdtemp) and may itself contain "0x".
  std::string without_paths = r.out;
  for (size_t at; (at = without_paths.find(dir_)) != std::string::npos;)
    without_paths.erase(at, dir_.size());
  EXPECT_EQ(without_paths.find("0x"), std::string::npos) << r.out;
}

TEST_F(OfflineTest, CheckSourceResized) {
  MakeClone(7, false);
  WriteFile(src_, kImage + 4096, 1);
  CmdRun r = Exec(RunCheckCommand, {dest_});
  EXPECT_EQ(r.rc, kCheckMismatch) << r.out;
  EXPECT_NE(r.out.find("size " + std::to_string(kImage + 4096)), std::string::npos) << r.out;
}

TEST_F(OfflineTest, CheckDestReplacedOrMissing) {
  MakeClone(7, false);
  std::string other = dir_ + "/other.img";
  WriteFile(other, kImage, 3);
  CmdRun r = Exec(RunCheckCommand, {dest_, "--dest", other});
  EXPECT_EQ(r.rc, kCheckMismatch) << r.out;
  EXPECT_NE(r.out.find("inode"), std::string::npos) << r.out;
  ASSERT_EQ(unlink(dest_.c_str()), 0);
  r = Exec(RunCheckCommand, {"--metadata", md_dir_});
  EXPECT_EQ(r.rc, kCheckMismatch) << r.out;
  EXPECT_NE(r.out.find("No such file"), std::string::npos) << r.out;
  // The source override path is compared too.
  r = Exec(RunCheckCommand, {"--metadata", md_dir_, "--source", other, "--dest", other});
  EXPECT_EQ(r.rc, kCheckMismatch) << r.out;
  EXPECT_NE(r.out.find("source fingerprint differs"), std::string::npos) << r.out;
}

// Overwrites every file of the store whose name matches `pred` with garbage.
template <typename Pred>
int Garble(const std::string& dir, Pred pred) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename();
    if (!e.is_regular_file() || !pred(name)) continue;
    uint64_t size = fs::file_size(e.path());
    std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
    std::string junk(std::max<uint64_t>(size, 64), '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    n++;
  }
  return n;
}

TEST_F(OfflineTest, CheckDamagedStore) {
  MakeClone(7, false);
  int n = Garble(md_dir_, [](const std::string& name) {
    return name.rfind("MANIFEST-", 0) == 0 || name == "CURRENT" ||
           (name.size() > 4 && (name.substr(name.size() - 4) == ".sst" ||
                                name.substr(name.size() - 4) == ".log"));
  });
  ASSERT_GT(n, 0);
  CmdRun r = Exec(RunCheckCommand, {dest_});
  EXPECT_EQ(r.rc, kCheckCorrupt) << r.out;
  EXPECT_NE(r.out.find("corrupt"), std::string::npos) << r.out;
  // What to do, not only what is wrong.
  EXPECT_NE(r.out.find("what to do: the metadata store " + md_dir_ + " is damaged"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Restore it from a backup"), std::string::npos) << r.out;
  CmdRun i = Exec(RunInfoCommand, {dest_});
  EXPECT_EQ(i.rc, kExitFailure) << i.out;
  EXPECT_NE(i.err.find("what to do: the metadata store"), std::string::npos) << i.err;
}

TEST_F(OfflineTest, CheckDamagedDataFilesOnly) {
  // CURRENT and MANIFEST intact; the write-ahead log and tables garbled.
  MakeClone(7, false);
  int n = Garble(md_dir_, [](const std::string& name) {
    return name.size() > 4 &&
           (name.substr(name.size() - 4) == ".sst" || name.substr(name.size() - 4) == ".log");
  });
  ASSERT_GT(n, 0);
  CmdRun r = Exec(RunCheckCommand, {dest_});
  EXPECT_EQ(r.rc, kCheckCorrupt) << r.out;
  CmdRun i = Exec(RunInfoCommand, {dest_});
  EXPECT_EQ(i.rc, kExitFailure);
  EXPECT_NE(i.err.find(md_dir_), std::string::npos) << i.err;
}

TEST(CheckExitCodeTest, Priority) {
  CheckResult r;
  EXPECT_EQ(r.ExitCode(), kCheckClean);
  r.problems.push_back({ProblemKind::kMismatch, "m"});
  EXPECT_EQ(r.ExitCode(), kCheckMismatch);
  r.problems.push_back({ProblemKind::kCorrupt, "c"});
  EXPECT_EQ(r.ExitCode(), kCheckCorrupt);
  r.problems.push_back({ProblemKind::kCannotOpen, "o"});
  EXPECT_EQ(r.ExitCode(), kCheckCannotOpen);
  r.problems.push_back({ProblemKind::kLocked, "l"});
  EXPECT_EQ(r.ExitCode(), kCheckLocked);
}

TEST(MetadataDirTest, Defaults) {
  EXPECT_EQ(*MetadataDirFor("/a/dest.img", ""), "/a/dest.img.clonefs");
  EXPECT_EQ(*MetadataDirFor("/a/dest.img/", ""), "/a/dest.img.clonefs");
  EXPECT_EQ(*MetadataDirFor("/a/dest.img", "/m"), "/m");
  EXPECT_FALSE(MetadataDirFor("", "").ok());
}

}  // namespace
}  // namespace clonefs::control
