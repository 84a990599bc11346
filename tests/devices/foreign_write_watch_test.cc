// ForeignWriteWatch: writes to dest by other processes are reported, with
// who made them; this process's own writes (from any thread) are not.
#include "devices/foreign_write_watch.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "device_test_util.h"
#include "devices/posix_device.h"

namespace clonefs {
namespace {

using testing::TempDir;

constexpr uint64_t kSize = 1 << 20;

// Runs `child` in a forked process (another writer) and waits for it.
template <typename F>
int InChild(F child) {
  const pid_t pid = fork();
  if (pid == 0) _exit(child() ? 0 : 1);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child failed";
  return pid;
}

bool WaitFor(const std::function<bool()>& pred) {
  for (int i = 0; i < 2000; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return pred();
}

class ForeignWriteWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    PosixDeviceOptions po;
    po.create = true;
    po.min_size = kSize;
    auto d = OpenPosixDevice(path_, po);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    dev_ = std::move(*d);
    ForeignWriteWatch::Options o;
    o.on_write = [this](const std::string& who) {
      std::lock_guard<std::mutex> l(mu_);
      seen_.push_back(who);
    };
    auto w = dev_->WatchForeignWrites(std::move(o));
    ASSERT_TRUE(w.ok()) << w.status().ToString();
    watch_ = std::move(*w);
  }
  std::vector<std::string> Seen() {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }
  // This process's own writes, from several threads, then long enough for
  // the watch to have read them (several of its 20 ms looks).
  void WriteOwn() {
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([this, t] {
        std::vector<uint8_t> b(4096, static_cast<uint8_t>(t + 1));
        for (int i = 0; i < 200; ++i) {
          EXPECT_TRUE(
              dev_->Write(static_cast<uint64_t>((t * 200 + i) % 256) * 4096, b.data(), b.size())
                  .ok());
        }
      });
    }
    for (auto& t : ts) t.join();
    ASSERT_TRUE(dev_->Zero(0, 8192, ZeroMode::kPunch).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }

  TempDir dir_;
  const std::string path_ = dir_.File("dest");
  std::unique_ptr<Device> dev_;
  std::unique_ptr<ForeignWriteWatch> watch_;
  std::mutex mu_;
  std::vector<std::string> seen_;  // GUARDED_BY(mu_)
};

TEST_F(ForeignWriteWatchTest, OwnWritesAreNotReportedAnotherProcesssAre) {
  WriteOwn();
  EXPECT_TRUE(Seen().empty()) << Seen()[0];
  EXPECT_EQ(watch_->foreign_events(), 0u);
  const int pid = InChild([&] {
    const int fd = open(path_.c_str(), O_WRONLY);
    const bool ok = fd >= 0 && pwrite(fd, "x", 1, 12345) == 1;
    close(fd);
    return ok;
  });
  ASSERT_TRUE(WaitFor([&] { return !Seen().empty(); })) << "the child's write was not seen";
  const std::string who = Seen()[0];
  // A privileged watch names the writer; an unprivileged one cannot.
  if (geteuid() == 0) {
    EXPECT_EQ(who.rfind("pid " + std::to_string(pid), 0), 0u) << who;
  } else {
    EXPECT_EQ(who, "another process");
  }
  EXPECT_GE(watch_->foreign_events(), 1u);
}

// A truncation keeps nothing to read, and a size put back hides it from a
// size check: the watch sees it anyway.
TEST_F(ForeignWriteWatchTest, ATruncationPutBackIsSeen) {
  InChild([&] {
    return truncate(path_.c_str(), 4096) == 0 &&
           truncate(path_.c_str(), static_cast<off_t>(kSize)) == 0;
  });
  ASSERT_TRUE(WaitFor([&] { return !Seen().empty(); }));
  EXPECT_TRUE(dev_->CheckUnchanged().ok()) << "the size alone cannot tell";
}

// After the watch is gone, no callback runs and others' writes are free.
TEST_F(ForeignWriteWatchTest, NothingIsReportedAfterTheWatchEnds) {
  watch_.reset();
  InChild([&] {
    const int fd = open(path_.c_str(), O_WRONLY);
    const bool ok = fd >= 0 && pwrite(fd, "y", 1, 0) == 1;
    close(fd);
    return ok;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(Seen().empty());
}

TEST(ForeignWriteWatchSetup, AReadOnlyDeviceIsNotWatched) {
  TempDir dir;
  ASSERT_TRUE(testing::MakeSparseFile(dir.File("src"), kSize));
  PosixDeviceOptions po;
  po.read_only = true;
  auto d = OpenPosixDevice(dir.File("src"), po);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ForeignWriteWatch::Options o;
  o.on_write = [](const std::string&) {};
  auto w = (*d)->WatchForeignWrites(std::move(o));
  EXPECT_EQ(w.status().code(), Status::Code::kNotSupported);
}

// The guard (root only): another program's open of the file is refused,
// whatever its mode; this process's, and its forked children's (the same
// executable, as another `clonefs` command), are let in. Without the guard
// the same open succeeds.
TEST(ForeignWriteWatchGuard, AnotherProgramsOpenIsRefused) {
  TempDir dir;
  const std::string path = dir.File("dest");
  PosixDeviceOptions po;
  po.create = true;
  po.min_size = kSize;
  auto d = OpenPosixDevice(path, po);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  // `sh -c 'exec 3<PATH'` (another executable): its exit status.
  auto shell_open = [&](const char* redirect) {
    const std::string cmd = std::string("exec 3") + redirect + "'" + path + "'";
    const pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  ASSERT_EQ(shell_open("<"), 0) << "no guard yet";
  std::mutex mu;
  std::vector<std::string> denied;
  ForeignWriteWatch::Options o;
  o.on_write = [](const std::string&) {};
  o.on_denied = [&](const std::string& who) {
    std::lock_guard<std::mutex> l(mu);
    denied.push_back(who);
  };
  auto w = (*d)->WatchForeignWrites(std::move(o));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  if (geteuid() != 0) {
    EXPECT_FALSE((*w)->guarding()) << "the guard needs CAP_SYS_ADMIN";
    return;
  }
  ASSERT_TRUE((*w)->guarding());
  EXPECT_NE(shell_open("<"), 0) << "a read-only open by another program";
  EXPECT_NE(shell_open("<>"), 0) << "a read-write open by another program";
  EXPECT_EQ((*w)->opens_denied(), 2u);
  {
    std::lock_guard<std::mutex> l(mu);
    ASSERT_EQ(denied.size(), 2u);
    EXPECT_EQ(denied[0].rfind("pid ", 0), 0u) << denied[0];
  }
  const int own = open(path.c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_GE(own, 0) << "this process's own open";
  close(own);
  InChild([&] {
    const int fd = open(path.c_str(), O_RDONLY);
    close(fd);
    return fd >= 0;
  });
  w->reset();
  EXPECT_EQ(shell_open("<"), 0) << "the guard ended with the watch";
}

TEST(ForeignWriteWatchSetup, DescribesWriters) {
  EXPECT_EQ(DescribeWriter(0), "another process");
  const std::string me = DescribeWriter(getpid());
  EXPECT_EQ(me.rfind("pid " + std::to_string(getpid()) + " (", 0), 0u) << me;
  EXPECT_EQ(me.back(), ')') << me;
}

}  // namespace
}  // namespace clonefs
