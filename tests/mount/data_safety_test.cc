// SPEC §7a through the real `clonefs` command: every way a careless user or
// a changed environment could make a clone lose data is refused with its
// reason (or handled), nothing is left behind by a refused mount, the user's
// data is unchanged, and the source's sha256 never changes.
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "fuse/mount_table.h"
#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kSourceSize = 8ull << 20;
constexpr uint64_t kRegion = 64 * 1024;

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

class DataSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, kSourceSize, 7);
    src_sha_ = Sha256(c_.src);
  }
  void TearDown() override {
    if (!nbdfuse_mnt_.empty()) Sh("fusermount3 -u " + Quote(nbdfuse_mnt_));
    if (!nbdkit_pidfile_.empty()) Sh("kill $(cat " + Quote(nbdkit_pidfile_) + ")");
    for (auto it = loops_.rbegin(); it != loops_.rend(); ++it) Sh("losetup -d " + *it);
    for (auto it = umounts_.rbegin(); it != umounts_.rend(); ++it) Sh("umount -l " + Quote(*it));
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }

  // A loop device bound to the open file `fd` (LOOP_SET_FD: no open of the
  // file by path, which a live clone's guard would refuse).
  std::string LoopOverFd(int fd) {
    const int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    const int n = ctl < 0 ? -1 : ioctl(ctl, LOOP_CTL_GET_FREE);
    if (ctl >= 0) close(ctl);
    EXPECT_GE(n, 0);
    if (n < 0) return "";
    const std::string dev = "/dev/loop" + std::to_string(n);
    const int lfd = open(dev.c_str(), O_RDWR | O_CLOEXEC);
    const bool bound = lfd >= 0 && ioctl(lfd, LOOP_SET_FD, fd) == 0;
    EXPECT_TRUE(bound) << dev << ": " << strerror(errno);
    if (lfd >= 0) close(lfd);
    if (!bound) return "";
    loops_.push_back(dev);
    return dev;
  }
  std::string Loop(const std::string& file) {
    RunResult r = Sh("losetup -f --show " + Quote(file));
    EXPECT_EQ(r.code, 0) << r.out;
    if (r.code != 0) return "";
    loops_.push_back(FirstLine(r.out));
    return loops_.back();
  }
  RunResult MountWith(const std::string& args, const std::string& mnt) {
    return Sh(ClonefsBinary() + " mount " + args + " " + Quote(mnt));
  }
  // Writes `text` at `off` of the exposed file and fsyncs it.
  void WriteSynced(uint64_t off, const std::string& text) {
    ASSERT_TRUE(ShOk("printf %s " + Quote(text) + " | dd of=" + Quote(c_.exposed()) +
                     " bs=1 seek=" + std::to_string(off) + " conv=notrunc,fsync status=none"));
  }
  std::string ReadAt(const std::string& path, uint64_t off, size_t n) {
    std::ifstream f(path, std::ios::binary);
    f.seekg(static_cast<std::streamoff>(off));
    std::string s(n, '\0');
    f.read(s.data(), static_cast<std::streamsize>(n));
    return s;
  }
  void ExpectRefused(const RunResult& r, const std::string& what, const std::string& mnt) {
    EXPECT_EQ(r.code, 1) << r.out;
    EXPECT_NE(r.out.find(what), std::string::npos) << "expected '" << what << "' in:\n" << r.out;
    EXPECT_NE(r.out.find("clonefs: error: "), std::string::npos) << r.out;
    auto e = fuse::FindMount(mnt);
    EXPECT_TRUE(e.ok() && !e->has_value()) << "nothing may be mounted on " << mnt;
  }
  // A clone of the source with `text` written and fsynced at `off`, unmounted.
  void MakeCloneWith(uint64_t off, const std::string& text, const std::string& extra = "") {
    RunResult m = c_.Mount("--no-hydration " + extra);
    ASSERT_EQ(m.code, 0) << m.out;
    WriteSynced(off, text);
    RunResult u = c_.Unmount();
    ASSERT_EQ(u.code, 0) << u.out;
  }

  CloneDir c_;
  std::string src_sha_;
  std::vector<std::string> loops_, umounts_;
  std::string nbdkit_pidfile_, nbdfuse_mnt_;
};

// Item 1: a second clone on the same dest with another --metadata is refused
// while the first is live, and the first clone's answered write survives.
TEST_F(DataSafetyTest, DestIsLockedWhileMounted) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  WriteSynced(5000000, "X");
  const std::string mnt2 = c_.dir() / "mnt2";
  mkdir(mnt2.c_str(), 0755);
  const std::string other_md = c_.dir() / "other.md";
  RunResult r = MountWith("--metadata " + Quote(other_md) + " " + Quote(c_.src) + " " +
                              Quote(c_.dst),
                          mnt2);
  ExpectRefused(r, "is in use by another clonefs daemon (pid " + std::to_string(c_.DaemonPid()),
                mnt2);
  EXPECT_FALSE(std::filesystem::exists(other_md)) << "a refused mount creates no metadata";
  EXPECT_EQ(ReadAt(c_.exposed(), 5000000, 1), "X");
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_EQ(ReadAt(c_.dst, 5000000, 1), "X");
}

// Item 1, whatever path leads to dest: a second clone through a loop device
// over a live clone's dest file is refused, in either order, naming the
// other path; the live clone's fsynced data and the second source are
// untouched. A loop device over the exposed file stays a fine way to use a
// clone, even as another clone's dest.
TEST_F(DataSafetyTest, DestLockedThroughLoopDevicesInEitherOrder) {
  const std::string src2 = c_.dir() / "src2.img";
  WriteRandomFile(src2, kSourceSize, 8);
  const std::string src2_sha = Sha256(src2);
  const std::string mnt2 = c_.dir() / "mnt2";
  mkdir(mnt2.c_str(), 0755);
  const std::string md2 = c_.dir() / "md2";

  // A on the file first, then B on a loop device over that file. A live
  // clone's daemon refuses `losetup` on its dest itself (with the privilege
  // to: the guard), so the loop device is bound here to a descriptor opened
  // before A's mount, which the guard is not asked about.
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  const int held = open(c_.dst.c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(held, 0);
  m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  WriteSynced(kRegion + 5, "FIRSTCLONE");
  RunResult refused_loop = Sh("losetup -f --show " + Quote(c_.dst) + " 2>&1");
  EXPECT_NE(refused_loop.code, 0) << refused_loop.out;
  EXPECT_NE(refused_loop.out.find("Operation not permitted"), std::string::npos)
      << refused_loop.out;
  const std::string loop = LoopOverFd(held);
  close(held);
  ASSERT_FALSE(loop.empty());
  RunResult r =
      MountWith("--no-hydration --metadata " + Quote(md2) + " " + Quote(src2) + " " + loop, mnt2);
  ExpectRefused(r,
                "dest " + loop + " is a loop device over " + c_.dst +
                    ", which another clonefs daemon (pid " + std::to_string(c_.DaemonPid()) +
                    ") uses as its dest",
                mnt2);
  EXPECT_FALSE(std::filesystem::exists(md2)) << "a refused mount creates no metadata";
  // A itself stops once it sees the loop device (within a second: writes
  // through it would bypass it), and records that it did.
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {  // up to 10 s
    Result<control::StatusReport> st = QueryStatus(c_.mnt);
    seen = st.ok() && st->dest_change.find("loop device " + loop) != std::string::npos;
    if (!seen) usleep(50000);
  }
  ASSERT_TRUE(seen) << "the live clone must see the loop device over its dest";
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_EQ(ReadAt(c_.dst, kRegion + 5, 10), "FIRSTCLONE") << "the live clone's data survives";
  EXPECT_EQ(HydratedRegions(c_.metadata), 1);
  const std::string record = c_.metadata + "/dest-written";
  EXPECT_TRUE(std::filesystem::exists(record));

  // Held by no clone, a loop device over the dest still lets anything write
  // it behind the clone: refused, saying how to fix it.
  r = c_.Mount("--no-hydration");
  ExpectRefused(r, "dest " + c_.dst + " is the backing file of loop device " + loop, c_.mnt);
  EXPECT_NE(r.out.find("losetup -d " + loop), std::string::npos) << r.out;

  // B on the loop device first (a fresh, sparse file), then A on the file.
  const std::string sp = c_.dir() / "sp.img";
  ASSERT_TRUE(ShOk("truncate -s " + std::to_string(kSourceSize) + " " + Quote(sp)));
  const std::string loop_b = Loop(sp);
  ASSERT_FALSE(loop_b.empty());
  m = MountWith("--no-hydration --metadata " + Quote(md2) + " " + Quote(src2) + " " + loop_b, mnt2);
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string exposed_b = mnt2 + "/" + loop_b.substr(loop_b.rfind('/') + 1);
  ASSERT_TRUE(ShOk("printf SECONDCLONE | dd of=" + Quote(exposed_b) + " bs=1 seek=" +
                   std::to_string(2 * kRegion) + " conv=notrunc,fsync status=none"));
  const std::string md3 = c_.dir() / "md3";
  r = MountWith("--no-hydration --metadata " + Quote(md3) + " " + Quote(c_.src) + " " + Quote(sp),
                c_.mnt);
  ExpectRefused(r, "dest " + sp + " is in use by another clonefs daemon (pid ", c_.mnt);
  EXPECT_NE(r.out.find("through loop device " + loop_b + " over it"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(md3));
  // Nor with --overwrite-dest.
  r = MountWith("--overwrite-dest --metadata " + Quote(md3) + " " + Quote(c_.src) + " " + Quote(sp),
                c_.mnt);
  ExpectRefused(r, "is in use by another clonefs daemon", c_.mnt);
  EXPECT_EQ(ReadAt(exposed_b, 2 * kRegion, 11), "SECONDCLONE");
  ASSERT_EQ(Sh(ClonefsBinary() + " unmount " + Quote(mnt2)).code, 0);
  EXPECT_EQ(ReadAt(sp, 2 * kRegion, 11), "SECONDCLONE");
  EXPECT_EQ(Sha256(src2), src2_sha);

  // The normal use: a loop device over the exposed file. Not an alias of
  // dest (it goes through the clone), so it can even be a dest itself.
  // (Nothing was written through the loop device: the record goes.)
  ASSERT_TRUE(ShOk("losetup -d " + loop));
  std::erase(loops_, loop);
  ASSERT_EQ(unlink(record.c_str()), 0);
  m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string over_exposed = c_.AttachLoop();
  ASSERT_FALSE(over_exposed.empty());
  const std::string md4 = c_.dir() / "md4";
  m = MountWith("--no-hydration --overwrite-dest --metadata " + Quote(md4) + " " + Quote(src2) +
                    " " + over_exposed,
                mnt2);
  ASSERT_EQ(m.code, 0) << "a loop device over the exposed file is no alias of dest: " << m.out;
  ASSERT_EQ(Sh(ClonefsBinary() + " unmount " + Quote(mnt2)).code, 0);
  c_.DetachLoop(over_exposed);
  ASSERT_EQ(c_.Unmount().code, 0);
}

// SPEC §2, §7a: a dest, metadata directory or log file that would be created
// on a file system stored inside the source is refused before anything is
// created there; the source image does not change.
TEST_F(DataSafetyTest, NewFilesOnAFileSystemInsideTheSourceAreRefused) {
  const std::string fsimg = c_.dir() / "fs.img";
  const std::string fsmnt = c_.dir() / "fsmnt";
  mkdir(fsmnt.c_str(), 0755);
  // No lazy initialisation: the kernel would go on writing the image.
  ASSERT_TRUE(ShOk("truncate -s 32M " + Quote(fsimg) + " && mkfs.ext4 -q -E " +
                   "lazy_itable_init=0,lazy_journal_init=0 " + Quote(fsimg)));
  const std::string fsloop = Loop(fsimg);
  ASSERT_FALSE(fsloop.empty());
  ASSERT_TRUE(ShOk("mount -o noatime " + fsloop + " " + Quote(fsmnt)));
  umounts_.push_back(fsmnt);
  ASSERT_TRUE(ShOk("sync -f " + Quote(fsmnt) + " && sync " + Quote(fsimg)));
  const std::string before = Sha256(fsimg);
  auto expect_unchanged = [&] {
    ASSERT_TRUE(ShOk("sync -f " + Quote(fsmnt) + " && sync " + Quote(fsimg)));
    EXPECT_EQ(Sha256(fsimg), before) << "the source was written";
    EXPECT_TRUE(std::filesystem::is_empty(fsmnt / std::filesystem::path("lost+found")));
    size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(fsmnt)) ++entries;
    EXPECT_EQ(entries, 1u) << "only lost+found may be there";
  };
  const std::string src = Quote(fsimg);
  const std::string md = c_.dir() / "mdF";

  // A new dest there, metadata elsewhere.
  const std::string dest = fsmnt + "/d.img";
  RunResult r = MountWith("--metadata " + Quote(md) + " " + src + " " + Quote(dest), c_.mnt);
  ExpectRefused(r, "dest " + dest + " would be stored on the source " + fsimg, c_.mnt);
  EXPECT_FALSE(std::filesystem::exists(md));
  expect_unchanged();

  // The same with the default metadata directory beside it.
  r = MountWith(src + " " + Quote(dest), c_.mnt);
  ExpectRefused(r, "dest " + dest + " would be stored on the source", c_.mnt);
  expect_unchanged();

  // Dest elsewhere, metadata there.
  const std::string out = c_.dir() / "out.img";
  r = MountWith("--metadata " + Quote(fsmnt + "/md") + " " + src + " " + Quote(out), c_.mnt);
  ExpectRefused(r, "metadata directory " + fsmnt + "/md is stored on the source " + fsimg, c_.mnt);
  EXPECT_FALSE(std::filesystem::exists(out)) << "a refused mount creates no dest";
  expect_unchanged();

  // The log file there.
  r = MountWith("--metadata " + Quote(md) + " --log-file " + Quote(fsmnt + "/clonefs.log") + " " +
                    src + " " + Quote(out),
                c_.mnt);
  ExpectRefused(r, "log file " + fsmnt + "/clonefs.log is stored on the source", c_.mnt);
  EXPECT_FALSE(std::filesystem::exists(out));
  EXPECT_FALSE(std::filesystem::exists(md));
  expect_unchanged();

  // Everything elsewhere: the clone of the mounted image works.
  r = MountWith("--no-hydration --metadata " + Quote(md) + " " + src + " " + Quote(out), c_.mnt);
  ASSERT_EQ(r.code, 0) << r.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  expect_unchanged();
}

// Item 2: a dest that holds data but has no metadata is never treated as
// blank: deleted metadata, a renamed dest, a fresh --metadata are refused;
// --overwrite-dest says it explicitly.
TEST_F(DataSafetyTest, DestWithDataButNoMetadataIsRefused) {
  MakeCloneWith(3 * kRegion + 10, "USERDATA");
  const std::string dst_sha = Sha256(c_.dst);

  // A fresh --metadata over the same dest.
  const std::string fresh = c_.dir() / "fresh.md";
  ExpectRefused(c_.Mount("--metadata " + Quote(fresh)), "already holds data", c_.mnt);
  EXPECT_FALSE(std::filesystem::exists(fresh));

  // The metadata deleted.
  std::filesystem::remove_all(c_.metadata);
  RunResult r = c_.Mount();
  ExpectRefused(r, "already holds data (from offset", c_.mnt);
  EXPECT_NE(r.out.find("--overwrite-dest"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("new directory"), std::string::npos) << "no advice that loses data: "
                                                           << r.out;
  EXPECT_FALSE(std::filesystem::exists(c_.metadata)) << "a refused mount creates no metadata";

  // The dest renamed.
  const std::string renamed = c_.dir() / "renamed.img";
  std::filesystem::rename(c_.dst, renamed);
  ExpectRefused(MountWith(Quote(c_.src) + " " + Quote(renamed), c_.mnt), "already holds data",
                c_.mnt);
  EXPECT_EQ(Sha256(renamed), dst_sha) << "the user's data is unchanged";
  std::filesystem::rename(renamed, c_.dst);

  // Said explicitly: the dest is overwritten with the source.
  RunResult o = c_.Mount("--overwrite-dest");
  ASSERT_EQ(o.code, 0) << o.out;
  EXPECT_EQ(ReadAt(c_.exposed(), 3 * kRegion + 10, 8), ReadAt(c_.src, 3 * kRegion + 10, 8));
  ASSERT_EQ(c_.Unmount().code, 0);
}

// The metadata directory removed while the clone is mounted (rm -rf
// DEST.clonefs, taken for a cache): RocksDB went on syncing into unlinked
// files, so every fsync succeeded although nothing of it would survive a
// restart. Now the first commit after the removal fails: fsync gets EIO, the
// clone goes read-only (reads and writes to hydrated regions go on) and the
// log says why.
TEST_F(DataSafetyTest, MetadataRemovedWhileMountedFailsTheNextFsync) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const int fd = open(c_.exposed().c_str(), O_RDWR | O_CLOEXEC);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  const std::string a = "BEFORE", b = "AFTER";
  ASSERT_EQ(pwrite(fd, a.data(), a.size(), 3 * kRegion + 10), static_cast<ssize_t>(a.size()));
  ASSERT_EQ(fsync(fd), 0) << std::strerror(errno);

  std::filesystem::remove_all(c_.metadata);
  ASSERT_EQ(pwrite(fd, b.data(), b.size(), 5 * kRegion + 10), static_cast<ssize_t>(b.size()));
  EXPECT_EQ(fsync(fd), -1);
  EXPECT_EQ(errno, EIO) << std::strerror(errno);
  EXPECT_NE(c_.LogText().find("was removed while the clone was open"), std::string::npos)
      << c_.LogText();
  EXPECT_EQ(ReadAt(c_.exposed(), 3 * kRegion + 10, a.size()), a);
  EXPECT_EQ(pwrite(fd, b.data(), b.size(), 3 * kRegion + 20), static_cast<ssize_t>(b.size()))
      << "a hydrated region stays writable in read-only mode: " << std::strerror(errno);
  EXPECT_EQ(fsync(fd), -1);
  EXPECT_EQ(errno, EIO);
  close(fd);
  c_.Unmount();
  EXPECT_FALSE(c_.IsMounted());
}

// Item 2: what a new clone may start on: a dest it creates, an empty one, one
// that is all holes.
TEST_F(DataSafetyTest, NewCloneStartsOnEmptyOrSparseDest) {
  ASSERT_TRUE(ShOk("truncate -s 0 " + Quote(c_.dst)));
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  std::filesystem::remove_all(c_.metadata);
  std::filesystem::remove(c_.dst);
  ASSERT_TRUE(ShOk("truncate -s 16M " + Quote(c_.dst)));  // larger than the source, all holes
  m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
}

// Item 3: a dest removed and created again (the file system may reuse the
// inode number) is refused; `check` reaches the same verdict.
TEST_F(DataSafetyTest, RecreatedDestIsRefused) {
  MakeCloneWith(3 * kRegion, "HYDRATED");
  RunResult info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  EXPECT_EQ(info.code, 0) << info.out;
  EXPECT_NE(info.out.find("a mount would accept them"), std::string::npos) << info.out;
  std::filesystem::remove(c_.dst);
  ASSERT_TRUE(ShOk("truncate -s " + std::to_string(kSourceSize) + " " + Quote(c_.dst)));
  RunResult r = c_.Mount();
  ExpectRefused(r, "belongs to a different clone", c_.mnt);
  // Same inode number or not, the file is told apart (inode or birth time).
  EXPECT_TRUE(r.out.find("dest birth time") != std::string::npos ||
              r.out.find("dest inode") != std::string::npos) << r.out;
  RunResult chk = Sh(ClonefsBinary() + " check " + Quote(c_.dst));
  EXPECT_NE(chk.code, 0) << chk.out;
  EXPECT_NE(chk.out.find("mismatch: dest"), std::string::npos) << chk.out;
  info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  EXPECT_NE(info.out.find("a mount would refuse them"), std::string::npos) << info.out;
}

// Item 4: a truncated dest (same inode) is refused, never extended.
TEST_F(DataSafetyTest, TruncatedDestIsRefusedAndNotExtended) {
  MakeCloneWith(3 * kRegion, "HYDRATED");
  ASSERT_TRUE(ShOk("truncate -s 0 " + Quote(c_.dst)));
  RunResult r = c_.Mount();
  ExpectRefused(r, "shorter than the image", c_.mnt);
  EXPECT_EQ(std::filesystem::file_size(c_.dst), 0u) << "dest must not be extended silently";
  RunResult chk = Sh(ClonefsBinary() + " check " + Quote(c_.dst));
  EXPECT_NE(chk.code, 0) << chk.out;
  EXPECT_NE(chk.out.find("shorter than the image"), std::string::npos) << chk.out;
  RunResult info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  EXPECT_NE(info.out.find("a mount would refuse them"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("shorter than the image"), std::string::npos) << info.out;
}

// Item 5: the source under another name: a loop device backed by it, a
// bind-mounted path, a hard link.
TEST_F(DataSafetyTest, DestThatIsTheSourceUnderAnotherNameIsRefused) {
  const std::string md = c_.dir() / "md";
  const std::string loop = Loop(c_.src);
  ASSERT_FALSE(loop.empty());
  RunResult r = MountWith("--metadata " + Quote(md) + " " + Quote(c_.src) + " " + loop, c_.mnt);
  ExpectRefused(r, "is a loop device backed by the source", c_.mnt);
  EXPECT_FALSE(std::filesystem::exists(md));

  const std::string bind = c_.dir() / "bind";
  mkdir(bind.c_str(), 0755);
  ASSERT_TRUE(ShOk("mount --bind " + Quote(c_.dir().path()) + " " + Quote(bind)));
  umounts_.push_back(bind);
  ExpectRefused(MountWith("--metadata " + Quote(md) + " " + Quote(c_.src) + " " +
                              Quote(bind + "/src.img"),
                          c_.mnt),
                "is the source itself (same inode)", c_.mnt);

  // A file system image whose file system holds the source: a dest on the
  // loop device under it would write the source's blocks.
  const std::string fsimg = c_.dir() / "fs.img";
  const std::string fsmnt = c_.dir() / "fsmnt";
  mkdir(fsmnt.c_str(), 0755);
  ASSERT_TRUE(ShOk("truncate -s 32M " + Quote(fsimg) + " && mkfs.ext4 -q " + Quote(fsimg)));
  const std::string fsloop = Loop(fsimg);
  ASSERT_TRUE(ShOk("mount " + fsloop + " " + Quote(fsmnt)));
  umounts_.push_back(fsmnt);
  const std::string inner = fsmnt + "/inner.img";
  ASSERT_TRUE(ShOk("cp " + Quote(c_.src) + " " + Quote(inner)));
  ExpectRefused(MountWith("--metadata " + Quote(md) + " " + Quote(inner) + " " + fsloop, c_.mnt),
                "is stored on dest", c_.mnt);
  EXPECT_EQ(Sha256(inner), src_sha_);
}

// Item 3: a block-device dest whose device number now points at another
// file is refused; `check` says so too.
TEST_F(DataSafetyTest, BlockDeviceDestReattachedElsewhereIsRefused) {
  const std::string md = c_.dir() / "md";
  const std::string a = c_.dir() / "a.img", b = c_.dir() / "b.img";
  ASSERT_TRUE(ShOk("truncate -s 8M " + Quote(a) + " " + Quote(b)));
  const std::string loop = Loop(a);
  ASSERT_FALSE(loop.empty());
  const std::string args = "--no-hydration --metadata " + Quote(md) + " " + Quote(c_.src) + " " + loop;
  RunResult m = MountWith(args, c_.mnt);
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(ShOk("printf DATA | dd of=" + Quote(c_.mnt + "/" +
                                                  loop.substr(loop.rfind('/') + 1)) +
                   " bs=1 seek=" + std::to_string(3 * kRegion) + " conv=notrunc,fsync status=none"));
  ASSERT_EQ(Sh(ClonefsBinary() + " unmount " + Quote(c_.mnt)).code, 0);
  // udev probes the device once the daemon has let it go; a detach during
  // that probe is deferred, and reattaching at once would find it busy.
  ASSERT_TRUE(ShOk("udevadm settle; losetup -d " + loop + " && for i in $(seq 100); do losetup " +
                   loop + " " + Quote(b) + " 2>/dev/null && exit 0; sleep 0.1; done; losetup " +
                   loop + " " + Quote(b)));
  RunResult r = MountWith(args, c_.mnt);
  ExpectRefused(r, "another disk or backing file", c_.mnt);
  RunResult chk = Sh(ClonefsBinary() + " check --metadata " + Quote(md));
  EXPECT_NE(chk.code, 0) << chk.out;
  EXPECT_NE(chk.out.find("another disk or backing file"), std::string::npos) << chk.out;
  EXPECT_EQ(ReadAt(a, 3 * kRegion, 4), "DATA");
}

// Item 11: a source behind a FUSE file system that invents mtimes (nbdfuse
// sets it to its own mount time) resumes after that file system is mounted
// again; a real content change is still refused.
TEST_F(DataSafetyTest, SourceBehindNbdfuseResumesAfterItsRemount) {
  const std::string sock = c_.dir() / "nbd.sock", kpid = c_.dir() / "nbdkit.pid";
  const std::string fmnt = c_.dir() / "nbdfuse", fpid = c_.dir() / "nbdfuse.pid";
  mkdir(fmnt.c_str(), 0755);
  ASSERT_TRUE(ShOk("nbdkit --unix " + Quote(sock) + " --pidfile " + Quote(kpid) +
                   " --readonly file " + Quote(c_.src)));
  nbdkit_pidfile_ = kpid;
  auto start_nbdfuse = [&] {
    unlink(fpid.c_str());
    ASSERT_TRUE(ShOk("nbdfuse -r -P " + Quote(fpid) + " " + Quote(fmnt) + " --unix " +
                     Quote(sock) + " </dev/null >/dev/null 2>&1 &"));
    for (int i = 0; i < 200 && access(fpid.c_str(), F_OK) != 0; ++i) usleep(25000);
    ASSERT_EQ(access(fpid.c_str(), F_OK), 0) << "nbdfuse did not start";
    nbdfuse_mnt_ = fmnt;
  };
  auto stop_nbdfuse = [&] {
    ASSERT_TRUE(ShOk("fusermount3 -u " + Quote(fmnt)));
    nbdfuse_mnt_.clear();
  };
  const std::string source = fmnt + "/nbd";
  const std::string args = Quote(source) + " " + Quote(c_.dst);
  start_nbdfuse();
  RunResult m = MountWith("--no-hydration " + args, c_.mnt);
  ASSERT_EQ(m.code, 0) << m.out;
  WriteSynced(3 * kRegion, "KEPT");
  ASSERT_EQ(c_.Unmount().code, 0);
  stop_nbdfuse();
  sleep(1);  // nbdfuse's invented mtime is its mount time, in seconds
  start_nbdfuse();
  m = MountWith("--no-hydration " + args, c_.mnt);
  ASSERT_EQ(m.code, 0) << "the same content behind a remounted nbdfuse must resume: " << m.out;
  EXPECT_EQ(ReadAt(c_.exposed(), 3 * kRegion, 4), "KEPT");
  ASSERT_EQ(c_.Unmount().code, 0);
  stop_nbdfuse();

  // A real change of the content, at a place only the wide fingerprint reads.
  const uint64_t grid = ((kSourceSize - 4096) / 31 * 5) & ~uint64_t{4095};
  ASSERT_TRUE(ShOk("printf CHANGED | dd of=" + Quote(c_.src) + " bs=1 seek=" +
                   std::to_string(grid + 100) + " conv=notrunc status=none"));
  src_sha_ = Sha256(c_.src);
  start_nbdfuse();
  RunResult r = MountWith("--no-hydration " + args, c_.mnt);
  ExpectRefused(r, "source wide fingerprint differs", c_.mnt);
  stop_nbdfuse();
}

// Item 12: a mount that fails after creating dest and metadata removes both,
// and says why without libfuse's stray quotes.
TEST_F(DataSafetyTest, FailedMountLeavesNothingBehind) {
  RunResult r = c_.Mount("-o bogus_opt");
  ExpectRefused(r, "bogus_opt", c_.mnt);
  EXPECT_EQ(r.out.find('`'), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("check the -o options"), std::string::npos) << r.out;
  EXPECT_FALSE(std::filesystem::exists(c_.dst)) << "the dest this mount created is removed";
  EXPECT_FALSE(std::filesystem::exists(c_.metadata)) << "the metadata it created is removed";
  EXPECT_FALSE(std::filesystem::exists(c_.log)) << "the --log-file it created is removed";

  // An existing empty metadata directory stays, emptied again.
  mkdir(c_.metadata.c_str(), 0755);
  r = c_.Mount("-o bogus_opt");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(std::filesystem::is_empty(c_.metadata));
  EXPECT_FALSE(std::filesystem::exists(c_.dst));
}

// Item 12, what it did not create stays: a --metadata that is a symlink to
// a missing directory (say, on a file system not mounted yet), or lies
// under one, is refused and the user's symlink is kept. Before, the failed
// mount took the link for a directory it had made and removed it.
TEST_F(DataSafetyTest, FailedMountKeepsDanglingSymlinksItWasGiven) {
  const std::string link = c_.dir() / "md-link";
  const std::string target = c_.dir() / "not-mounted-yet/md";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  for (const std::string& md : {link, link + "/sub"}) {
    SCOPED_TRACE(md);
    RunResult r =
        MountWith("--metadata " + Quote(md) + " " + Quote(c_.src) + " " + Quote(c_.dst), c_.mnt);
    ExpectRefused(r, "metadata " + md + " cannot be opened", c_.mnt);
    struct stat st;
    EXPECT_EQ(lstat(link.c_str(), &st), 0) << "the user's symlink is kept: " << r.out;
    EXPECT_FALSE(std::filesystem::exists(target)) << r.out;
    EXPECT_FALSE(std::filesystem::exists(c_.dst)) << "the dest it created is removed";
  }
  // A dest that is such a symlink is refused as what it is (it was called
  // "appeared while this mount was creating it (another mount ...)").
  const std::string dlink = c_.dir() / "dest-link";
  ASSERT_EQ(symlink(target.c_str(), dlink.c_str()), 0);
  RunResult r = MountWith(Quote(c_.src) + " " + Quote(dlink), c_.mnt);
  ExpectRefused(r, "dest " + dlink + " is a symlink to " + target + ", which does not exist",
                c_.mnt);
  struct stat st;
  EXPECT_EQ(lstat(dlink.c_str(), &st), 0) << r.out;
  EXPECT_FALSE(std::filesystem::exists(dlink + ".clonefs")) << r.out;
}

// Item 14: the options of a mount that fails are not stored with the clone:
// the next mount does not inherit a bad -o option.
TEST_F(DataSafetyTest, FailedMountStoresNoSettings) {
  MakeCloneWith(3 * kRegion, "HYDRATED", "--rate 2M");
  RunResult r = c_.Mount("--rate 1M -o bogus_opt");
  ExpectRefused(r, "bogus_opt", c_.mnt);
  RunResult info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  EXPECT_EQ(info.out.find("bogus_opt"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("--rate 2M"), std::string::npos) << info.out;
  r = c_.Mount();
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ReadAt(c_.exposed(), 3 * kRegion, 8), "HYDRATED");
  EXPECT_EQ(c_.Unmount().code, 0);
}

// Item 14: a log file inside the mount point is refused before it exists,
// and the refused mount leaves no dest either.
TEST_F(DataSafetyTest, LogFileInsideTheMountPointIsNotCreated) {
  const std::string log = c_.mnt + "/log";
  RunResult r =
      MountWith("--log-file " + Quote(log) + " " + Quote(c_.src) + " " + Quote(c_.dst), c_.mnt);
  ExpectRefused(r, "log file " + log + " lies inside the mount point", c_.mnt);
  EXPECT_FALSE(std::filesystem::exists(log)) << r.out;
  EXPECT_FALSE(std::filesystem::exists(c_.dst)) << r.out;
  EXPECT_FALSE(std::filesystem::exists(c_.metadata)) << r.out;
  EXPECT_TRUE(std::filesystem::is_empty(c_.mnt));
  // An existing log file is appended to, and kept.
  ASSERT_TRUE(ShOk("echo earlier > " + Quote(c_.log)));
  r = c_.Mount("-o bogus_opt");
  ExpectRefused(r, "bogus_opt", c_.mnt);
  ASSERT_TRUE(std::filesystem::exists(c_.log));
  EXPECT_EQ(c_.LogText().rfind("earlier\n", 0), 0u) << c_.LogText();
  EXPECT_NE(c_.LogText().find("bogus_opt"), std::string::npos) << c_.LogText();
}

// The log is appended to --log-file and renames it to FILE.1 at its cap.
// Given the source's path, log lines were appended to the source image (a
// 1 MiB source grew by 1436 bytes, and the mount served the grown file); a
// source larger than the cap was renamed away and a log file took its name.
// Given the dest's or a metadata file's path, they went into the clone's
// data or its metadata store. Each is refused before anything is written.
TEST_F(DataSafetyTest, LogFileThatIsTheSourceDestOrMetadataIsRefused) {
  MakeCloneWith(3 * kRegion + 10, "USERDATA");
  const std::string dst_sha = Sha256(c_.dst);
  const std::string link = c_.dir() / "source-link.img";
  ASSERT_TRUE(ShOk("ln " + Quote(c_.src) + " " + Quote(link)));
  const std::string current = c_.metadata + "/CURRENT";
  const std::string current_text = Sh("cat " + Quote(current)).out;
  struct Case {
    std::string log, refused;
  } const cases[] = {
      {c_.src, "log file " + c_.src + " is the source " + c_.src},
      {link, "log file " + link + " is the source " + c_.src},
      {c_.dst, "log file " + c_.dst + " is the dest " + c_.dst},
      {current, "log file " + current + " lies inside the metadata directory " + c_.metadata},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.log);
    RunResult r =
        MountWith("--log-file " + Quote(k.log) + " " + Quote(c_.src) + " " + Quote(c_.dst), c_.mnt);
    ExpectRefused(r, k.refused, c_.mnt);
    EXPECT_NE(r.out.find("give --log-file a file of its own"), std::string::npos) << r.out;
    if (r.code == 0) (void)c_.Unmount();
  }
  EXPECT_EQ(Sha256(c_.dst), dst_sha) << "the dest was written";
  EXPECT_EQ(Sh("cat " + Quote(current)).out, current_text) << "the metadata was written";
  // The metadata's own log, named explicitly, is the default log.
  RunResult r = MountWith("--log-file " + Quote(c_.metadata + "/clonefs.log") + " " +
                              Quote(c_.src) + " " + Quote(c_.dst),
                          c_.mnt);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(ReadAt(c_.exposed(), 3 * kRegion + 10, 8), "USERDATA");
  EXPECT_EQ(c_.Unmount().code, 0);
}

// Item 14: a path that reaches the mount point under another name (a
// symlink to it, a bind mount of its parent, the mount point named through a
// symlink) lies inside it as much as one spelled under it. Before, such a
// metadata directory was created under the mount point and the daemon hung
// for good opening it through its own mount (the `clonefs mount` never
// returned); now each is refused before anything is created.
TEST_F(DataSafetyTest, PathsReachingTheMountPointUnderAnotherNameAreRefused) {
  const std::string link = c_.dir() / "mnt-link";
  ASSERT_EQ(symlink(c_.mnt.c_str(), link.c_str()), 0);
  const std::string bind = c_.dir() / "bind";
  mkdir(bind.c_str(), 0755);
  ASSERT_TRUE(ShOk("mount --bind " + Quote(c_.dir().path()) + " " + Quote(bind)));
  umounts_.push_back(bind);
  struct Case {
    std::string options, dest, mnt, refused;
  };
  const Case cases[] = {
      {"--metadata " + Quote(link + "/md"), c_.dst, c_.mnt, "metadata directory " + link + "/md"},
      {"--metadata " + Quote(bind + "/mnt/md"), c_.dst, c_.mnt,
       "metadata directory " + bind + "/mnt/md"},
      {"--log-file " + Quote(link + "/log"), c_.dst, c_.mnt, "log file " + link + "/log"},
      {"--metadata " + Quote(c_.dir() / "md"), link + "/dst.img", c_.mnt,
       "dest " + link + "/dst.img"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.options + " " + k.dest);
    // Bounded: without the check the command waited for a daemon that hung.
    RunResult r = Sh("timeout -k 5 30 " + ClonefsBinary() + " mount " + k.options + " " +
                     Quote(c_.src) + " " + Quote(k.dest) + " " + Quote(k.mnt));
    ExpectRefused(r, k.refused + " lies inside the mount point " + c_.mnt, c_.mnt);
    EXPECT_NE(r.out.find("through a symlink or a bind mount"), std::string::npos) << r.out;
    EXPECT_TRUE(std::filesystem::is_empty(c_.mnt)) << "nothing is created under the mount point";
    EXPECT_FALSE(std::filesystem::exists(c_.dst)) << r.out;
    EXPECT_FALSE(std::filesystem::exists(c_.dir() / "md")) << r.out;
  }
}

// Item 14: a new clone whose metadata cannot be created (its file system is
// full) leaves neither the metadata directory (nor what RocksDB wrote in
// it) nor the dest, says that no clone was created (not that one resumes),
// and the next mount finds no interrupted creation.
TEST_F(DataSafetyTest, NewCloneOnAFullMetadataFileSystemLeavesNothing) {
  char tmpl[] = "/tmp/clonefs-mdfs-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string fs = tmpl;
  ASSERT_TRUE(ShOk("mount -t tmpfs -o size=1M,mode=0755 clonefs-test " + Quote(fs)));
  umounts_.push_back(fs);
  Sh("dd if=/dev/zero of=" + Quote(fs + "/filler") + " bs=4k 2>/dev/null");
  ASSERT_EQ(std::stoull(Sh("df --output=avail -B1 " + Quote(fs) + " | tail -1").out), 0u);
  const std::string md = fs + "/parent/md", dst = c_.dir().path() + "/dN.img";
  const std::string args = "--metadata " + Quote(md) + " " + Quote(c_.src) + " " + Quote(dst);
  for (int attempt = 0; attempt < 2; ++attempt) {
    SCOPED_TRACE(attempt);
    RunResult r = MountWith(args, c_.mnt);
    ExpectRefused(r, "the metadata file system is full", c_.mnt);
    EXPECT_NE(r.out.find("no clone was created"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("resumes from its last commit"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("interrupted creation"), std::string::npos) << r.out;
    EXPECT_FALSE(std::filesystem::exists(fs + "/parent")) << "made for the clone: removed";
    EXPECT_FALSE(std::filesystem::exists(dst)) << "the dest this mount created is removed";
  }
  // A directory that existed is kept, with nothing added.
  ASSERT_EQ(mkdir(md.substr(0, md.rfind('/')).c_str(), 0755), 0);
  ASSERT_EQ(mkdir(md.c_str(), 0755), 0);
  RunResult r = MountWith(args, c_.mnt);
  ExpectRefused(r, "the metadata file system is full", c_.mnt);
  EXPECT_TRUE(std::filesystem::is_directory(md));
  EXPECT_TRUE(std::filesystem::is_empty(md)) << Sh("ls -la " + Quote(md)).out;
  Sh("rm -rf " + Quote(fs + "/parent"));
  std::filesystem::remove(fs + "/filler");
}

// Item 3 where the file system keeps no birth time (ext4 with 128-byte
// inodes): a dest removed and created again under the same inode number is
// told apart by its inode generation, and refused; it is never served as if
// what was hydrated were there.
TEST_F(DataSafetyTest, RecreatedDestWithoutBirthTimeIsRefused) {
  const std::string img = c_.dir().path() + "/ext4.img", fs = c_.dir().path() + "/ext4";
  ASSERT_TRUE(ShOk("truncate -s 64M " + Quote(img) + " && mkfs.ext4 -q -F -I 128 " + Quote(img)));
  ASSERT_EQ(mkdir(fs.c_str(), 0755), 0);
  ASSERT_TRUE(ShOk("mount -o loop " + Quote(img) + " " + Quote(fs)));
  umounts_.push_back(fs);
  const std::string dst = fs + "/d.img", md = c_.dir().path() + "/d.md";
  const std::string args = "--metadata " + Quote(md) + " " + Quote(c_.src) + " " + Quote(dst);
  RunResult r = MountWith(args, c_.mnt);
  ASSERT_EQ(r.code, 0) << r.out;
  ASSERT_TRUE(ShOk(ClonefsBinary() + " wait " + Quote(c_.mnt)));
  ASSERT_EQ(Sh(ClonefsBinary() + " unmount " + Quote(c_.mnt)).code, 0);
  ASSERT_EQ(Sha256(dst), src_sha_) << "the clone completed";
  EXPECT_EQ(Sh("stat -c %W " + Quote(dst)).out, "0\n") << "this ext4 records no birth time";
  struct stat before, after;
  ASSERT_EQ(stat(dst.c_str(), &before), 0);
  ASSERT_TRUE(ShOk("rm " + Quote(dst) + " && truncate -s " + std::to_string(kSourceSize) + " " +
                   Quote(dst)));
  ASSERT_EQ(stat(dst.c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "the inode number is reused (what this test is for)";

  r = MountWith(args, c_.mnt);
  ExpectRefused(r, "dest inode generation", c_.mnt);
  EXPECT_NE(r.out.find("removed and created again since the clone last used it"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("start a new clone with a new dest"), std::string::npos) << r.out;
  RunResult chk = Sh(ClonefsBinary() + " check --metadata " + Quote(md));
  EXPECT_NE(chk.code, 0) << chk.out;
  EXPECT_NE(chk.out.find("dest inode generation"), std::string::npos) << chk.out;
  EXPECT_EQ(std::filesystem::file_size(dst), kSourceSize);
  EXPECT_EQ(Sh("cmp -s " + Quote(dst) + " /dev/zero -n " + std::to_string(kSourceSize)).code, 0)
      << "the refused dest is left as it was";
  EXPECT_TRUE(std::filesystem::exists(md)) << "the clone's metadata is kept";
}

// Item 15: an interrupted creation is reported the same way by info, check
// and mount (which completes it and says so).
TEST_F(DataSafetyTest, InterruptedCreationIsRecognisedByEveryCommand) {
  mkdir(c_.metadata.c_str(), 0755);
  ASSERT_TRUE(ShOk("touch " + Quote(c_.metadata + "/LOCK") + " " +
                   Quote(c_.metadata + "/IDENTITY")));
  RunResult info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  EXPECT_NE(info.code, 0) << info.out;
  EXPECT_NE(info.out.find("interrupted creation"), std::string::npos) << info.out;
  RunResult chk = Sh(ClonefsBinary() + " check " + Quote(c_.dst));
  EXPECT_NE(chk.code, 0) << chk.out;
  EXPECT_NE(chk.out.find("interrupted creation"), std::string::npos) << chk.out;
  EXPECT_EQ(chk.out.find("corrupt"), std::string::npos) << chk.out;
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_NE(m.out.find("interrupted creation"), std::string::npos) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  chk = Sh(ClonefsBinary() + " check " + Quote(c_.dst));
  EXPECT_EQ(chk.code, 0) << chk.out;
}

}  // namespace
}  // namespace clonefs::testing
