// SPEC §5 failure rules and §7a through the real command: the metadata
// directory lives on a small tmpfs that fills up. The daemon must never
// abort: the commit that hits ENOSPC rolls back and the clone goes
// read-only (reads and writes to hydrated regions work, fsync gets EIO);
// `clonefs unmount` reports the failed final commit with a non-zero exit; a
// mount while the file system is still full is refused with "metadata file
// system is full"; once space is freed the clone resumes and every write
// answered before a successful fsync reads back. The source never changes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <vector>

#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kSourceSize = 32ull << 20;
constexpr uint64_t kRegion = 64 << 10;  // the default region size

class MetadataFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, kSourceSize, 3);
    src_sha_ = Sha256(c_.src);
    char tmpl[] = "/tmp/clonefs-mdfs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs_ = tmpl;
    ASSERT_TRUE(ShOk("mount -t tmpfs -o size=1M,mode=0755 clonefs-test " + Quote(fs_)));
    tmpfs_mounted_ = true;
    md_ = fs_ + "/md";
    filler_ = fs_ + "/filler";
  }
  void TearDown() override {
    // The clone first (its daemon holds files on the tmpfs), then the tmpfs.
    if (c_.IsMounted()) Sh(ClonefsBinary() + " unmount --force " + Quote(c_.mnt));
    for (int i = 0; i < 250 && c_.DaemonPid() != 0; ++i) usleep(20000);
    if (tmpfs_mounted_ && Sh("umount " + Quote(fs_)).code != 0) Sh("umount -l " + Quote(fs_));
    if (!fs_.empty()) rmdir(fs_.c_str());
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }

  RunResult Mount() { return c_.Mount("--no-hydration --metadata " + Quote(md_)); }
  void FillTheFileSystem() {
    Sh("dd if=/dev/zero of=" + Quote(filler_) + " bs=4k 2>/dev/null");
    RunResult df = Sh("df --output=avail -B1 " + Quote(fs_) + " | tail -1");
    ASSERT_EQ(std::stoull(df.out), 0u) << "the tmpfs is not full";
  }
  std::string DmStatus() { return Sh(ClonefsBinary() + " status --dm " + Quote(c_.mnt)).out; }

  CloneDir c_;
  std::string src_sha_, fs_, md_, filler_;
  bool tmpfs_mounted_ = false;
};

std::vector<uint8_t> Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::vector<uint8_t> ReadAt(int fd, uint64_t off, size_t n) {
  std::vector<uint8_t> v(n);
  EXPECT_EQ(pread(fd, v.data(), n, static_cast<off_t>(off)), static_cast<ssize_t>(n))
      << std::strerror(errno);
  return v;
}

TEST_F(MetadataFullTest, ReadOnlyThenRefusedThenResumesWithNothingLost) {
  RunResult r = Mount();
  ASSERT_EQ(r.code, 0) << r.out;
  int fd = open(c_.exposed().c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);

  // Answered and fsynced before the file system fills: must survive.
  std::map<uint64_t, std::vector<uint8_t>> durable;  // offset -> bytes
  const uint64_t first = 10 * kRegion + 100;
  durable[first] = Pattern(5000, 1);
  ASSERT_EQ(pwrite(fd, durable[first].data(), 5000, first), 5000);
  ASSERT_EQ(fsync(fd), 0) << std::strerror(errno);

  FillTheFileSystem();
  // Each write hydrates a new region; each fsync commits it. The WAL grows
  // into a page the full tmpfs cannot give: that commit fails.
  int failed_at = -1;
  for (int i = 0; i < 300 && failed_at < 0; ++i) {
    const uint64_t off = (100 + i) * kRegion + 7;
    std::vector<uint8_t> d = Pattern(4096, 100 + i);
    ASSERT_EQ(pwrite(fd, d.data(), d.size(), off), 4096) << i << ": " << std::strerror(errno);
    if (fsync(fd) == 0) {
      durable[off] = d;
    } else {
      EXPECT_EQ(errno, EIO) << std::strerror(errno);
      failed_at = i;
    }
  }
  ASSERT_GE(failed_at, 0) << "no commit failed on the full metadata file system";

  // Read-only mode, and the daemon keeps serving.
  EXPECT_NE(c_.DaemonPid(), 0) << c_.LogText();
  const std::string dm = DmStatus();
  EXPECT_EQ(dm.substr(dm.find_last_not_of(" \n") - 1, 2), "ro") << dm;
  EXPECT_EQ(fsync(fd), -1);
  EXPECT_EQ(errno, EIO);
  for (const auto& [off, bytes] : durable) EXPECT_EQ(ReadAt(fd, off, bytes.size()), bytes) << off;
  std::vector<uint8_t> more = Pattern(100, 7);
  EXPECT_EQ(pwrite(fd, more.data(), more.size(), first + 50), 100)  // hydrated: works
      << std::strerror(errno);
  // Its region stays hydrated, so it reads back after the restart too.
  std::copy(more.begin(), more.end(), durable[first].begin() + 50);
  EXPECT_EQ(pwrite(fd, more.data(), more.size(), 400 * kRegion + 3), -1);  // needs a copy
  EXPECT_EQ(errno, EIO);
  EXPECT_EQ(fsync(fd), -1);
  EXPECT_EQ(errno, EIO);
  close(fd);

  // Unmount: the final commit fails, and says so.
  r = c_.Unmount();
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("final commit failed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("metadata file system is full"), std::string::npos) << r.out;
  EXPECT_FALSE(c_.IsMounted());
  EXPECT_EQ(c_.DaemonPid(), 0);
  EXPECT_NE(c_.LogText().find("switching to read-only mode"), std::string::npos) << c_.LogText();
  EXPECT_NE(c_.LogText().find("final commit failed"), std::string::npos) << c_.LogText();
  EXPECT_EQ(c_.LogText().find("Assertion"), std::string::npos) << c_.LogText();

  // Mount again while still full: refused, nothing mounted, nothing crashed.
  r = Mount();
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("metadata file system is full"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Free space"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("daemon exited before the mount was ready"), std::string::npos) << r.out;
  EXPECT_FALSE(c_.IsMounted());

  // Space freed: the clone resumes with nothing lost.
  std::filesystem::remove(filler_);
  r = Mount();
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string dm2 = DmStatus();
  EXPECT_EQ(dm2.substr(dm2.find_last_not_of(" \n") - 1, 2), "rw") << dm2;
  fd = open(c_.exposed().c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  for (const auto& [off, bytes] : durable) EXPECT_EQ(ReadAt(fd, off, bytes.size()), bytes) << off;
  std::vector<uint8_t> last = Pattern(4096, 999);
  ASSERT_EQ(pwrite(fd, last.data(), last.size(), 500 * kRegion), 4096);
  ASSERT_EQ(fsync(fd), 0) << std::strerror(errno);
  close(fd);
  r = c_.Unmount();
  EXPECT_EQ(r.code, 0) << r.out;
  // The regions committed before the failure stayed hydrated (plus the last
  // one; the failed commit's region may or may not be, as its WAL record was
  // cut short).
  const int64_t hydrated = HydratedRegions(md_);
  EXPECT_GE(hydrated, static_cast<int64_t>(durable.size()) + 1);
  EXPECT_LE(hydrated, static_cast<int64_t>(durable.size()) + 2);
}

// SPEC §7a "logs are never silently lost": the log in the full metadata
// directory (no syslog socket needed) loses no line. Before, every line past
// the file's last page was dropped without a word (and one was cut in the
// middle); now they are held, status says so, and they are written, in
// order, once space is freed.
TEST_F(MetadataFullTest, LogLinesAreHeldWhileTheFileSystemIsFullAndWrittenLater) {
  RunResult r = Sh(ClonefsBinary() + " mount --no-hydration --metadata " + Quote(md_) + " " +
                   Quote(c_.src) + " " + Quote(c_.dst) + " " + Quote(c_.mnt));
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string log = md_ + "/clonefs.log";
  FillTheFileSystem();
  // Each message logs a line or two; a 4 KiB page takes about 30.
  constexpr int kMessages = 60;
  for (int i = 1; i <= kMessages; i++) {
    ASSERT_EQ(Sh(ClonefsBinary() + " message " + Quote(c_.mnt) + " rate " +
                 std::to_string(1000 + i) + "K")
                  .code,
              0);
  }
  auto st = QueryStatus(c_.mnt);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_NE(st->log_trouble.find("(No space left on device)"), std::string::npos)
      << st->log_trouble;
  EXPECT_NE(st->log_trouble.find("messages held in memory"), std::string::npos);
  const std::string human = Sh(ClonefsBinary() + " status " + Quote(c_.mnt)).out;
  EXPECT_NE(human.find("cannot be written since"), std::string::npos) << human;

  ASSERT_EQ(unlink(filler_.c_str()), 0);
  st = QueryStatus(c_.mnt);  // a status query writes what is held
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->log_trouble, "");
  std::ifstream f(log);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t at = 0;
  for (int i = 1; i <= kMessages; i++) {
    const std::string want = "rate set to " + std::to_string((1000 + i) * 1024) + " ";
    const size_t found = text.find(want, at);
    ASSERT_NE(found, std::string::npos) << want << " missing or out of order in:\n" << text;
    at = found;
  }
  EXPECT_NE(text.find("messages before this one were held in memory and written late"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace clonefs::testing
