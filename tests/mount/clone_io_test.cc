// I/O through a real clone (the `clonefs` daemon, the kernel, the engine):
// reads and writes against a model while the copier runs, O_DIRECT and
// O_DSYNC, qemu-io with cache=none, fio's crc32c verification before and
// after hydration.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "fuse/runtime_info.h"
#include "mount/harness.h"

namespace clonefs::testing {
namespace {

class CloneIoTest : public ::testing::Test {
 protected:
  void SetUp() override { CLONEFS_REQUIRE_MOUNTABLE(); }
  CloneDir c_;
};

// Aligned buffer for O_DIRECT.
std::unique_ptr<uint8_t, decltype(&free)> Aligned(size_t n) {
  void* p = nullptr;
  if (posix_memalign(&p, 4096, n) != 0) p = nullptr;
  return {static_cast<uint8_t*>(p), free};
}

TEST_F(CloneIoTest, ReadsAndWritesMatchAModelWhileTheCopierRuns) {
  constexpr uint64_t kSize = (48ull << 20) + 12288;  // a partial last region
  WriteRandomFile(c_.src, kSize, 7);
  const std::string src_sha = Sha256(c_.src);
  std::vector<uint8_t> model = ReadAll(c_.src);
  ASSERT_EQ(model.size(), kSize);
  // Slow background copying, so most I/O meets unhydrated regions.
  RunResult m = c_.Mount("--region-size 64K --rate 4M");
  ASSERT_EQ(m.code, 0) << m.out;

  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  int fd = open(c_.exposed().c_str(), O_RDWR);
  int dfd = open(c_.exposed().c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(fd, 0);
  ASSERT_GE(dfd, 0);
  auto abuf = Aligned(1 << 20);
  for (int i = 0; i < 400; ++i) {
    const bool direct = rng() % 2;
    uint64_t len, off;
    if (direct) {
      len = 4096 * (1 + rng() % 256);
      off = 4096 * (rng() % (kSize / 4096));
    } else {
      len = 1 + rng() % 200000;
      off = rng() % kSize;
    }
    len = std::min(len, kSize - off);
    std::vector<uint8_t> buf(len);
    uint8_t* p = direct ? abuf.get() : buf.data();
    if (direct && len % 4096 != 0) continue;  // the last partial block
    const bool write = rng() % 3 == 0;
    ASSERT_NO_FATAL_FAILURE(ModelIo(direct ? dfd : fd, write, p, len, off, rng, &model));
    if (i % 100 == 99) {
      ASSERT_EQ(fsync(fd), 0);
    }
  }
  close(fd);
  close(dfd);
  ASSERT_TRUE(ShOk(ClonefsBinary() + " unmount " + Quote(c_.mnt)));
  // Finish hydration at full speed, then dest alone must be the model.
  m = c_.Mount();
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  ASSERT_EQ(ReadAll(c_.exposed()), model);
  RunResult u = c_.Unmount();
  ASSERT_EQ(u.code, 0) << u.out;
  EXPECT_FALSE(c_.IsMounted());
  EXPECT_EQ(c_.DaemonPid(), 0) << "unmount returns after the daemon's final commit and exit";
  std::vector<uint8_t> dest = ReadAll(c_.dst);
  ASSERT_GE(dest.size(), kSize);
  dest.resize(kSize);
  EXPECT_TRUE(dest == model) << "dest alone must equal the model after hydration";
  EXPECT_EQ(Sha256(c_.src), src_sha);
}

// unmount waits for the daemon's final commit whatever the binary is called:
// it must recognise its daemon by the executable, not only by its name.
TEST_F(CloneIoTest, UnmountWaitsForADaemonStartedUnderAnotherName) {
  CloneDir c;
  WriteRandomFile(c.src, 4ull << 20, 3);
  const std::string renamed = c.dir() / "cf-renamed";
  ASSERT_TRUE(ShOk("cp " + Quote(ClonefsBinary()) + " " + Quote(renamed)));
  RunResult m = Sh(renamed + " mount --log-file " + Quote(c.log) + " --no-hydration " +
                   Quote(c.src) + " " + Quote(c.dst) + " " + Quote(c.mnt));
  ASSERT_EQ(m.code, 0) << m.out;
  auto info = fuse::ReadDaemonRecord(c.metadata);  // DaemonPid() would judge by this test's own binary
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  const pid_t pid = info->pid;
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, 0), 0);
  RunResult u = Sh(renamed + " unmount " + Quote(c.mnt));
  EXPECT_EQ(u.code, 0) << u.out;
  EXPECT_NE(u.out.find("final commit done"), std::string::npos) << u.out;
  EXPECT_EQ(u.out.find("had died"), std::string::npos) << u.out;
  EXPECT_FALSE(fuse::IsClonefsProcess(pid) ||
               std::filesystem::exists("/proc/" + std::to_string(pid) + "/exe"))
      << "the daemon must have exited (at most a zombie) when unmount returns";
  EXPECT_NE(c.LogText().find("final commit done"), std::string::npos) << c.LogText();
}

TEST_F(CloneIoTest, DsyncWritesSurviveAKilledDaemon) {
  constexpr uint64_t kSize = 16ull << 20;
  WriteRandomFile(c_.src, kSize, 8);
  RunResult m = c_.Mount("--no-hydration --region-size 64K");
  ASSERT_EQ(m.code, 0) << m.out;
  int fd = open(c_.exposed().c_str(), O_RDWR | O_DSYNC | O_DIRECT);
  ASSERT_GE(fd, 0);
  auto buf = Aligned(8192);
  memset(buf.get(), 0x5a, 8192);
  // A partial-region write (hydrates first) and a cross-region one.
  ASSERT_EQ(pwrite(fd, buf.get(), 4096, 5 * 65536 + 4096), 4096);
  ASSERT_EQ(pwrite(fd, buf.get(), 8192, 9 * 65536 - 4096), 8192);
  close(fd);
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 200 && c_.DaemonPid() != 0; ++i) usleep(10000);

  m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_NE(m.out.find("stale mount"), std::string::npos) << m.out;
  std::vector<uint8_t> img = ReadAll(c_.exposed());
  std::vector<uint8_t> src = ReadAll(c_.src);
  ASSERT_EQ(img.size(), kSize);
  auto expect_range = [&](uint64_t off, uint64_t len) {
    for (uint64_t i = off; i < off + len; ++i) ASSERT_EQ(img[i], 0x5a) << "at " << i;
  };
  expect_range(5 * 65536 + 4096, 4096);
  expect_range(9 * 65536 - 4096, 8192);
  // Everything else reads as the source.
  for (uint64_t i = 0; i < kSize; ++i) {
    const bool written = (i >= 5 * 65536 + 4096 && i < 5 * 65536 + 8192) ||
                         (i >= 9 * 65536 - 4096 && i < 9 * 65536 + 4096);
    if (!written) {
      ASSERT_EQ(img[i], src[i]) << "at " << i;
    }
  }
  EXPECT_EQ(c_.Unmount().code, 0);
}

TEST_F(CloneIoTest, QemuIoWithCacheNone) {
  constexpr uint64_t kSize = 32ull << 20;
  WriteRandomFile(c_.src, kSize, 9);
  const std::string expected = c_.dir() / "expected.img";
  ASSERT_TRUE(ShOk("cp " + Quote(c_.src) + " " + Quote(expected)));
  RunResult m = c_.Mount("--rate 8M");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string cmds =
      "-c 'write -P 0xab 0 1M' -c 'write -P 0xcd 3000k 700k' -c 'write -z 8M 2M' "
      "-c 'write -P 0x11 31M 1M' -c 'discard 20M 1M' ";
  // discard on a raw file is a punch hole: write zeros into the expectation.
  ASSERT_TRUE(ShOk("qemu-io -f raw -t none " + cmds + Quote(c_.exposed())));
  ASSERT_TRUE(ShOk("qemu-io -f raw " + cmds + Quote(expected)));
  ASSERT_TRUE(
      ShOk("qemu-io -f raw -t none -c 'read -P 0xab 0 1M' -c 'read -P 0xcd 3000k 700k' "
           "-c 'read -P 0 8M 2M' -c 'read -P 0 20M 1M' " +
           Quote(c_.exposed())));
  EXPECT_TRUE(
      ShOk("qemu-img compare -f raw -F raw " + Quote(c_.exposed()) + " " + Quote(expected)));
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  ASSERT_TRUE(ShOk("truncate -s " + std::to_string(kSize) + " " + Quote(c_.dst)));
  EXPECT_TRUE(ShOk("qemu-img compare -f raw -F raw " + Quote(c_.dst) + " " + Quote(expected)));
}

// A sparse source (64 MiB, 3 MiB of data): the exposed file reports what
// may hold data in st_blocks, as a sparse file does, so du shows it and
// cp --sparse=auto looks for the holes (SEEK_DATA/SEEK_HOLE) and keeps
// them. Before, st_blocks said every byte was allocated: du showed 64 MiB
// and cp wrote a fully allocated 64 MiB copy.
TEST_F(CloneIoTest, DuAndCpSeeTheHolesOfASparseClone) {
  constexpr uint64_t kMiB = 1 << 20, kSize = 64 * kMiB;
  {
    std::vector<uint8_t> data(kMiB);
    std::mt19937_64 rng(5);
    for (auto& b : data) b = static_cast<uint8_t>(rng() | 1);
    const int fd = open(c_.src.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(kSize)), 0);
    for (uint64_t off : {uint64_t{0}, 20 * kMiB, 63 * kMiB}) {
      ASSERT_EQ(pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)),
                static_cast<ssize_t>(kMiB));
    }
    close(fd);
  }
  auto blocks = [](const std::string& path) {
    struct stat st = {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  // Unhydrated, everything may be data (the source is not asked).
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_EQ(blocks(c_.exposed()), kSize);
  ASSERT_EQ(c_.Unmount().code, 0);
  m = c_.Mount("--hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // attributes age out (1 s)
  const uint64_t exposed = blocks(c_.exposed());
  EXPECT_GE(exposed, 3 * kMiB);
  EXPECT_LE(exposed, 4 * kMiB) << "dest holds 3 MiB of data";
  EXPECT_EQ(exposed, blocks(c_.dst));
  RunResult du = Sh("du -k " + Quote(c_.exposed()));
  ASSERT_EQ(du.code, 0) << du.out;
  EXPECT_LE(std::stoull(du.out), 4096u) << du.out;
  const std::string copy = c_.dir() / "copy.img";
  ASSERT_TRUE(ShOk("cp --sparse=auto " + Quote(c_.exposed()) + " " + Quote(copy)));
  EXPECT_LE(blocks(copy), 4 * kMiB) << "cp kept the holes";
  EXPECT_EQ(Sha256(copy), Sha256(c_.src));
  ASSERT_EQ(c_.Unmount().code, 0);
}

// fio writes a crc32c-verified pattern into the source in four quarters;
// through the clone, during hydration, another job overwrites the second
// quarter; verify_only then checks all four ranges through the clone, and
// again on dest alone after hydration.
TEST_F(CloneIoTest, FioVerifyThroughTheCloneAndOnDestAlone) {
  constexpr uint64_t kQuarter = 16ull << 20;
  const std::string jobs = c_.dir() / "jobs.fio";
  {
    std::string j =
        "[global]\nfilename=${F}\nbs=64k\ndirect=1\nioengine=libaio\niodepth=8\nverify=crc32c\n"
        "verify_fatal=1\nverify_state_save=0\ndo_verify=${DV}\nverify_only=${VO}\nsize=16M\n";
    for (int q = 0; q < 4; ++q) {
      j += "[q" + std::to_string(q) + "]\noffset=" + std::to_string(q * kQuarter) +
           "\nrw=write\nstonewall\n";
    }
    j += "[w1]\nbs=16k\niodepth=16\nrw=randwrite\nrandseed=4242\noffset=16M\nstonewall\n";
    FILE* f = fopen(jobs.c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs(j.c_str(), f);
    fclose(f);
  }
  auto fio = [&](const std::string& file, bool verify, const std::string& sections) {
    return Sh("F=" + Quote(file) + " DV=" + (verify ? "1" : "0") + " VO=" + (verify ? "1" : "0") +
              " fio --output=/dev/null " + sections + " " + Quote(jobs));
  };
  ASSERT_TRUE(ShOk("truncate -s 64M " + Quote(c_.src)));
  RunResult w = fio(c_.src, false, "--section=q0 --section=q1 --section=q2 --section=q3");
  ASSERT_EQ(w.code, 0) << w.out;
  const std::string src_sha = Sha256(c_.src);

  RunResult m = c_.Mount("--rate 16M --region-size 128K");
  ASSERT_EQ(m.code, 0) << m.out;
  w = fio(c_.exposed(), false, "--section=w1");
  ASSERT_EQ(w.code, 0) << w.out;
  const std::string verify_all = "--section=q0 --section=w1 --section=q2 --section=q3";
  RunResult v = fio(c_.exposed(), true, verify_all);
  EXPECT_EQ(v.code, 0) << v.out;
  // The check can fail: the overwritten quarter no longer holds q1's data.
  EXPECT_NE(fio(c_.exposed(), true, "--section=q1").code, 0);

  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  v = fio(c_.dst, true, verify_all);
  EXPECT_EQ(v.code, 0) << "dest alone after hydration:\n" << v.out;
  EXPECT_EQ(Sha256(c_.src), src_sha);
}

}  // namespace
}  // namespace clonefs::testing
