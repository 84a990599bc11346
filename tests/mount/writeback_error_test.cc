// Device::DropCached never hides a write-back error from the next Flush
// (devices/device.h). The copier writes dest through the page cache
// (Device::WriteCached), its CacheDropper waits for that data's write-back
// (sync_file_range), and the commit that follows flushes dest: if the wait
// consumed the error, the commit would succeed and call hydrated regions
// whose data never reached the disk (SPEC §5, crash contract 2).
//
// A real write-back error needs a disk that fails writes the kernel has
// already accepted into the page cache: an ext4 without a journal on a loop
// device whose backing file lives on a tmpfs. dest is written and synced
// once (so ext4 allocates nothing more and has no metadata to write for an
// overwrite), then its data blocks are punched out of the backing file and
// the tmpfs is filled up: every later write-back of dest's data fails with
// ENOSPC in the loop driver, after write() returned, and nothing else fails.
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "devices/posix_device.h"
#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kFile = 16 * kMiB;

class WritebackErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    for (const char* tool : {"mkfs.ext4", "losetup"}) {
      if (Sh(std::string("command -v ") + tool).code != 0) {
        if (InCi()) FAIL() << tool << " is missing (CI=true: a skip is a failure)";
        GTEST_SKIP() << tool << " is missing";
      }
    }
    char tmpl[] = "/tmp/clonefs-wberr-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    store_ = root_ + "/store";
    fs_ = root_ + "/fs";
    ASSERT_EQ(mkdir(store_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(fs_.c_str(), 0755), 0);
    ASSERT_TRUE(ShOk("mount -t tmpfs -o size=40M,mode=0755 clonefs-test " + Quote(store_)));
    store_mounted_ = true;
    const std::string backing = store_ + "/backing";
    ASSERT_TRUE(ShOk("truncate -s 64M " + Quote(backing)));
    RunResult loop = Sh("losetup -f --show " + Quote(backing));
    ASSERT_EQ(loop.code, 0) << loop.out;
    loop_ = loop.out.substr(0, loop.out.find('\n'));
    ASSERT_TRUE(ShOk("mkfs.ext4 -q -F -b 4096 -O ^has_journal -E lazy_itable_init=0,nodiscard " +
                     Quote(loop_)));
    ASSERT_TRUE(ShOk("mount " + Quote(loop_) + " " + Quote(fs_)));
    fs_mounted_ = true;
  }

  void TearDown() override {
    if (fs_mounted_ && Sh("umount " + Quote(fs_)).code != 0) Sh("umount -l " + Quote(fs_));
    if (!loop_.empty()) Sh("losetup -d " + Quote(loop_));
    if (store_mounted_ && Sh("umount " + Quote(store_)).code != 0) Sh("umount -l " + Quote(store_));
    if (!root_.empty()) {
      rmdir(fs_.c_str());
      rmdir(store_.c_str());
      rmdir(root_.c_str());
    }
  }

  // dest with all its blocks allocated and on the disk: overwriting it
  // later changes no metadata that a fdatasync would write.
  void WriteDestToDisk() {
    ASSERT_TRUE(ShOk("dd if=/dev/urandom of=" + Quote(fs_ + "/dest.img") +
                     " bs=1M count=16 conv=fsync status=none"));
  }

  // Makes every later write-back of dest's data fail (see the top).
  void BreakDestData() {
    const std::string dest = fs_ + "/dest.img";
    WriteDestToDisk();
    int fd = ::open(dest.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    constexpr unsigned kMaxExtents = 64;
    std::vector<uint8_t> buf(sizeof(fiemap) + kMaxExtents * sizeof(fiemap_extent));
    auto* fm = reinterpret_cast<fiemap*>(buf.data());
    fm->fm_start = 0;
    fm->fm_length = kFile;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = kMaxExtents;
    ASSERT_EQ(::ioctl(fd, FS_IOC_FIEMAP, fm), 0);
    ::close(fd);
    ASSERT_GT(fm->fm_mapped_extents, 0u);
    ASSERT_TRUE(ShOk("echo 3 > /proc/sys/vm/drop_caches"));  // nothing of dest stays cached
    int backing = ::open((store_ + "/backing").c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(backing, 0);
    uint64_t punched = 0;
    for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
      const fiemap_extent& e = fm->fm_extents[i];
      ASSERT_EQ(::fallocate(backing, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            static_cast<off_t>(e.fe_physical), static_cast<off_t>(e.fe_length)),
                0);
      punched += e.fe_length;
    }
    ::close(backing);
    ASSERT_EQ(punched, kFile);
    Sh("dd if=/dev/zero of=" + Quote(store_ + "/filler") + " bs=64K status=none");
    RunResult df = Sh("df --output=avail -B1 " + Quote(store_) + " | tail -1");
    ASSERT_EQ(std::strtoull(df.out.c_str(), nullptr, 10), 0u) << df.out;
  }

  // dest as the daemon opens it (O_DIRECT), written as the copier writes it.
  std::unique_ptr<Device> OpenDest() {
    PosixDeviceOptions o;
    o.direct = true;
    o.create = true;
    o.min_size = kFile;
    Result<std::unique_ptr<Device>> d = OpenPosixDevice(fs_ + "/dest.img", o);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? std::move(d).value() : nullptr;
  }

  std::vector<uint8_t> Data() {
    std::vector<uint8_t> v(kFile);
    std::mt19937_64 rng(5);
    for (auto& b : v) b = static_cast<uint8_t>(rng() | 1);
    return v;
  }

  // What the copier does with `data`: a cached write into dest (accepted
  // into the page cache; the disk has not been asked yet), the
  // CacheDropper's write-back and wait, then the commit's flush, whose
  // result this returns.
  Status CopyLikeTheCopier(Device& dev, const std::vector<uint8_t>& data) {
    EXPECT_TRUE(dev.PageCached());
    Status w = dev.WriteCached(0, data.data(), data.size());
    EXPECT_TRUE(w.ok()) << "a cached write must be accepted: " << w.ToString();
    if (!w.ok()) return w;
    dev.DropCached(0, data.size());
    return dev.Flush();
  }

  std::string root_, store_, fs_, loop_;
  bool store_mounted_ = false, fs_mounted_ = false;
};

// The setup itself fails nothing while the tmpfs has room: the data is
// written back, evicted, flushed and reads back.
TEST_F(WritebackErrorTest, WithRoomTheDataIsWrittenBackAndFlushed) {
  WriteDestToDisk();
  auto dev = OpenDest();
  ASSERT_NE(dev, nullptr);
  const std::vector<uint8_t> data = Data();
  Status f = CopyLikeTheCopier(*dev, data);
  EXPECT_TRUE(f.ok()) << f.ToString();
  std::vector<uint8_t> got(kFile);
  ASSERT_TRUE(dev->Read(0, got.data(), kFile).ok());
  EXPECT_TRUE(got == data);
}

TEST_F(WritebackErrorTest, FlushReportsAWriteBackErrorThatDropCachedWaitedFor) {
  BreakDestData();
  auto dev = OpenDest();
  ASSERT_NE(dev, nullptr);
  // The write-back fails underneath the CacheDropper's wait.
  Status f = CopyLikeTheCopier(*dev, Data());
  EXPECT_FALSE(f.ok()) << "dest's flush succeeded although its data never reached the disk: "
                          "a commit would mark those regions hydrated";
}

}  // namespace
}  // namespace clonefs::testing
