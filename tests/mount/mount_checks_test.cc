// SPEC §7 through the real command: every bad input gets its message and a
// non-zero exit, nothing is mounted, and the source is byte-identical
// afterwards.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "mount/harness.h"
#include "mount/test_servers.h"
#include "support/open_files.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kSourceSize = 8ull << 20;

class MountChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, kSourceSize, 1);
    src_sha_ = Sha256(c_.src);
  }
  void TearDown() override {
    if (!src_sha_.empty() && check_source_) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }
  // Expects the command to fail with `code` and a message containing `what`,
  // with nothing mounted.
  void ExpectRefused(const RunResult& r, int code, const std::string& what) {
    EXPECT_EQ(r.code, code) << r.out;
    EXPECT_NE(r.out.find(what), std::string::npos) << "expected '" << what << "' in:\n" << r.out;
    EXPECT_NE(r.out.find("clonefs: error: "), std::string::npos) << r.out;
    EXPECT_EQ(c_.DaemonPid(), 0);
    EXPECT_FALSE(c_.IsMounted()) << "nothing may be mounted after a refused mount";
  }

  CloneDir c_;
  std::string src_sha_;
  bool check_source_ = true;
};

TEST_F(MountChecksTest, MissingSource) {
  std::filesystem::rename(c_.src, c_.src + ".away");
  ExpectRefused(c_.Mount(), 1, "does not exist");
  EXPECT_FALSE(std::filesystem::exists(c_.dst)) << "no dest may be left behind";
  std::filesystem::rename(c_.src + ".away", c_.src);
}

// SPEC §4: once complete, dest alone is the image. A complete clone whose
// source was moved away still mounts (it never reads it); an incomplete one,
// or a source named differently from the one recorded, is refused as a
// missing source is.
TEST_F(MountChecksTest, OnlyACompleteCloneMountsWithoutItsSource) {
  ASSERT_EQ(c_.Mount("--no-hydration").code, 0);
  ASSERT_EQ(c_.Unmount().code, 0);
  std::filesystem::rename(c_.src, c_.src + ".away");
  ExpectRefused(c_.Mount(), 1, "does not exist");
  std::filesystem::rename(c_.src + ".away", c_.src);

  ASSERT_EQ(c_.Mount("--hydration").code, 0);  // the first mount stored --no-hydration
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  std::filesystem::rename(c_.src, c_.src + ".away");
  RunResult alone = c_.Mount();
  EXPECT_EQ(alone.code, 0) << alone.out;
  EXPECT_NE(alone.out.find("no longer reads it: mounting without it"), std::string::npos)
      << alone.out;
  EXPECT_EQ(Sha256(c_.exposed()), src_sha_);
  RunResult status = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  EXPECT_NE(status.out.find("Source link:  released since"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("Health:       ok"), std::string::npos) << status.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  const std::string elsewhere = c_.dir() / "elsewhere.img";
  ExpectRefused(Sh(ClonefsBinary() + " mount " + Quote(elsewhere) + " " + Quote(c_.dst) + " " +
                   Quote(c_.mnt)),
                1, "does not exist");
  std::filesystem::rename(c_.src + ".away", c_.src);
}

// SPEC §4: once complete, dest alone is the image, so the clone lets go of
// its source file: the file system the source lives on (an archive disk, a
// network share) can be unmounted while the clone stays mounted and keeps
// serving from dest. Before completion it is held open.
TEST_F(MountChecksTest, ACompleteCloneClosesItsSourceFile) {
  const std::string archive = c_.dir().path() + "/archive";
  std::filesystem::create_directory(archive);
  ASSERT_TRUE(ShOk("mount -t tmpfs -o size=16m clonefs-test-archive " + Quote(archive)));
  struct Unmount {
    std::string at;
    ~Unmount() { Sh("umount -l " + Quote(at) + " 2>/dev/null"); }  // lazily, if still busy
  } unmount_archive{archive};
  const std::string src = archive + "/src.img";
  ASSERT_TRUE(ShOk("cp " + Quote(c_.src) + " " + Quote(src)));
  const std::string args =
      " --log-file " + Quote(c_.log) + " --on-complete " + Quote("touch " + c_.done_flag) + " ";
  RunResult m = Sh(ClonefsBinary() + " mount --no-hydration" + args + Quote(src) + " " +
                   Quote(c_.dst) + " " + Quote(c_.mnt));
  ASSERT_EQ(m.code, 0) << m.out;
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  EXPECT_TRUE(test::FileOpenIn(pid, src)) << "an incomplete clone reads its source";
  RunResult busy = Sh("umount " + Quote(archive) + " 2>&1");
  EXPECT_NE(busy.code, 0) << "the source's file system must be busy: " << busy.out;

  ASSERT_TRUE(ShOk(ClonefsBinary() + " message " + Quote(c_.mnt) + " enable_hydration"));
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  bool closed = false;
  for (int i = 0; i < 100 && !(closed = !test::FileOpenIn(pid, src)); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(closed) << "a complete clone still holds its source open";
  RunResult status = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  EXPECT_NE(status.out.find("Source link:  released since"), std::string::npos) << status.out;
  RunResult gone = Sh("umount " + Quote(archive) + " 2>&1");
  EXPECT_EQ(gone.code, 0) << "the source's file system stays busy: " << gone.out;
  EXPECT_EQ(Sha256(c_.exposed()), src_sha_) << "the clone serves the image from dest alone";
  ASSERT_EQ(c_.Unmount().code, 0);
}

TEST_F(MountChecksTest, UnreadableSource) {
  chmod(c_.dir().path().c_str(), 0755);
  chmod(c_.src.c_str(), 0600);
  RunResult r = Sh("setpriv --reuid=nobody --regid=nogroup --clear-groups " + ClonefsBinary() +
                    " mount --foreground " + Quote(c_.src) + " /tmp/clonefs-never.img " +
                    Quote(c_.mnt));
  ExpectRefused(r, 1, "is not readable");
  EXPECT_FALSE(std::filesystem::exists("/tmp/clonefs-never.img"));
}

// SPEC §7: a source that answers reads with EIO (nbdkit's error filter)
// is refused with the reason and what to do, leaving nothing behind.
// Before, the message stopped at "... failed: Input/output error (4 tries)".
TEST_F(MountChecksTest, SourceReadErrorsRefuseTheMountAndSayWhatToDo) {
  NbdkitServer server(c_.dir() / "nbd.sock", {"-r", "--filter=error", "file", c_.src,
                                              "error-pread-rate=100%", "error=EIO"});
  ASSERT_TRUE(server.Start());
  RunResult r = Sh(ClonefsBinary() + " mount --source-timeout 2 " + Quote(server.Uri()) + " " +
                   Quote(c_.dst) + " " + Quote(c_.mnt));
  ExpectRefused(r, 1, "cannot read source " + server.Uri());
  EXPECT_NE(r.out.find("Input/output error"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("check the source (its disk, file system or server) and mount again"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(std::filesystem::exists(c_.dst)) << "no dest may be left behind";
  EXPECT_FALSE(std::filesystem::exists(c_.metadata)) << "no metadata may be left behind";
}

// A dest inside the metadata directory is refused as such. Before, the
// mount created it there and then refused the directory as "not empty and
// holds no clonefs metadata ... (use an empty or new directory)".
TEST_F(MountChecksTest, DestInsideTheMetadataDirectory) {
  const std::string md = c_.dir() / "md";
  ASSERT_EQ(mkdir(md.c_str(), 0755), 0);
  ExpectRefused(Sh(ClonefsBinary() + " mount --metadata " + Quote(md) + " " + Quote(c_.src) + " " +
                   Quote(md + "/d.img") + " " + Quote(c_.mnt)),
                1, "dest " + md + "/d.img lies inside the metadata directory " + md);
  EXPECT_TRUE(std::filesystem::is_empty(md));
}

// A file where a directory of the --metadata path should be: not a store to
// examine with `clonefs check`, but a path to correct.
TEST_F(MountChecksTest, MetadataUnderAFileNamesTheFile) {
  const std::string file = c_.dir() / "afile";
  ASSERT_TRUE(ShOk("touch " + Quote(file)));
  ExpectRefused(Sh(ClonefsBinary() + " mount --metadata " + Quote(file + "/md") + " " +
                   Quote(c_.src) + " " + Quote(c_.dst) + " " + Quote(c_.mnt)),
                1, file + " is not a directory; give --metadata a directory path");
  EXPECT_FALSE(std::filesystem::exists(c_.dst)) << "a refused mount leaves nothing it created";
}

TEST_F(MountChecksTest, DestIsTheSource) {
  ExpectRefused(Sh(ClonefsBinary() + " mount " + Quote(c_.src) + " " + Quote(c_.src) + " " +
                    Quote(c_.mnt)),
                1, "is the source itself");
  ASSERT_EQ(link(c_.src.c_str(), c_.dst.c_str()), 0);
  ExpectRefused(c_.Mount(), 1, "is the source itself (same inode)");
}

TEST_F(MountChecksTest, DestBlockDeviceSmallerThanSource) {
  const std::string small = c_.dir() / "small.img";
  ASSERT_TRUE(ShOk("truncate -s 4M " + small));
  RunResult l = Sh("losetup -f --show " + small);
  ASSERT_EQ(l.code, 0) << l.out;
  const std::string dev = l.out.substr(0, l.out.find('\n'));
  ExpectRefused(Sh(ClonefsBinary() + " mount --metadata " + Quote(c_.dir() / "md") + " " +
                    Quote(c_.src) + " " + dev + " " + Quote(c_.mnt)),
                1, "is smaller than the source (4194304 < 8388608 bytes)");
  ExpectRefused(Sh(ClonefsBinary() + " mount " + Quote(c_.src) + " " + dev + " " + Quote(c_.mnt)),
                1, "block device; give the metadata a directory");
  ShOk("losetup -d " + dev);
}

TEST_F(MountChecksTest, DestOnReadOnlyFileSystem) {
  const std::string ro = c_.dir() / "ro";
  mkdir(ro.c_str(), 0755);
  ASSERT_TRUE(ShOk("mount -t tmpfs -o ro,size=1M tmpfs " + ro));
  ExpectRefused(Sh(ClonefsBinary() + " mount --metadata " + Quote(c_.dir() / "md") + " " +
                    Quote(c_.src) + " " + Quote(ro + "/dst.img") + " " + Quote(c_.mnt)),
                1, "is on a read-only file system");
  ShOk("umount " + ro);
}

// The metadata directory on a read-only file system: RocksDB cannot take its
// lock there, but nothing is wrong with the store (clonefs check finds it
// clean), so the refusal names the read-only file system and the remount,
// and does not send the user to clonefs check. A new clone's metadata there
// is refused likewise, and leaves no dest behind.
TEST_F(MountChecksTest, MetadataOnReadOnlyFileSystem) {
  ASSERT_EQ(c_.Mount("--no-hydration").code, 0);
  ASSERT_EQ(c_.Unmount().code, 0);
  const std::string md = c_.metadata;
  const std::string ro = c_.dir() / "ro";
  // Whatever fails below, the test's mounts go before its directory does.
  struct Unmounter {
    std::vector<std::string> paths;
    ~Unmounter() {
      for (const auto& p : paths) Sh("mountpoint -q " + Quote(p) + " && umount " + Quote(p));
    }
  } unmounter{{md, ro}};
  ASSERT_TRUE(ShOk("mount --bind " + Quote(md) + " " + Quote(md) + " && mount -o remount,bind,ro " +
                   Quote(md)));
  RunResult r = c_.Mount();
  ExpectRefused(
      r, 1, "metadata " + md + " is on a read-only file system (mounted read-only at " + md + ")");
  EXPECT_NE(r.out.find("mount -o remount,rw " + md), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--metadata NEWDIR"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("clonefs check"), std::string::npos) << r.out;
  RunResult check = Sh(ClonefsBinary() + " check --metadata " + Quote(md));
  EXPECT_EQ(check.code, 0) << "the advice would have led here: " << check.out;
  ASSERT_TRUE(ShOk("umount " + Quote(md)));
  // Writable again: the clone mounts.
  ASSERT_EQ(c_.Mount("--no-hydration").code, 0);
  ASSERT_EQ(c_.Unmount().code, 0);

  mkdir(ro.c_str(), 0755);
  ASSERT_TRUE(ShOk("mount -t tmpfs -o ro,size=1M tmpfs " + Quote(ro)));
  const std::string dst2 = c_.dir() / "dst2.img";
  RunResult n = Sh(ClonefsBinary() + " mount --metadata " + Quote(ro + "/new.clonefs") + " " +
                   Quote(c_.src) + " " + Quote(dst2) + " " + Quote(c_.mnt));
  ExpectRefused(n, 1,
                "metadata " + ro + "/new.clonefs cannot be created: " + ro +
                    " is on a read-only file system");
  EXPECT_EQ(n.out.find("clonefs check"), std::string::npos) << n.out;
  EXPECT_FALSE(std::filesystem::exists(dst2)) << "the dest this mount created must go";
}

TEST_F(MountChecksTest, RegionSizeNotAPowerOfTwoOrOutOfRange) {
  ExpectRefused(c_.Mount("--region-size 3000"), 2, "not a power of two");
  ExpectRefused(c_.Mount("--region-size 2K"), 2, "out of range");
  ExpectRefused(c_.Mount("--region-size 2G"), 2, "out of range");
  ExpectRefused(c_.Mount("--region-size lots"), 2, "is not a size");
  EXPECT_FALSE(std::filesystem::exists(c_.dst));
}

TEST_F(MountChecksTest, MountpointMissingNotADirectoryOrAlreadyAMount) {
  rmdir(c_.mnt.c_str());
  ExpectRefused(c_.Mount(), 1, "does not exist; create it: mkdir -p");
  ASSERT_TRUE(ShOk("touch " + Quote(c_.mnt)));
  ExpectRefused(c_.Mount(), 1, "is not a directory");
  unlink(c_.mnt.c_str());
  mkdir(c_.mnt.c_str(), 0755);
  ASSERT_TRUE(ShOk("mount -t tmpfs -o size=1M tmpfs " + Quote(c_.mnt)));
  RunResult r = c_.Mount();
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("is already a mount point (tmpfs"), std::string::npos) << r.out;
  ShOk("umount " + Quote(c_.mnt));
}

TEST_F(MountChecksTest, SecondMountOfTheSameCloneIsRefused) {
  RunResult first = c_.Mount("--no-hydration");
  ASSERT_EQ(first.code, 0) << first.out;
  const std::string mnt2 = c_.dir() / "mnt2";
  mkdir(mnt2.c_str(), 0755);
  RunResult r = Sh(ClonefsBinary() + " mount " + Quote(c_.src) + " " + Quote(c_.dst) + " " +
                    Quote(mnt2));
  EXPECT_EQ(r.code, 1) << r.out;
  // The dest is locked first (its lock also covers another --metadata).
  EXPECT_NE(r.out.find("is in use by another clonefs daemon"), std::string::npos) << r.out;
  RunResult again = c_.Mount();
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_NE(again.out.find("already a mount point (fuse.clonefs"), std::string::npos) << again.out;
  RunResult u = c_.Unmount();
  EXPECT_EQ(u.code, 0) << u.out;
}

TEST_F(MountChecksTest, MetadataMustMatchTheClone) {
  ASSERT_EQ(c_.Mount("--no-hydration").code, 0);
  ASSERT_EQ(c_.Unmount().code, 0);

  // Another region size.
  RunResult r = c_.Mount("--region-size 128K");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("region size"), std::string::npos) << r.out;

  // Another clone's metadata: a different source and dest.
  const std::string other_src = c_.dir() / "other.img";
  const std::string other_dst = c_.dir() / "other-dst.img";
  WriteRandomFile(other_src, kSourceSize, 2);
  r = Sh(ClonefsBinary() + " mount --metadata " + Quote(c_.metadata) + " " + Quote(other_src) +
          " " + Quote(other_dst) + " " + Quote(c_.mnt));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("does not exist, but " + c_.metadata + " records a clone"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("a new --metadata directory"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(other_dst)) << "a dest created for the attempt is removed";
  // Another source over this clone's own dest: the source differs.
  r = Sh(ClonefsBinary() + " mount " + Quote(other_src) + " " + Quote(c_.dst) + " " +
         Quote(c_.mnt));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("source fingerprint differs"), std::string::npos) << r.out;

  // The same source, modified.
  check_source_ = false;
  ASSERT_TRUE(ShOk("printf x | dd of=" + Quote(c_.src) +
                    " bs=1 seek=4194304 conv=notrunc status=none"));
  r = c_.Mount();
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("source"), std::string::npos) << r.out;
  EXPECT_EQ(c_.DaemonPid(), 0);
}

TEST_F(MountChecksTest, DamagedMetadataIsRefusedWithTheReason) {
  ASSERT_EQ(c_.Mount("--no-hydration").code, 0);
  ASSERT_EQ(c_.Unmount().code, 0);
  // Point RocksDB at a manifest that does not exist.
  ASSERT_TRUE(ShOk("echo MANIFEST-999999 > " + Quote(c_.metadata + "/CURRENT")));
  RunResult r = c_.Mount();
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("clonefs: error: metadata " + c_.metadata), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MANIFEST-999999"), std::string::npos) << "the reason: " << r.out;
  EXPECT_EQ(c_.DaemonPid(), 0);
}

TEST_F(MountChecksTest, DestFullReachesTheWriterAndNothingCrashes) {
  // dest on a 4 MiB file system, source 8 MiB: hydration cannot finish.
  const std::string small = c_.dir() / "small";
  mkdir(small.c_str(), 0755);
  ASSERT_TRUE(ShOk("mount -t tmpfs -o size=4M tmpfs " + small));
  const std::string mnt = c_.mnt;
  RunResult m = Sh(ClonefsBinary() + " mount --no-hydration --metadata " +
                   Quote(c_.dir() / "md") + " --log-file " + Quote(c_.log) + " " + Quote(c_.src) +
                   " " + Quote(small + "/dst.img") + " " + Quote(mnt));
  ASSERT_EQ(m.code, 0) << m.out;
  // Write until the dest file system is full: the writer sees ENOSPC.
  RunResult w = Sh("dd if=/dev/zero of=" + Quote(mnt + "/dst.img") +
                   " bs=64k count=128 oflag=direct conv=notrunc,fsync");
  EXPECT_NE(w.code, 0) << w.out;
  EXPECT_NE(w.out.find("No space left on device"), std::string::npos) << w.out;
  // The daemon is alive and the whole image still reads (from the source
  // where nothing was written).
  EXPECT_GT(c_.DaemonPid(), 0);
  RunResult rd = Sh("dd if=" + Quote(mnt + "/dst.img") + " of=/dev/null bs=1M iflag=direct");
  EXPECT_EQ(rd.code, 0) << rd.out;
  RunResult u = Sh(ClonefsBinary() + " unmount " + Quote(mnt));
  EXPECT_EQ(u.code, 0) << u.out;
  ShOk("umount " + small);
}

}  // namespace
}  // namespace clonefs::testing
