// A dest truncated under a live clone (SPEC §7a): the engine stops serving
// at once -- every request fails with EIO naming the change, copying stops,
// fsync fails -- so no write can extend dest again with a hole where
// hydrated data was; Stats() says why and the log says it once.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/log.h"
#include "copier/dest_watch.h"
#include "devices/posix_device.h"
#include "engine_test_util.h"

namespace clonefs {
namespace {

using test::Rig;

constexpr uint64_t kRegion = 64 << 10;
constexpr uint64_t kRegions = 32;
constexpr uint64_t kImage = kRegions * kRegion;

class DestChangeTest : public ::testing::Test {
 protected:
  DestChangeTest() : rig_(kImage, kRegion, test::RandomContent(kImage, 23, 0)) {}
  ~DestChangeTest() override {
    rig_.engine.reset();
    SetLogToStderr();
  }
  Engine* e() { return rig_.engine.get(); }
  void LogToFile() { ASSERT_OK(SetLogToFile(log_)); }
  // Every request fails with EIO naming the change, and so does fsync.
  void ExpectEverythingRefused() {
    std::vector<uint8_t> b(kRegion, 0x33);
    for (uint64_t off : {uint64_t{0}, kImage / 2 - kRegion, kImage - kRegion}) {
      Status r = e()->Read(off, b.data(), kRegion);
      EXPECT_EQ(r.ToErrno(), EIO) << off << ": " << r.ToString();
      EXPECT_NE(r.ToString().find("dest changed under the clone"), std::string::npos)
          << r.ToString();
      EXPECT_EQ(e()->Write(off, b.data(), kRegion, false).ToErrno(), EIO) << off;
      EXPECT_EQ(e()->Zero(off, 4096, true).ToErrno(), EIO) << off;
    }
    EXPECT_EQ(e()->Fsync().ToErrno(), EIO);
    const EngineStats st = e()->Stats();
    EXPECT_NE(st.dest_change.find("shrank"), std::string::npos) << st.dest_change;
    EXPECT_TRUE(e()->dest_changed());
    // The thread that found the change logs it just after making it known
    // (DestWatch::Check): under load the line may follow a moment later.
    EXPECT_TRUE(Rig::WaitFor(
        [&] { return !test::LinesWith(log_, "changed under the live clone").empty(); }));
    EXPECT_EQ(test::LinesWith(log_, "changed under the live clone").size(), 1u);
    EXPECT_EQ(test::LinesWith(log_, "error: dest dest changed under the live clone").size(), 1u);
  }
  Rig rig_;
  const std::string log_ = rig_.dir.path() + "/log";
};

// A complete clone whose dest is truncated: a read past the new end finds
// it, and from then on nothing is served, below the new end either.
TEST_F(DestChangeTest, ShortReadOfACompleteCloneRefusesEverything) {
  LogToFile();
  ASSERT_OK(rig_.Open(EngineOptions()));
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydration_done; }));
  rig_.dest->SimulateShrink(kImage / 2);
  std::vector<uint8_t> b(kRegion);
  EXPECT_EQ(e()->Read(kImage - kRegion, b.data(), kRegion).ToErrno(), EIO);
  ExpectEverythingRefused();
  EXPECT_EQ(e()->Stats().copy_stopped, "");  // complete: nothing to stop
}

// No request at all: the copier's periodic look finds it, also once the
// clone is complete.
TEST_F(DestChangeTest, FoundWithoutARequest) {
  LogToFile();
  ASSERT_OK(rig_.Open(EngineOptions()));
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydration_done; }));
  rig_.dest->SimulateShrink(kImage / 2);
  ASSERT_TRUE(Rig::WaitFor([&] { return !e()->Stats().dest_change.empty(); }));
  ExpectEverythingRefused();
}

// Truncated while the copier runs: copying stops, no copy writes dest after
// the change is seen, and the copier says why.
TEST_F(DestChangeTest, ShrinkDuringHydrationStopsCopying) {
  LogToFile();
  test::OpCounter dest;
  std::atomic<bool> shrunk{false};
  dest.also = [&](DeviceOp op, uint64_t off, uint64_t len) {
    // The first copy that reaches the second half finds dest truncated.
    if (op == DeviceOp::kWrite && off + len > kImage / 2 && !shrunk.exchange(true)) {
      rig_.dest->SimulateShrink(kImage / 4);
    }
  };
  dest.Install(rig_.dest);
  EngineOptions o;
  o.knobs.hydration_batch_size = 2;
  o.knobs.rate_bytes_per_s = 4 << 20;  // a unit at a time
  ASSERT_OK(rig_.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return !e()->Stats().dest_change.empty(); }));
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().copier_inflight_bytes == 0; }));
  const uint64_t writes = dest.writes.load() + dest.zeros.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(dest.writes.load() + dest.zeros.load(), writes) << "the copier kept writing";
  const EngineStats st = e()->Stats();
  EXPECT_FALSE(st.hydration_done);
  EXPECT_EQ(st.copy_stopped, "dest changed");
  ExpectEverythingRefused();
}

// A complete clone whose opens are passed through to dest: the kernel writes
// dest itself, and a write past the image's end (`echo x >> FILE`) extends
// it. DestWatch cuts that growth back instead of failing every request; a
// shrink is still a change, and growth before passthrough too.
TEST(DestWatchTest, GrowthIsCutBackOnceWritesArePassedThrough) {
  test::TempDir dir;
  const std::string path = dir.path() + "/dest";
  PosixDeviceOptions po;
  po.create = true;
  po.min_size = kImage;
  Result<std::unique_ptr<Device>> dev = OpenPosixDevice(path, po);
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  auto size_now = [&] {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  };
  ASSERT_EQ(size_now(), kImage);
  {
    DestWatch before(dev->get());
    ASSERT_EQ(truncate(path.c_str(), kImage + 6), 0);
    EXPECT_EQ(before.Check().ToErrno(), EIO) << "growth without passthrough is a change";
    EXPECT_NE(before.reason().find("grew"), std::string::npos) << before.reason();
    EXPECT_EQ(size_now(), kImage + 6) << "and is left as found";
  }
  DestWatch watch(dev->get());
  watch.AllowGrowthCut();
  EXPECT_TRUE(watch.Check().ok());
  EXPECT_EQ(size_now(), kImage) << "cut back to the image's size";
  EXPECT_EQ(watch.growth_cuts(), 1u);
  EXPECT_EQ(watch.growth_cut_bytes(), 6u);
  EXPECT_TRUE(watch.Check().ok()) << "nothing more to cut";
  EXPECT_EQ(watch.growth_cuts(), 1u);
  ASSERT_EQ(truncate(path.c_str(), kImage - 4096), 0);
  EXPECT_EQ(watch.Check().ToErrno(), EIO) << "a shrink is never cut or forgiven";
  EXPECT_TRUE(watch.changed());
  EXPECT_NE(watch.reason().find("shrank"), std::string::npos) << watch.reason();
  EXPECT_EQ(size_now(), kImage - 4096);
}

// Another program writes dest under an incomplete clone (SPEC §7a: mkfs or
// dd run on dest instead of on the exposed file). The size stays, so only
// the watch of other writers sees it: every request is refused, copying
// stops, and the mount is told once (to remember it). Once complete, dest
// alone is the image: it is no longer watched.
// fanotify groups open in this process (the engine's watch is one).
int FanotifyFds() {
  int n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code lec;
    if (std::filesystem::read_symlink(it->path(), lec).string() == "anon_inode:[fanotify]") ++n;
  }
  return n;
}

class DestWrittenTest : public ::testing::Test {
 protected:
  DestWrittenTest() : rig_(kImage, kRegion, test::RandomContent(kImage, 29, 0)) {}
  ~DestWrittenTest() override {
    engine_.reset();
    SetLogToStderr();
  }
  void Open(bool hydrate) {
    ASSERT_OK(SetLogToFile(log_));
    PosixDeviceOptions po;
    po.create = true;
    po.min_size = kImage;
    auto dev = OpenPosixDevice(path_, po);
    ASSERT_TRUE(dev.ok()) << dev.status().ToString();
    auto md = metadata::Metadata::Open(rig_.MdOptions());
    ASSERT_TRUE(md.ok()) << md.status().ToString();
    EngineOptions eo;
    eo.knobs.hydration_enabled = hydrate;
    eo.on_dest_written = [this](const std::string& change) {
      std::lock_guard<std::mutex> l(mu_);
      told_.push_back(change);
    };
    auto e = Engine::Open(test::Share(rig_.source), std::move(*dev), std::move(*md), eo);
    ASSERT_TRUE(e.ok()) << e.status().ToString();
    engine_ = std::move(*e);
    ASSERT_OK(engine_->Start());
  }
  // A write of one byte into dest by another process; returns its pid.
  int WriteFromAnotherProcess() {
    const pid_t pid = fork();
    if (pid == 0) {
      const int fd = open(path_.c_str(), O_WRONLY);
      _exit(fd >= 0 && pwrite(fd, "x", 1, kRegion + 7) == 1 ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return pid;
  }
  std::vector<std::string> Told() {
    std::lock_guard<std::mutex> l(mu_);
    return told_;
  }

  Rig rig_;
  const std::string path_ = rig_.dir.path() + "/dest";
  const std::string log_ = rig_.dir.path() + "/log";
  std::unique_ptr<Engine> engine_;
  std::mutex mu_;
  std::vector<std::string> told_;  // GUARDED_BY(mu_)
};

TEST_F(DestWrittenTest, AnotherProgramsWriteStopsAnIncompleteClone) {
  Open(/*hydrate=*/false);
  // The watch, and its guard where this process has the privilege.
  EXPECT_EQ(FanotifyFds(), geteuid() == 0 ? 2 : 1);
  // The clone's own writes, from this process, are no change.
  std::vector<uint8_t> b(kRegion, 0x5a), r(kRegion);
  ASSERT_OK(engine_->Write(0, b.data(), kRegion, false));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_OK(engine_->Read(0, r.data(), kRegion));
  EXPECT_EQ(r, b);
  EXPECT_FALSE(engine_->dest_changed());

  const int pid = WriteFromAnotherProcess();
  ASSERT_TRUE(Rig::WaitFor([&] { return engine_->dest_changed(); }));
  const std::string change = engine_->Stats().dest_change;
  EXPECT_NE(change.find(path_ + " was written by another program, "), std::string::npos) << change;
  if (geteuid() == 0) {
    EXPECT_NE(change.find("pid " + std::to_string(pid)), std::string::npos) << change;
  }
  Status rs = engine_->Read(0, r.data(), kRegion);
  EXPECT_EQ(rs.ToErrno(), EIO) << rs.ToString();
  EXPECT_NE(rs.ToString().find("written by another program"), std::string::npos) << rs.ToString();
  EXPECT_EQ(engine_->Write(0, b.data(), kRegion, false).ToErrno(), EIO);
  EXPECT_EQ(engine_->Stats().copy_stopped, "dest changed");
  ASSERT_TRUE(Rig::WaitFor([&] { return !Told().empty(); }));
  EXPECT_EQ(Told(), std::vector<std::string>{change});
  EXPECT_EQ(test::LinesWith(log_, "was written by another program").size(), 1u);
  WriteFromAnotherProcess();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Told().size(), 1u) << "told once";
}

TEST_F(DestWrittenTest, AfterCompletionDestIsNoLongerWatched) {
  Open(/*hydrate=*/true);
  ASSERT_TRUE(Rig::WaitFor([&] { return engine_->Stats().hydration_done; }));
  WriteFromAnotherProcess();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // ten looks of a watch
  EXPECT_FALSE(engine_->dest_changed()) << engine_->Stats().dest_change;
  EXPECT_EQ(FanotifyFds(), 0) << "the watch is stopped at completion";
  EXPECT_TRUE(Told().empty());
  std::vector<uint8_t> r(kRegion);
  EXPECT_OK(engine_->Read(0, r.data(), kRegion));
}

// dest changed size first (found by the size check), then another program
// wrote it -- `cp other.img dest` truncates, then writes a full-size file
// again. The size check's change is not recorded (a later mount sees a
// short dest by itself), so the write must be: with dest full-size again,
// nothing else would stop a later mount from serving what cp wrote.
TEST_F(DestWrittenTest, AWriteAfterASizeChangeIsStillRecorded) {
  Open(/*hydrate=*/false);
  ASSERT_EQ(truncate(path_.c_str(), kImage / 2), 0);  // this process: no event
  EXPECT_EQ(engine_->Fsync().ToErrno(), EIO);
  ASSERT_TRUE(engine_->dest_changed());
  EXPECT_NE(engine_->Stats().dest_change.find("shrank"), std::string::npos);
  EXPECT_TRUE(Told().empty()) << "a size change is no other program's write";
  WriteFromAnotherProcess();
  ASSERT_TRUE(Rig::WaitFor([&] { return !Told().empty(); })) << "the write was not recorded";
  EXPECT_NE(Told()[0].find(path_ + " was written by another program, "), std::string::npos)
      << Told()[0];
  WriteFromAnotherProcess();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Told().size(), 1u) << "told once";
  EXPECT_NE(engine_->Stats().dest_change.find("shrank"), std::string::npos)
      << "status names the first change";
}

}  // namespace
}  // namespace clonefs
