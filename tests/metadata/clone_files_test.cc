// clonefs's own files beside the store (metadata/clone_files.h: the daemon's
// log and its rotation, the daemon record, the control socket) never make a
// metadata directory look foreign, half-formatted or non-empty.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "md_test_util.h"
#include "metadata/clone_files.h"
#include "metadata/metadata.h"

namespace clonefs::metadata {
namespace {

using testing::MustOpen;
using testing::Options;
using testing::TempDir;

// Every side file, as the daemon leaves them (the socket as a real socket).
void AddSideFiles(const TempDir& t) {
  std::ofstream(t.Sub(kLogFileName)) << "2026-01-01 00:00:00 clonefs: info: hello\n";
  std::ofstream(t.Sub(kRotatedLogFileName)) << "older\n";
  std::ofstream(t.Sub(kDaemonRecordName)) << "pid=1\n";
  std::ofstream(t.Sub(kDaemonRecordTempName)) << "pid=1\n";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string p = t.Sub(kControlSocketName);
  ASSERT_LT(p.size(), sizeof(a.sun_path));
  std::memcpy(a.sun_path, p.c_str(), p.size() + 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << strerror(errno);
  close(fd);
}

TEST(CloneFiles, NamesAreRecognised) {
  for (const char* n : {kLogFileName, kRotatedLogFileName, kDaemonRecordName,
                        kDaemonRecordTempName, kControlSocketName}) {
    EXPECT_TRUE(IsCloneSideFile(n)) << n;
  }
  for (const char* n : {"CURRENT", "LOG", "LOCK", "clonefs.log.2", "notes.txt", "daemon.inf"}) {
    EXPECT_FALSE(IsCloneSideFile(n)) << n;
  }
  EXPECT_EQ(CloneFilePath("/m", kLogFileName), "/m/clonefs.log");
  EXPECT_EQ(CloneFilePath("/m/", kLogFileName), "/m/clonefs.log");
}

TEST(CloneFiles, ADirectoryWithOnlySideFilesIsFormatted) {
  TempDir t;
  AddSideFiles(t);
  EXPECT_TRUE(Metadata::ReadSuperblock(t.path()).status().IsNotFound());
  auto md = MustOpen(Options(t.path(), 10));
  ASSERT_TRUE(md);
  EXPECT_TRUE(std::filesystem::exists(t.Sub("CURRENT")));
  EXPECT_TRUE(std::filesystem::exists(t.Sub(kLogFileName)));
}

TEST(CloneFiles, SideFilesBesideAnInterruptedFormatDoNotMakeItForeign) {
  TempDir t;
  AddSideFiles(t);
  std::ofstream(t.Sub("LOCK"));
  std::ofstream(t.Sub("MANIFEST-000001")) << "partial";
  auto md = MustOpen(Options(t.path(), 10));
  ASSERT_TRUE(md);
}

TEST(CloneFiles, SideFilesBesideAnExistingStoreAreKept) {
  TempDir t;
  {
    auto md = MustOpen(Options(t.path(), 10));
    ASSERT_TRUE(md);
    ASSERT_TRUE(md->SetRegionHydrated(4).ok());
    ASSERT_TRUE(md->Commit().ok());
  }
  AddSideFiles(t);
  auto md = MustOpen(Options(t.path(), 10));
  ASSERT_TRUE(md);
  EXPECT_TRUE(md->IsRegionHydrated(4));
  md.reset();
  EXPECT_TRUE(Metadata::ReadSuperblock(t.path()).ok());
}

TEST(CloneFiles, AnyOtherFileStillMakesTheDirectoryForeign) {
  TempDir t;
  AddSideFiles(t);
  std::ofstream(t.Sub("notes.txt")) << "precious";
  auto r = Metadata::Open(Options(t.path(), 10));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_FALSE(std::filesystem::exists(t.Sub("CURRENT")));
}

}  // namespace
}  // namespace clonefs::metadata
