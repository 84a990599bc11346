// PosixDevice where the system has to cooperate: a block device (a loop
// device over a temp file), and a full or read-only file system (a small
// tmpfs mounted in a private mount namespace of a child process, so nothing
// leaks into the host). Both need root; they skip without it.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "device_test_util.h"
#include "devices/posix_device.h"

namespace clonefs {
namespace {

using testing::RandomBytes;
using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

// Runs a shell command, returns its first output line ("" on failure).
std::string Run(const std::string& cmd) {
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return "";
  char line[512] = {};
  bool got = std::fgets(line, sizeof line, f) != nullptr;
  int rc = ::pclose(f);
  if (!got || rc != 0) return "";
  std::string s(line);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

// A loop device over a file, detached on destruction.
class LoopDevice {
 public:
  explicit LoopDevice(const std::string& file) {
    if (::getuid() == 0) dev_ = Run("losetup -f --show " + file + " 2>/dev/null");
  }
  ~LoopDevice() {
    if (!dev_.empty()) (void)std::system(("losetup -d " + dev_).c_str());
  }
  const std::string& path() const { return dev_; }

 private:
  std::string dev_;
};

class PosixBlockDeviceTest : public ::testing::TestWithParam<bool /*direct*/> {};

TEST_P(PosixBlockDeviceTest, LoopDeviceReadWriteZero) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string file = dir.File("backing");
  const uint64_t size = 8 * kMiB + 1536;  // a multiple of 512, not of 4096
  std::mt19937_64 rng(11);
  std::vector<uint8_t> model = RandomBytes(rng, size);
  ASSERT_TRUE(testing::WriteFile(file, model));
  LoopDevice loop(file);
  if (loop.path().empty()) GTEST_SKIP() << "needs root and a free loop device";

  PosixDeviceOptions o;
  o.direct = GetParam();
  o.min_size = 64 * kMiB;  // ignored for block devices
  Result<std::unique_ptr<Device>> r = OpenPosixDevice(loop.path(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  Device& dev = **r;
  EXPECT_EQ(dev.Size(), size);  // BLKGETSIZE64
  EXPECT_EQ(dev.Name(), loop.path());
  EXPECT_EQ(*dev.NextData(4097), 4097u);  // block devices: "all data"
  EXPECT_EQ(*dev.NextHole(4097), size);

  for (int i = 0; i < 40; i++) {
    uint64_t off = rng() % size, len = 1 + rng() % std::min<uint64_t>(size - off, 300000);
    if (i % 3 == 0) {
      ZeroMode mode = i % 2 ? ZeroMode::kPunch : ZeroMode::kWriteZeros;
      ASSERT_TRUE(dev.Zero(off, len, mode).ok()) << off << "+" << len;
      std::fill(model.begin() + off, model.begin() + off + len, 0);
    } else {
      std::vector<uint8_t> data = RandomBytes(rng, len);
      ASSERT_TRUE(dev.Write(off, data.data(), len).ok()) << off << "+" << len;
      std::copy(data.begin(), data.end(), model.begin() + off);
    }
  }
  // The last bytes of the device, through the partial last 4 KiB block.
  std::vector<uint8_t> tail = RandomBytes(rng, 3000);
  ASSERT_TRUE(dev.Write(size - 3000, tail.data(), tail.size()).ok());
  std::copy(tail.begin(), tail.end(), model.end() - 3000);
  ASSERT_TRUE(dev.Zero(0, 512 * 9, ZeroMode::kPunch).ok());  // aligned: the fallocate path
  std::fill(model.begin(), model.begin() + 512 * 9, 0);
  Status s;
  EXPECT_EQ(testing::ReadAll(dev, &s), model);
  EXPECT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(dev.Flush().ok());
  r = Status::Aborted("closed");  // close the device before detaching
  EXPECT_EQ(testing::ReadFile(file), model);
}

TEST_P(PosixBlockDeviceTest, ReadOnlyBlockDeviceRefusesWrites) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string file = dir.File("backing");
  ASSERT_TRUE(testing::WriteFile(file, std::vector<uint8_t>(kMiB, 7)));
  uint64_t hash = testing::FileHash(file);
  LoopDevice loop(file);
  if (loop.path().empty()) GTEST_SKIP() << "needs root and a free loop device";
  PosixDeviceOptions o;
  o.read_only = true;
  o.direct = GetParam();
  Result<std::unique_ptr<Device>> r = OpenPosixDevice(loop.path(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  uint8_t b = 1;
  EXPECT_EQ((*r)->Write(0, &b, 1).code(), Status::Code::kPermission);
  EXPECT_EQ((*r)->Zero(0, 4096, ZeroMode::kPunch).code(), Status::Code::kPermission);
  std::vector<uint8_t> buf(kMiB);
  ASSERT_TRUE((*r)->Read(0, buf.data(), buf.size()).ok());
  EXPECT_EQ(buf, std::vector<uint8_t>(kMiB, 7));
  r = Status::Aborted("closed");
  EXPECT_EQ(testing::FileHash(file), hash);
}

INSTANTIATE_TEST_SUITE_P(BufferedAndDirect, PosixBlockDeviceTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? "direct" : "buffered";
                         });

// Runs `body` in a child process with a private mount namespace holding a
// fresh tmpfs of `tmpfs_size` mounted on `dir`. body returns "" on success or
// a failure description. Returns "skip: ..." if the namespace or mount is
// unavailable.
std::string InPrivateTmpfs(const std::string& dir, const std::string& tmpfs_size,
                           const std::function<std::string()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string result;
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("clonefs-test", dir.c_str(), "tmpfs", 0, ("size=" + tmpfs_size).c_str()) != 0) {
      result = "skip: cannot mount a tmpfs in a private mount namespace";
    } else {
      result = body();
    }
    (void)!::write(fds[1], result.data(), result.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "child crashed";
  return out;
}

TEST(PosixDeviceSystemTest, FullFileSystemIsNoSpace) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string result = InPrivateTmpfs(dir.path(), "256k", [&]() -> std::string {
    PosixDeviceOptions o;
    o.create = true;
    o.min_size = 4 * kMiB;  // sparse: fits
    Result<std::unique_ptr<Device>> r = OpenPosixDevice(dir.File("dest"), o);
    if (!r.ok()) return "open: " + r.status().ToString();
    std::vector<uint8_t> data(kMiB, 1);
    Status s = (*r)->Write(kMiB, data.data(), data.size());
    if (!s.IsNoSpace()) return "expected NoSpace, got " + s.ToString();
    if (s.ToErrno() != ENOSPC) return "errno " + std::to_string(s.ToErrno());
    if (s.message().find("pwrite " + dir.File("dest")) == std::string::npos) {
      return "message lacks op and path: " + s.message();
    }
    return "";
  });
  if (result.rfind("skip:", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "");
}

TEST(PosixDeviceSystemTest, ReadOnlyFileSystemIsPermissionForWritersOnly) {
  if (::getuid() != 0) GTEST_SKIP() << "needs root";
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::string result = InPrivateTmpfs(dir.path(), "1m", [&]() -> std::string {
    std::string path = dir.File("img");
    if (!testing::WriteFile(path, std::vector<uint8_t>(8192, 3))) return "cannot write";
    if (::mount(nullptr, dir.path().c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      return "skip: cannot remount read-only";
    }
    Result<std::unique_ptr<Device>> rw = OpenPosixDevice(path, PosixDeviceOptions{});
    if (rw.ok()) return "opened writable on a read-only file system";
    if (rw.status().code() != Status::Code::kPermission) return rw.status().ToString();
    if (rw.status().message().find("on a read-only file system") == std::string::npos) {
      return "message: " + rw.status().message();
    }
    PosixDeviceOptions ro;
    ro.read_only = true;
    Result<std::unique_ptr<Device>> r = OpenPosixDevice(path, ro);
    if (!r.ok()) return "read-only open: " + r.status().ToString();
    uint8_t b = 0;
    Status s = (*r)->Read(8191, &b, 1);
    if (!s.ok() || b != 3) return "read: " + s.ToString();
    return "";
  });
  if (result.rfind("skip:", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "");
}

}  // namespace
}  // namespace clonefs
