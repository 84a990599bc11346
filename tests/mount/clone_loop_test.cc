// A real client stack on the clone: loop device with --direct-io=on, ext4,
// files, fstrim, e2fsck; then dest alone after hydration. And a SIGKILL of
// the daemon under an ext4 load with fsyncs: the stale mount is handled,
// fsynced files survive, e2fsck is clean, and hydration resumes without
// losing committed regions.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "mount/harness.h"

namespace clonefs::testing {
namespace {

class CloneLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    // A source holding a real ext4 file system with files, built without
    // mounting anything (mkfs.ext4 -d).
    const std::string tree = c_.dir() / "tree";
    ASSERT_TRUE(ShOk("mkdir -p " + tree + "/docs && head -c 3M /dev/urandom > " + tree +
                      "/docs/big.bin && head -c 24M /dev/urandom > " + tree +
                      "/docs/bulk.bin && seq 1 20000 > " + tree + "/docs/numbers.txt"));
    ASSERT_TRUE(ShOk("truncate -s 128M " + Quote(c_.src) + " && mkfs.ext4 -q -F -b 4096 -d " +
                      tree + " " + Quote(c_.src)));
    big_sha_ = Sha256(tree + "/docs/big.bin");
    src_sha_ = Sha256(c_.src);
    emnt_ = c_.dir() / "ext4";
    mkdir(emnt_.c_str(), 0755);
  }
  void TearDown() override {
    Sh("mountpoint -q " + emnt_ + " && umount -l " + emnt_);
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }

  CloneDir c_;
  std::string emnt_, big_sha_, src_sha_;
};

TEST_F(CloneLoopTest, Ext4OnALoopDeviceThenDestAlone) {
  RunResult m = c_.Mount("--rate 16M --region-size 64K");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string loop = c_.AttachLoop();
  ASSERT_FALSE(loop.empty());
  std::ifstream dio("/sys/block/" + loop.substr(5) + "/loop/dio");
  int dio_on = 0;
  dio >> dio_on;
  EXPECT_EQ(dio_on, 1) << "the loop device must use direct I/O over the exposed file";

  ASSERT_TRUE(ShOk("mount " + loop + " " + emnt_));
  EXPECT_EQ(Sha256(emnt_ + "/docs/big.bin"), big_sha_);
  ASSERT_TRUE(ShOk("head -c 5M /dev/urandom > " + emnt_ + "/new.bin && sync"));
  const std::string new_sha = Sha256(emnt_ + "/new.bin");
  ASSERT_TRUE(ShOk("rm " + emnt_ + "/docs/numbers.txt && sync && fstrim -v " + emnt_));
  ASSERT_TRUE(ShOk("umount " + emnt_));
  EXPECT_TRUE(ShOk("e2fsck -fn " + loop));
  // Teardown order: inner fs, loop device, then the clone.
  RunResult busy = c_.Unmount();
  EXPECT_EQ(busy.code, 3) << busy.out;
  EXPECT_NE(busy.out.find("losetup -d " + loop), std::string::npos) << busy.out;
  c_.DetachLoop(loop);
  ASSERT_TRUE(c_.WaitComplete(90)) << c_.LogText();
  RunResult u = c_.Unmount();
  ASSERT_EQ(u.code, 0) << u.out;

  EXPECT_TRUE(ShOk("e2fsck -fn " + Quote(c_.dst)));
  ASSERT_TRUE(ShOk("mount -o loop,ro " + Quote(c_.dst) + " " + emnt_));
  EXPECT_EQ(Sha256(emnt_ + "/new.bin"), new_sha);
  EXPECT_EQ(Sha256(emnt_ + "/docs/big.bin"), big_sha_);
  EXPECT_NE(access((emnt_ + "/docs/numbers.txt").c_str(), F_OK), 0);
  ShOk("umount " + emnt_);
}

TEST_F(CloneLoopTest, KilledDaemonUnderExt4LoadResumes) {
  RunResult m = c_.Mount("--rate 8M --region-size 64K");
  ASSERT_EQ(m.code, 0) << m.out;
  std::string loop = c_.AttachLoop();
  ASSERT_FALSE(loop.empty());
  ASSERT_TRUE(ShOk("mount " + loop + " " + emnt_));
  // Files written and fsynced before the crash must survive it.
  std::vector<std::pair<std::string, std::string>> synced;
  for (int i = 0; i < 8; ++i) {
    const std::string f = emnt_ + "/synced" + std::to_string(i) + ".bin";
    ASSERT_TRUE(ShOk("dd if=/dev/urandom of=" + f + " bs=256k count=" + std::to_string(1 + i) +
                      " conv=fsync status=none"));
    synced.emplace_back("synced" + std::to_string(i) + ".bin", Sha256(f));
  }
  ASSERT_TRUE(ShOk("sync -f " + emnt_ + "/synced0.bin"));
  // An unsynced load in flight when the daemon dies.
  Sh("(dd if=/dev/urandom of=" + emnt_ + "/inflight.bin bs=1M count=64 status=none &)");
  usleep(200000);
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 300 && c_.DaemonPid() != 0; ++i) usleep(10000);
  // The loop device and ext4 now see I/O errors: tear them down.
  Sh("umount -l " + emnt_);
  Sh("sleep 0.5");
  c_.DetachLoop(loop);
  const int64_t committed_before = HydratedRegions(c_.metadata);
  ASSERT_GE(committed_before, 0);
  printf("committed regions at the crash: %lld of %d\n",
         static_cast<long long>(committed_before), 128 * 16);

  // Mount again on the ENOTCONN mount point: detected and detached.
  m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_NE(m.out.find("stale mount"), std::string::npos) << m.out;
  loop = c_.AttachLoop();
  ASSERT_FALSE(loop.empty());
  ASSERT_TRUE(ShOk("mount " + loop + " " + emnt_));  // replays the journal
  for (const auto& [name, sha] : synced) {
    EXPECT_EQ(Sha256(emnt_ + "/" + name), sha) << name << " was fsynced before the crash";
  }
  EXPECT_EQ(Sha256(emnt_ + "/docs/big.bin"), big_sha_);
  ASSERT_TRUE(ShOk("umount " + emnt_));
  EXPECT_TRUE(ShOk("e2fsck -fn " + loop));
  c_.DetachLoop(loop);
  ASSERT_EQ(c_.Unmount().code, 0);
  // Nothing committed before the crash was lost (it is not copied again).
  EXPECT_GE(HydratedRegions(c_.metadata), committed_before);

  // Hydration resumes and completes (--hydration: the clone stored the
  // --no-hydration of the mount above); dest alone is a clean file system.
  m = c_.Mount("--hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(c_.WaitComplete(90)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_TRUE(ShOk("e2fsck -fn " + Quote(c_.dst)));
  ASSERT_TRUE(ShOk("mount -o loop,ro " + Quote(c_.dst) + " " + emnt_));
  for (const auto& [name, sha] : synced) EXPECT_EQ(Sha256(emnt_ + "/" + name), sha) << name;
  ShOk("umount " + emnt_);
}

// mkfs.ext4 through the clone over a source full of random bytes: mkfs's
// discards become punch-holes (whole regions zeroed without reading the
// source), then files, fstrim and e2fsck; dest alone after hydration.
TEST_F(CloneLoopTest, MkfsThroughTheCloneOverRandomSource) {
  WriteRandomFile(c_.src, 64ull << 20, 11);
  src_sha_ = Sha256(c_.src);
  RunResult m = c_.Mount("--rate 16M --region-size 64K");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string loop = c_.AttachLoop();
  ASSERT_FALSE(loop.empty());
  ASSERT_TRUE(ShOk("mkfs.ext4 -q -F " + loop));
  ASSERT_TRUE(ShOk("mount " + loop + " " + emnt_));
  ASSERT_TRUE(ShOk("head -c 7M /dev/urandom > " + emnt_ + "/a.bin && mkdir " + emnt_ +
                   "/d && seq 1 100000 > " + emnt_ + "/d/n.txt && sync"));
  const std::string a_sha = Sha256(emnt_ + "/a.bin");
  ASSERT_TRUE(ShOk("fstrim " + emnt_));
  ASSERT_TRUE(ShOk("umount " + emnt_));
  EXPECT_TRUE(ShOk("e2fsck -fn " + loop));
  c_.DetachLoop(loop);
  ASSERT_TRUE(c_.WaitComplete(90)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_TRUE(ShOk("e2fsck -fn " + Quote(c_.dst)));
  ASSERT_TRUE(ShOk("mount -o loop,ro " + Quote(c_.dst) + " " + emnt_));
  EXPECT_EQ(Sha256(emnt_ + "/a.bin"), a_sha);
  EXPECT_TRUE(ShOk("seq 1 100000 | cmp - " + emnt_ + "/d/n.txt"));
  ShOk("umount " + emnt_);
}

}  // namespace
}  // namespace clonefs::testing
