// The power-loss model of FaultInjectionFs itself.
#include "metadata/fault_fs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "md_test_util.h"

namespace clonefs::metadata {
namespace {

using rocksdb::FileOptions;
using rocksdb::IOOptions;
using testing::TempDir;

std::string Contents(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class FaultFsTest : public ::testing::Test {
 protected:
  std::unique_ptr<rocksdb::FSWritableFile> Create(const std::string& name) {
    std::unique_ptr<rocksdb::FSWritableFile> f;
    EXPECT_TRUE(fs_->NewWritableFile(t_.Sub(name), FileOptions(), &f, nullptr).ok());
    return f;
  }
  void SyncDir() {
    std::unique_ptr<rocksdb::FSDirectory> d;
    ASSERT_TRUE(fs_->NewDirectory(t_.path(), IOOptions(), &d, nullptr).ok());
    ASSERT_TRUE(d->Fsync(IOOptions(), nullptr).ok());
  }
  TempDir t_;
  std::shared_ptr<FaultInjectionFs> fs_ = std::make_shared<FaultInjectionFs>();
};

TEST_F(FaultFsTest, FileNeverDirSyncedVanishes) {
  auto f = Create("a");
  ASSERT_TRUE(f->Append("abc", IOOptions(), nullptr).ok());
  ASSERT_TRUE(f->Sync(IOOptions(), nullptr).ok());
  ASSERT_TRUE(f->Close(IOOptions(), nullptr).ok());
  EXPECT_EQ(Contents(t_.Sub("a")), "abc");  // visible before the crash
  const auto dropped = fs_->DropUnsyncedData();
  EXPECT_EQ(dropped.files_removed, 1u);
  EXPECT_EQ(dropped.bytes_dropped, 3u);
  EXPECT_FALSE(std::filesystem::exists(t_.Sub("a")));
}

TEST_F(FaultFsTest, UnsyncedTailIsCut) {
  auto f = Create("a");
  SyncDir();
  ASSERT_TRUE(f->Append("abc", IOOptions(), nullptr).ok());
  ASSERT_TRUE(f->Sync(IOOptions(), nullptr).ok());
  ASSERT_TRUE(f->Append("defg", IOOptions(), nullptr).ok());
  EXPECT_EQ(fs_->UnsyncedBytes(), 4u);
  ASSERT_TRUE(f->Close(IOOptions(), nullptr).ok());
  EXPECT_EQ(Contents(t_.Sub("a")), "abcdefg");
  EXPECT_EQ(fs_->DropUnsyncedData().bytes_dropped, 4u);
  EXPECT_EQ(Contents(t_.Sub("a")), "abc");
  EXPECT_EQ(fs_->UnsyncedBytes(), 0u);
}

TEST_F(FaultFsTest, RenameOfANewFileOverADurableOne) {
  {
    auto cur = Create("CURRENT");
    ASSERT_TRUE(cur->Append("old", IOOptions(), nullptr).ok());
    ASSERT_TRUE(cur->Sync(IOOptions(), nullptr).ok());
    SyncDir();
  }
  auto tmp = Create("tmp");
  ASSERT_TRUE(tmp->Append("new", IOOptions(), nullptr).ok());
  ASSERT_TRUE(tmp->Sync(IOOptions(), nullptr).ok());
  ASSERT_TRUE(fs_->RenameFile(t_.Sub("tmp"), t_.Sub("CURRENT"), IOOptions(), nullptr).ok());
  fs_->DropUnsyncedData();
  EXPECT_EQ(Contents(t_.Sub("CURRENT")), "new");  // atomic rename: old or new, never none
}

TEST_F(FaultFsTest, InjectedFailuresChangeNothing) {
  auto f = Create("a");
  SyncDir();
  fs_->SetFailWrites(true);
  EXPECT_TRUE(f->Append("x", IOOptions(), nullptr).IsIOError());
  std::unique_ptr<rocksdb::FSWritableFile> g;
  EXPECT_TRUE(fs_->NewWritableFile(t_.Sub("b"), FileOptions(), &g, nullptr).IsIOError());
  fs_->SetFailWrites(false);
  ASSERT_TRUE(f->Append("y", IOOptions(), nullptr).ok());
  fs_->SetFailSyncs(true);
  EXPECT_TRUE(f->Sync(IOOptions(), nullptr).IsIOError());
  EXPECT_EQ(fs_->UnsyncedBytes(), 1u);
  fs_->SetFailSyncs(false);
  EXPECT_EQ(fs_->InjectedFailures(), 3u);
  EXPECT_FALSE(std::filesystem::exists(t_.Sub("b")));
  ASSERT_TRUE(f->Close(IOOptions(), nullptr).ok());
  fs_->DropUnsyncedData();
  EXPECT_EQ(Contents(t_.Sub("a")), "");
}

}  // namespace
}  // namespace clonefs::metadata
