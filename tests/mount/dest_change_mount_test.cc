// SPEC §7a through the real `clonefs` command: a dest truncated under a live
// clone. Before, the short read it caused was reported once and forgotten: a
// later write past the new end extended dest again with a hole, and the
// hydrated regions it had held read as zeros, with status "ok", across an
// unmount and the next mount. Now the clone stops serving at once -- every
// request fails with EIO, dest is never extended -- status, `wait` and the
// log say why, and the next mount refuses the short dest.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kSize = 64 * kMiB, kNewSize = 32 * kMiB;
constexpr uint64_t kBlock = 64 << 10;

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// One O_DIRECT read of kBlock bytes at `off` through a new open: 0 if it
// read everything, else the errno (or -1 for a short read).
int ReadAt(const std::string& path, uint64_t off) {
  const int fd = open(path.c_str(), O_RDONLY | O_DIRECT);
  if (fd < 0) return errno;
  void* p = nullptr;
  if (posix_memalign(&p, 4096, kBlock) != 0) return ENOMEM;
  std::unique_ptr<void, decltype(&free)> buf(p, free);
  const ssize_t n = pread(fd, buf.get(), kBlock, static_cast<off_t>(off));
  const int err = errno;
  close(fd);
  if (n == static_cast<ssize_t>(kBlock)) return 0;
  return n < 0 ? err : -1;
}

// A kBlock write at `off` and fsync: 0, or the first errno.
int WriteAt(const std::string& path, uint64_t off) {
  const int fd = open(path.c_str(), O_WRONLY);
  if (fd < 0) return errno;
  std::vector<char> data(kBlock, 'W');
  int err = 0;
  if (pwrite(fd, data.data(), kBlock, static_cast<off_t>(off)) != static_cast<ssize_t>(kBlock)) {
    err = errno;
  } else if (fsync(fd) != 0) {
    err = errno;
  }
  close(fd);
  return err;
}

class DestChangeMountTest : public ::testing::Test {
 protected:
  void SetUp() override { CLONEFS_REQUIRE_MOUNTABLE(); }

  // Mounts with `extra`, waits for the clone to complete.
  void MountComplete(const std::string& extra) {
    WriteRandomFile(c_.src, kSize, 17);
    src_sha_ = Sha256(c_.src);
    RunResult m = c_.Mount("--region-size 64K " + extra);
    ASSERT_EQ(m.code, 0) << m.out;
    RunResult w = Sh(ClonefsBinary() + " wait --quiet " + Quote(c_.mnt));
    ASSERT_EQ(w.code, 0) << w.out;
  }

  // Polls status (up to 10 s) until it reports a dest change, which must
  // contain `what`: the state and health say so. Returns the change.
  std::string WaitForDestChange(const std::string& what) {
    Result<control::StatusReport> r = QueryStatus(c_.mnt);
    for (int i = 0; i < 200 && r.ok() && r->dest_change.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      r = QueryStatus(c_.mnt);
    }
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return "";
    EXPECT_EQ(r->State(), "dest-changed");
    EXPECT_EQ(r->health, "failed: dest changed");
    EXPECT_NE(r->dest_change.find(what), std::string::npos) << r->dest_change;
    return r->dest_change;
  }

  // Polls status until it reports the dest change; checks how.
  void ExpectReported() {
    WaitForDestChange("shrank from 67108864 to 33554432 bytes");
    RunResult human = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
    EXPECT_NE(human.out.find("Dest state:   changed:"), std::string::npos) << human.out;
    RunResult w = Sh(ClonefsBinary() + " wait --quiet " + Quote(c_.mnt));
    EXPECT_EQ(w.code, 3) << w.out;
    EXPECT_NE(w.out.find("dest changed under the clone"), std::string::npos) << w.out;
  }

  // After the change: every request fails with EIO and dest keeps its new
  // size; then the unmount works, the log said it once, and the next mount
  // is refused.
  void ExpectStopped() {
    EXPECT_EQ(ReadAt(c_.exposed(), 0), EIO) << "a read below the new end";
    EXPECT_EQ(ReadAt(c_.exposed(), kNewSize + 8 * kMiB), EIO) << "a read past the new end";
    EXPECT_EQ(WriteAt(c_.exposed(), kSize - kBlock), EIO) << "a write past the new end";
    EXPECT_EQ(WriteAt(c_.exposed(), 0), EIO) << "a write below the new end";
    EXPECT_EQ(FileSize(c_.dst), kNewSize) << "dest was extended again";
    const std::string log = c_.LogText();
    EXPECT_EQ(Count(log, "changed under the live clone"), 1u) << log;
    EXPECT_NE(log.find("error: dest"), std::string::npos) << log;
    RunResult u = c_.Unmount();
    ASSERT_EQ(u.code, 0) << u.out;
    EXPECT_FALSE(c_.IsMounted());
    RunResult again = c_.Mount("");
    EXPECT_NE(again.code, 0) << again.out;
    EXPECT_NE(again.out.find("shorter than the image"), std::string::npos) << again.out;
    EXPECT_FALSE(c_.IsMounted());
  }

  // The source is never written, whatever happened to dest.
  void TearDown() override {
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }

  CloneDir c_;
  std::string src_sha_;
};

// The audit's order: a read finds the short dest first, then a write would
// have extended it.
TEST_F(DestChangeMountTest, ShortReadStopsTheCloneBeforeAWriteCanExtendDest) {
  MountComplete("--no-passthrough");
  ASSERT_TRUE(ShOk("truncate -s 32M " + Quote(c_.dst)));
  EXPECT_EQ(ReadAt(c_.exposed(), kNewSize + 8 * kMiB), EIO);
  ExpectReported();
  ExpectStopped();
}

// No request at all: the daemon finds the change by itself (about once a
// second), and opens after it are not passed through to the short dest.
TEST_F(DestChangeMountTest, FoundWithoutARequestAndNotPassedThrough) {
  MountComplete("");
  ASSERT_TRUE(ShOk("truncate -s 32M " + Quote(c_.dst)));
  ExpectReported();
  ExpectStopped();
}

// Another program given dest instead of the exposed file while an
// incomplete clone is mounted -- `dd`, `mkfs`, `losetup`, a VM. dest keeps
// its size and identity, so before, the clone went on with `Health: ok`
// serving that program's bytes as hydrated data (mkfs.ext4 on dest: the
// exposed file differed from the source at byte 1), and so did every later
// mount. A daemon with the privilege now refuses such opens outright;
// writes it cannot refuse (a descriptor opened before the mount, a loop
// device) stop the clone, and later mounts are refused until the record
// is removed.
TEST_F(DestChangeMountTest, AnotherProgramsOpenOfDestIsRefused) {
  WriteRandomFile(c_.src, kSize, 17);
  src_sha_ = Sha256(c_.src);
  RunResult m = c_.Mount("--region-size 64K --rate 1M");
  ASSERT_EQ(m.code, 0) << m.out;
  RunResult dd = Sh("dd if=/dev/zero of=" + Quote(c_.dst) +
                    " bs=4k count=1 seek=300 conv=notrunc status=none 2>&1");
  EXPECT_NE(dd.code, 0) << dd.out;
  EXPECT_NE(dd.out.find("Operation not permitted"), std::string::npos) << dd.out;
  RunResult loop = Sh("losetup -f --show " + Quote(c_.dst) + " 2>&1");
  EXPECT_NE(loop.code, 0) << loop.out;
  if (loop.code == 0) Sh("losetup -d " + loop.out.substr(0, loop.out.find('\n')));
  EXPECT_NE(c_.LogText().find("refused pid "), std::string::npos) << c_.LogText();
  // The clone is untouched and goes on.
  Result<control::StatusReport> r = QueryStatus(c_.mnt);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->dest_change, "");
  EXPECT_EQ(r->health, "ok");
  EXPECT_EQ(ReadAt(c_.exposed(), 300 * 4096 / kBlock * kBlock), 0);
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_FALSE(std::filesystem::exists(c_.metadata + "/dest-written"));
  // Once complete, dest alone is the image: no longer guarded.
  ASSERT_EQ(c_.Mount("--rate 0").code, 0);
  ASSERT_EQ(Sh(ClonefsBinary() + " wait --quiet " + Quote(c_.mnt)).code, 0);
  EXPECT_TRUE(ShOk("dd if=" + Quote(c_.dst) + " of=/dev/null bs=4k count=1 status=none"));
  ASSERT_EQ(c_.Unmount().code, 0);
}

// An incomplete clone, mounted with dest already open in this process (a
// program that had it open before the mount: not asked about by the guard).
class DestWrittenMountTest : public DestChangeMountTest {
 protected:
  void MountWithDestOpen() {
    WriteRandomFile(c_.src, kSize, 18);
    src_sha_ = Sha256(c_.src);
    ASSERT_EQ(c_.Mount("--region-size 64K --rate 1M").code, 0);
    ASSERT_EQ(c_.Unmount().code, 0);
    fd_ = open(c_.dst.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
    RunResult m = c_.Mount("");
    ASSERT_EQ(m.code, 0) << m.out;
  }
  void TearDown() override {
    if (fd_ >= 0) close(fd_);
    DestChangeMountTest::TearDown();
  }
  // With the clone unmounted after the change: the next mount is refused
  // (naming the record, as `clonefs check` does) until the record is
  // removed.
  void ExpectLaterMountsRefused(const std::string& what) {
    const std::string record = c_.metadata + "/dest-written";
    RunResult again = c_.Mount("");
    EXPECT_NE(again.code, 0) << again.out;
    EXPECT_NE(again.out.find("was changed under this clone while it was mounted"),
              std::string::npos)
        << again.out;
    EXPECT_NE(again.out.find(what), std::string::npos) << again.out;
    EXPECT_NE(again.out.find("remove " + record), std::string::npos) << again.out;
    EXPECT_FALSE(c_.IsMounted());
    RunResult check = Sh(ClonefsBinary() + " check --metadata " + Quote(c_.metadata));
    EXPECT_NE(check.code, 0) << check.out;
    EXPECT_NE(check.out.find("was changed under this clone while it was mounted"),
              std::string::npos)
        << check.out;
    RunResult info = Sh(ClonefsBinary() + " info --metadata " + Quote(c_.metadata));
    EXPECT_NE(info.out.find("a mount would refuse them"), std::string::npos) << info.out;
    // The user's word that dest is fine: the record removed, the clone mounts.
    ASSERT_EQ(unlink(record.c_str()), 0);
    RunResult resumed = c_.Mount("");
    EXPECT_EQ(resumed.code, 0) << resumed.out;
    EXPECT_EQ(ReadAt(c_.exposed(), 0), 0);
    ASSERT_EQ(c_.Unmount().code, 0);
  }
  int fd_ = -1;
};

TEST_F(DestWrittenMountTest, AWriteByAnotherProgramStopsTheCloneAndLaterMounts) {
  MountWithDestOpen();
  EXPECT_EQ(WriteAt(c_.exposed(), 0), 0) << "the clone's own writes are no change";
  ASSERT_EQ(pwrite(fd_, "x", 1, 300 * 4096), 1);
  WaitForDestChange(" was written by another program, pid " + std::to_string(getpid()));
  EXPECT_EQ(ReadAt(c_.exposed(), 0), EIO);
  EXPECT_EQ(ReadAt(c_.exposed(), kSize - kBlock), EIO);
  EXPECT_EQ(WriteAt(c_.exposed(), kBlock), EIO);
  EXPECT_EQ(Count(c_.LogText(), "was written by another program"), 1u) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  ExpectLaterMountsRefused("was written by another program");
}

// A loop device over dest (its driver writes the file itself, which makes
// no event): its presence alone stops the clone. Attached here through the
// descriptor opened before the mount (LOOP_SET_FD), as the guard refuses
// `losetup dest.img` itself.
TEST_F(DestWrittenMountTest, ALoopDeviceOverDestStopsTheClone) {
  MountWithDestOpen();
  const int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
  ASSERT_GE(ctl, 0);
  const int n = ioctl(ctl, LOOP_CTL_GET_FREE);
  close(ctl);
  ASSERT_GE(n, 0);
  const std::string loop = "/dev/loop" + std::to_string(n);
  const int lfd = open(loop.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(lfd, 0);
  ASSERT_EQ(ioctl(lfd, LOOP_SET_FD, fd_), 0) << strerror(errno);
  struct Detach {
    int fd;
    ~Detach() {
      if (fd < 0) return;
      ioctl(fd, LOOP_CLR_FD, 0);
      close(fd);
    }
  } detach{lfd};
  ASSERT_TRUE(
      ShOk("dd if=/dev/zero of=" + loop + " bs=4k count=4 seek=100 oflag=direct status=none"));
  WaitForDestChange("is the backing file of loop device " + loop);
  EXPECT_EQ(ReadAt(c_.exposed(), 0), EIO);
  ASSERT_EQ(c_.Unmount().code, 0);
  ioctl(lfd, LOOP_CLR_FD, 0);
  close(lfd);
  detach.fd = -1;
  // The kernel lets the file go once the device's last opener closes it.
  for (int i = 0; i < 100 && std::filesystem::exists("/sys/block/loop" + std::to_string(n) +
                                                     "/loop/backing_file");
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ExpectLaterMountsRefused("loop device " + loop);
}

}  // namespace
}  // namespace clonefs::testing
