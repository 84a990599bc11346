// FUSE passthrough after completion, through the real daemon and kernel
// (docs/design.md, "Passthrough after completion"): opens made once the clone
// is complete are served by the kernel from dest (the daemon's READ/WRITE
// counters stay still while they are used), their data is the image, their
// writes land in dest and survive a remount; opens made before keep working
// through the daemon; --no-passthrough keeps every open with the daemon.
//
// Where the kernel cannot pass through (older than 6.9, built without
// CONFIG_FUSE_PASSTHROUGH), the test says why and skips; under CI=true it
// fails instead when the kernel's configuration claims passthrough.
#include <fcntl.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <random>

#include "control/status_report.h"
#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kSize = (8ull << 20) + 12288;  // a partial last region

std::unique_ptr<uint8_t, decltype(&free)> Aligned(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, n) != 0) p = nullptr;
  return {static_cast<uint8_t*>(p), free};
}

// "y" if the running kernel's configuration says CONFIG_FUSE_PASSTHROUGH=y,
// "n" if it says otherwise, "" if it cannot be read.
std::string KernelConfigPassthrough() {
  struct utsname u;
  uname(&u);
  RunResult r =
      Sh("{ zcat /proc/config.gz 2>/dev/null || cat /boot/config-" + std::string(u.release) +
         " 2>/dev/null; } | grep -E '^CONFIG_FUSE_PASSTHROUGH=' ");
  if (r.out.find("CONFIG_FUSE_PASSTHROUGH=y") != std::string::npos) return "y";
  RunResult any = Sh("{ zcat /proc/config.gz 2>/dev/null || cat /boot/config-" +
                     std::string(u.release) + " 2>/dev/null; } | head -c 1");
  return any.out.empty() ? "" : "n";
}

control::StatusReport Status(const std::string& mnt) {
  auto rep = QueryStatus(mnt);
  EXPECT_TRUE(rep.ok()) << rep.status().ToString();
  return rep.ok() ? *rep : control::StatusReport{};
}

class PassthroughMountTest : public ::testing::Test {
 protected:
  void SetUp() override { CLONEFS_REQUIRE_MOUNTABLE(); }
  void TearDown() override {
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }

  // Skips (or fails, see the top) unless the daemon says passthrough is active.
  bool RequireActive(const control::StatusReport& st) {
    if (st.fuse.passthrough == "active") return true;
    const std::string config = KernelConfigPassthrough();
    const std::string why = "passthrough is not active: '" + st.fuse.passthrough +
                            "' (kernel config CONFIG_FUSE_PASSTHROUGH: " +
                            (config.empty() ? std::string("unknown") : config) + ")";
    if (InCi() && config == "y") {
      ADD_FAILURE() << why << "; the kernel claims passthrough, so under CI=true this fails";
    } else {
      skipped_ = why;
    }
    return false;
  }

  // Mounts a clone of a new random source (`seed`) with `args` and waits
  // until it is complete; *model: the source's bytes.
  void MountCompleteClone(int seed, const std::string& args, std::vector<uint8_t>* model) {
    WriteRandomFile(c_.src, kSize, seed);
    src_sha_ = Sha256(c_.src);
    *model = ReadAll(c_.src);
    RunResult m = c_.Mount(args);
    ASSERT_EQ(m.code, 0) << m.out;
    ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  }

  CloneDir c_;
  std::string skipped_;
  std::string src_sha_;  // the source's, checked at the end when set
};

TEST_F(PassthroughMountTest, OpensAfterCompletionAreServedByTheKernelFromDest) {
  WriteRandomFile(c_.src, kSize, 21);
  src_sha_ = Sha256(c_.src);
  std::vector<uint8_t> model = ReadAll(c_.src);
  ASSERT_EQ(model.size(), kSize);
  RunResult m = c_.Mount("--region-size 64K --no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string before = Status(c_.mnt).fuse.passthrough;
  EXPECT_TRUE(before == "waiting for completion" || before.rfind("off: ", 0) == 0) << before;

  // An open made before completion, used before and after it.
  const int old_fd = open(c_.exposed().c_str(), O_RDWR);
  ASSERT_GE(old_fd, 0) << strerror(errno);
  std::vector<uint8_t> buf(300000, 0x11);
  ASSERT_EQ(pwrite(old_fd, buf.data(), buf.size(), 70000), static_cast<ssize_t>(buf.size()));
  std::copy(buf.begin(), buf.end(), model.begin() + 70000);

  ASSERT_TRUE(ShOk(ClonefsBinary() + " message " + Quote(c_.mnt) + " enable_hydration"));
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  control::StatusReport st = Status(c_.mnt);
  ASSERT_TRUE(st.hydration_done);
  if (!RequireActive(st)) {
    close(old_fd);
    if (!skipped_.empty()) GTEST_SKIP() << skipped_;
    return;
  }
  const uint64_t reads0 = st.fuse.read_requests, writes0 = st.fuse.write_requests;
  const uint64_t pt0 = st.fuse.passthrough_opens;

  // New opens: buffered and O_DIRECT.
  const int fd = open(c_.exposed().c_str(), O_RDWR);
  const int dfd = open(c_.exposed().c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(fd, 0) << strerror(errno);
  ASSERT_GE(dfd, 0) << strerror(errno);
  std::vector<uint8_t> got(kSize);
  ASSERT_EQ(pread(fd, got.data(), kSize, 0), static_cast<ssize_t>(kSize));
  EXPECT_TRUE(got == model) << "a passed-through read is the image";

  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto abuf = Aligned(256 << 10);
  for (int i = 0; i < 200; ++i) {
    const bool direct = rng() % 2;
    uint64_t off, len;
    if (direct) {
      len = 4096 * (1 + rng() % 64);
      off = 4096 * (rng() % ((kSize - len) / 4096));
    } else {
      len = 1 + rng() % 100000;
      off = rng() % (kSize - len);
    }
    uint8_t* p = direct ? abuf.get() : buf.data();
    const bool write = rng() % 2;
    ASSERT_NO_FATAL_FAILURE(ModelIo(direct ? dfd : fd, write, p, len, off, rng, &model));
  }
  ASSERT_EQ(fsync(fd), 0) << strerror(errno);
  st = Status(c_.mnt);
  EXPECT_EQ(st.fuse.read_requests, reads0) << "passed-through reads never reach the daemon";
  EXPECT_EQ(st.fuse.write_requests, writes0) << "passed-through writes never reach the daemon";
  EXPECT_EQ(st.fuse.passthrough_opens, pt0 + 2);

  // The open made before completion still goes through the daemon, and sees
  // what the passed-through descriptors wrote (and they see its writes).
  ASSERT_EQ(pread(old_fd, got.data(), kSize, 0), static_cast<ssize_t>(kSize));
  EXPECT_TRUE(got == model) << "the old descriptor reads what passthrough wrote";
  std::vector<uint8_t> mine(5000, 0x77);
  ASSERT_EQ(pwrite(old_fd, mine.data(), mine.size(), 123457), static_cast<ssize_t>(mine.size()));
  std::copy(mine.begin(), mine.end(), model.begin() + 123457);
  ASSERT_EQ(pread(fd, got.data(), 10000, 120000), 10000);
  EXPECT_TRUE(std::equal(got.begin(), got.begin() + 10000, model.begin() + 120000))
      << "a passed-through descriptor reads what the daemon wrote";
  st = Status(c_.mnt);
  EXPECT_GT(st.fuse.read_requests, reads0) << "the old descriptor is served by the daemon";
  EXPECT_GT(st.fuse.write_requests, writes0);

  close(fd);
  close(dfd);
  close(old_fd);
  RunResult u = c_.Unmount();
  ASSERT_EQ(u.code, 0) << u.out;
  std::vector<uint8_t> dest = ReadAll(c_.dst);
  ASSERT_EQ(dest.size(), kSize);
  EXPECT_TRUE(dest == model) << "passed-through writes land in dest";

  m = c_.Mount();
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(ReadAll(c_.exposed()) == model) << "and survive unmount and remount";
  u = c_.Unmount();
  ASSERT_EQ(u.code, 0) << u.out;
}

// An append (`echo x >> FILE`) writes past the image's end, which the
// daemon refuses (EFBIG) but the kernel would carry out for a passed-through
// open: it extended dest, which was cut back, and the bytes reported written
// were lost. Appending opens are never passed through: the append fails
// with EFBIG, through the daemon, or at open while a passed-through open is
// live (the kernel lets the daemon serve no other open then).
TEST_F(PassthroughMountTest, AnAppendFailsInsteadOfBeingLost) {
  std::vector<uint8_t> model;
  ASSERT_NO_FATAL_FAILURE(MountCompleteClone(24, "--region-size 64K", &model));
  control::StatusReport st = Status(c_.mnt);
  if (!RequireActive(st)) {
    if (!skipped_.empty()) GTEST_SKIP() << skipped_;
    return;
  }
  EXPECT_NE(Sh("echo hello >> " + Quote(c_.exposed())).code, 0);
  int fd = open(c_.exposed().c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0) << strerror(errno);
  EXPECT_EQ(write(fd, "hello\n", 6), -1);
  EXPECT_EQ(errno, EFBIG);
  close(fd);
  EXPECT_EQ(Status(c_.mnt).fuse.passthrough_opens, st.fuse.passthrough_opens)
      << "an appending open was passed through";
  const int reader = open(c_.exposed().c_str(), O_RDONLY);  // passed through
  ASSERT_GE(reader, 0) << strerror(errno);
  fd = open(c_.exposed().c_str(), O_WRONLY | O_APPEND);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, EFBIG);
  if (fd >= 0) close(fd);
  close(reader);
  EXPECT_EQ(ReadAll(c_.dst).size(), kSize);
  EXPECT_EQ(Status(c_.mnt).dest_change, "");
  EXPECT_TRUE(ReadAll(c_.exposed()) == model) << "the image is served, unchanged";
  RunResult u = c_.Unmount();
  ASSERT_EQ(u.code, 0) << u.out;
  EXPECT_TRUE(ReadAll(c_.dst) == model);
}

// The kernel cannot refuse a passed-through write past the image's end (the
// daemon answers EFBIG): such a write (pwrite at the end of a writable,
// non-appending open) extends dest. The daemon cuts that back to the
// image's size within about a second and goes on serving, instead of taking
// dest for changed by another program and failing every request.
TEST_F(PassthroughMountTest, AWritePastTheEndThroughPassthroughIsCutBackAndTheCloneGoesOn) {
  std::vector<uint8_t> model;
  ASSERT_NO_FATAL_FAILURE(MountCompleteClone(23, "--region-size 64K", &model));
  control::StatusReport st = Status(c_.mnt);
  if (!RequireActive(st)) {
    if (!skipped_.empty()) GTEST_SKIP() << skipped_;
    return;
  }
  const int fd = open(c_.exposed().c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << strerror(errno);
  ASSERT_EQ(pwrite(fd, "hello\n", 6, static_cast<off_t>(kSize)), 6) << strerror(errno);
  close(fd);
  ASSERT_EQ(Status(c_.mnt).fuse.passthrough_opens, st.fuse.passthrough_opens + 1)
      << "the write was passed through";
  bool cut = false;
  for (int i = 0; i < 100 && !cut; ++i) {
    cut = ReadAll(c_.dst).size() == kSize;
    if (!cut) usleep(50000);
  }
  EXPECT_TRUE(cut) << "dest was not cut back to the image's size";
  st = Status(c_.mnt);
  EXPECT_EQ(st.dest_change, "") << "a write past the end is no change of dest by another program";
  EXPECT_NE(c_.LogText().find("went past the image's end"), std::string::npos) << c_.LogText();
  EXPECT_TRUE(ReadAll(c_.exposed()) == model) << "the image is served, unchanged";
  RunResult u = c_.Unmount();
  ASSERT_EQ(u.code, 0) << u.out;
  EXPECT_TRUE(ReadAll(c_.dst) == model);
}

TEST_F(PassthroughMountTest, NoPassthroughKeepsEveryOpenWithTheDaemon) {
  std::vector<uint8_t> model;
  ASSERT_NO_FATAL_FAILURE(MountCompleteClone(22, "--region-size 64K --no-passthrough", &model));
  control::StatusReport st = Status(c_.mnt);
  ASSERT_TRUE(st.hydration_done);
  EXPECT_EQ(st.fuse.passthrough, "off: disabled (--no-passthrough)");
  const uint64_t reads0 = st.fuse.read_requests;
  const int fd = open(c_.exposed().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> got(kSize);
  ASSERT_EQ(pread(fd, got.data(), kSize, 0), static_cast<ssize_t>(kSize));
  close(fd);
  EXPECT_TRUE(got == model);
  st = Status(c_.mnt);
  EXPECT_GT(st.fuse.read_requests, reads0) << "the daemon served the reads";
  EXPECT_EQ(st.fuse.passthrough_opens, 0u);
  RunResult u = c_.Unmount();
  ASSERT_EQ(u.code, 0) << u.out;
  // Stored with the clone, like the other FUSE options; --passthrough undoes it.
  RunResult m = c_.Mount();
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_EQ(Status(c_.mnt).fuse.passthrough, "off: disabled (--no-passthrough)");
  ASSERT_EQ(c_.Unmount().code, 0);
  m = c_.Mount("--passthrough");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_NE(Status(c_.mnt).fuse.passthrough, "off: disabled (--no-passthrough)");
  ASSERT_EQ(c_.Unmount().code, 0);
}

}  // namespace
}  // namespace clonefs::testing
