// The dest lock covers every path to a dest's storage (SPEC §7a, first
// bullet): a loop device over a file dest and the file itself exclude each
// other in either order, a dest with another loop device over it is refused,
// and what clonefs writes never lands on a file system stored inside the
// source (SPEC §2), even when it does not exist yet. The loop-device cases
// need root and /dev/loop-control and skip otherwise.
#include "clone/dest_guard.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "clone/same_storage.h"
#include "mount/mount_test_util.h"

namespace clonefs::clone {
namespace {

using ::clonefs::testing::TempDir;

// Runs `cmd` with /bin/sh; its first line of output, or "" on failure.
std::string Shell(const std::string& cmd, int* rc = nullptr) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[256];
  while (p != nullptr && fgets(buf, sizeof(buf), p) != nullptr) out += buf;
  const int status = p != nullptr ? pclose(p) : -1;
  if (rc != nullptr) *rc = status;
  return out.substr(0, out.find('\n'));
}

bool Contains(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

class DestGuardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    file_ = dir_ / "dest.img";
    FILE* f = fopen(file_.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fclose(f);
    ASSERT_EQ(truncate(file_.c_str(), 8 << 20), 0);
  }
  void TearDown() override {
    for (auto it = loops_.rbegin(); it != loops_.rend(); ++it) Shell("losetup -d " + *it);
  }
  // Skips unless loop devices can be made here.
  bool LoopsUsable() { return geteuid() == 0 && access("/dev/loop-control", R_OK | W_OK) == 0; }
  std::string Loop(const std::string& file, const std::string& flags = "") {
    int rc = 0;
    std::string dev = Shell("losetup -f --show " + flags + " '" + file + "'", &rc);
    EXPECT_EQ(rc, 0) << dev;
    if (rc != 0) return "";
    loops_.push_back(dev);
    return dev;
  }
  void Detach(const std::string& dev) {
    Shell("losetup -d " + dev);
    std::erase(loops_, dev);
  }

  TempDir dir_;
  std::string file_;
  std::vector<std::string> loops_;
};

TEST_F(DestGuardTest, SecondLockOnTheSameFileIsBusy) {
  auto a = DestLock::Acquire(file_, /*create=*/false);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  auto b = DestLock::Acquire(file_, /*create=*/false);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(b.status().IsBusy());
  EXPECT_TRUE(Contains(
      b.status(), "is in use by another clonefs daemon (pid " + std::to_string(getpid()) + ")"))
      << b.status().ToString();
  (*a).reset();
  EXPECT_TRUE(DestLock::Acquire(file_, false).ok()) << "the lock goes with the object";
}

// Clone A on the file, then a loop device over it, then clone B on the loop
// device: B is refused, naming the file and A.
TEST_F(DestGuardTest, LoopDeviceOverALockedFileIsBusy) {
  if (!LoopsUsable()) GTEST_SKIP() << "needs root and loop devices";
  auto a = DestLock::Acquire(file_, false);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  const std::string loop = Loop(file_);
  ASSERT_FALSE(loop.empty());
  auto b = DestLock::Acquire(loop, false);
  ASSERT_FALSE(b.ok()) << "a clone on " << loop << " would write " << file_;
  EXPECT_TRUE(b.status().IsBusy()) << b.status().ToString();
  EXPECT_TRUE(Contains(b.status(), "dest " + loop + " is a loop device over " + file_ +
                                       ", which another clonefs daemon (pid " +
                                       std::to_string(getpid()) + ") uses as its dest"))
      << b.status().ToString();
}

// The reverse order: clone B on the loop device first, then clone A on the
// file: A is refused, naming the loop device.
TEST_F(DestGuardTest, FileUnderALockedLoopDeviceIsBusy) {
  if (!LoopsUsable()) GTEST_SKIP() << "needs root and loop devices";
  const std::string loop = Loop(file_);
  ASSERT_FALSE(loop.empty());
  auto b = DestLock::Acquire(loop, false);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  auto a = DestLock::Acquire(file_, false);
  ASSERT_FALSE(a.ok()) << "a clone on " << file_ << " would write under " << loop;
  EXPECT_TRUE(a.status().IsBusy()) << a.status().ToString();
  EXPECT_TRUE(Contains(a.status(), "dest " + file_ + " is in use by another clonefs daemon (pid " +
                                       std::to_string(getpid()) + "), through loop device " + loop +
                                       " over it"))
      << a.status().ToString();
  // A second loop device over the same file: refused by the lock on the file.
  const std::string loop2 = Loop(file_);
  ASSERT_FALSE(loop2.empty());
  auto c = DestLock::Acquire(loop2, false);
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(Contains(c.status(), "is a loop device over " + file_)) << c.status().ToString();
  // Released with the lock.
  (*b).reset();
  Detach(loop2);
  Detach(loop);
  EXPECT_TRUE(DestLock::Acquire(file_, false).ok());
}

// A loop device over a dest, held by no clone, still lets anything write the
// dest behind the clone: refused, naming it, for a file dest and for a
// loop-device dest over the same file.
TEST_F(DestGuardTest, DestWithAnotherLoopDeviceOverItIsRefused) {
  if (!LoopsUsable()) GTEST_SKIP() << "needs root and loop devices";
  const std::string loop = Loop(file_);
  ASSERT_FALSE(loop.empty());
  auto a = DestLock::Acquire(file_, false);
  ASSERT_FALSE(a.ok());
  EXPECT_TRUE(Contains(a.status(), "dest " + file_ + " is the backing file of loop device " + loop +
                                       ": writes through it would bypass the clone"))
      << a.status().ToString();
  EXPECT_TRUE(Contains(a.status(), "losetup -d " + loop)) << a.status().ToString();

  // The one loop device itself is a fine dest; with a second one over the
  // same file it is not.
  EXPECT_TRUE(DestLock::Acquire(loop, false).ok());
  const std::string loop2 = Loop(file_, "--read-only");
  ASSERT_FALSE(loop2.empty());
  auto b = DestLock::Acquire(loop, false);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(Contains(b.status(), "which loop device " + loop2 + " is also over"))
      << b.status().ToString();

  Detach(loop2);
  Detach(loop);
  EXPECT_TRUE(DestLock::Acquire(file_, false).ok()) << "detached, the file is a dest again";
}

// A new dest (or metadata directory, or log file) in a directory whose file
// system is stored on the source would write the source. Modelled without a
// mount: the source is a block device node for the device that holds the
// temporary directory.
TEST_F(DestGuardTest, NewFilesOnAFileSystemHeldByTheSourceAreRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root (mknod)";
  struct stat st;
  ASSERT_EQ(stat(dir_.path().c_str(), &st), 0);
  const std::string node = dir_ / "source-device";
  ASSERT_EQ(mknod(node.c_str(), S_IFBLK | 0600, st.st_dev), 0) << strerror(errno);

  const std::string fresh = dir_ / "new.img";
  Status s = CheckDistinctStorage(node, fresh);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_TRUE(Contains(s, "dest " + fresh + " would be stored on the source " + node + " (" +
                              dir_.path() + " is on a file system inside it"))
      << s.ToString();
  // An existing file there was already refused.
  s = CheckDistinctStorage(node, file_);
  EXPECT_TRUE(Contains(s, "is stored on the source")) << s.ToString();

  const std::string md = dir_ / "md/deeper";
  s = CheckNotStoredOnSource(node, md, "metadata directory", "--metadata");
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_TRUE(Contains(s, "metadata directory " + md + " is stored on the source " + node))
      << s.ToString();
  EXPECT_TRUE(Contains(s, "choose another --metadata")) << s.ToString();
  s = CheckNotStoredOnSource(node, file_, "log file", "--log-file");
  EXPECT_TRUE(Contains(s, "log file " + file_ + " is stored on the source")) << s.ToString();

  // A source file beside them holds no file system they are on.
  EXPECT_TRUE(CheckDistinctStorage(file_, fresh).ok());
  EXPECT_TRUE(CheckNotStoredOnSource(file_, md, "metadata directory", "--metadata").ok());
}

TEST_F(DestGuardTest, NewFilesBesideAPlainSourceAreAccepted) {
  const std::string src = dir_ / "src.img";
  FILE* f = fopen(src.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  EXPECT_TRUE(CheckDistinctStorage(src, dir_ / "new.img").ok());
  EXPECT_TRUE(
      CheckNotStoredOnSource(src, dir_ / "a/b/md", "metadata directory", "--metadata").ok());
  EXPECT_TRUE(CheckNotStoredOnSource(src, "/nonexistent-dir/x", "log file", "--log-file").ok());
}

}  // namespace
}  // namespace clonefs::clone
