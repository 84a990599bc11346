// Stored settings through the real `clonefs` command (SPEC §5 "settings"):
// a clone mounted again with only SOURCE DEST MOUNTPOINT runs as it was set
// up, `message` changes survive a remount, an option given again overrides
// and is stored, and the stored --on-complete runs after a resume.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kSourceSize = 16ull << 20;

class StoredSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, kSourceSize, 31);
    src_sha_ = Sha256(c_.src);
    flag_ = c_.dir() / "on-complete-ran";
  }
  void TearDown() override {
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source was modified";
    }
  }
  // `clonefs mount [extra] SRC DST MNT`: no option of the harness's own.
  RunResult MountWith(const std::string& extra) {
    return Sh(ClonefsBinary() + " mount " + extra + " " + Quote(c_.src) + " " + Quote(c_.dst) +
              " " + Quote(c_.mnt));
  }
  std::string StatusText() {
    RunResult r = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
    EXPECT_EQ(r.code, 0) << r.out;
    return r.out;
  }
  bool WaitForFlag(int seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (access(flag_.c_str(), F_OK) == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  static bool Has(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
  }

  CloneDir c_;
  std::string src_sha_, flag_;
};

TEST_F(StoredSettingsTest, ResumedCloneRunsWithItsStoredSettings) {
  RunResult m = MountWith("--rate 1M --region-size 128K --on-complete " +
                          Quote("touch " + flag_) +
                          " --name x.img --no-discard-passdown");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(access((c_.mnt + "/x.img").c_str(), F_OK), 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  ASSERT_NE(access(flag_.c_str(), F_OK), 0) << "hydration finished during the first mount";

  // Nothing but SOURCE DEST MOUNTPOINT.
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "resuming with the settings stored with this clone")) << m.out;
  EXPECT_TRUE(Has(m.out, "mounted " + c_.mnt + "/x.img")) << m.out;
  std::string st = StatusText();
  EXPECT_TRUE(Has(st, "File:         " + c_.mnt + "/x.img")) << st;
  EXPECT_TRUE(Has(st, "rate 1.00 MiB/s")) << st;
  EXPECT_TRUE(Has(st, "discard passdown off")) << st;
  EXPECT_TRUE(Has(st, "/128 hydrated")) << st;
  EXPECT_TRUE(Has(st, "region size 128.00 KiB")) << st;
  EXPECT_TRUE(Has(st, "--on-complete " + Quote("touch " + flag_))) << st;

  // A message is stored: the next mount keeps the last rate.
  RunResult msg = Sh(ClonefsBinary() + " message " + Quote(c_.mnt) + " rate 2M");
  ASSERT_EQ(msg.code, 0) << msg.out;
  EXPECT_FALSE(Has(msg.out, "not stored")) << msg.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  RunResult info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  ASSERT_EQ(info.code, 0) << info.out;
  EXPECT_TRUE(Has(info.out, "Settings:     --rate 2M --no-discard-passdown --name x.img")) << info.out;
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  st = StatusText();
  EXPECT_TRUE(Has(st, "rate 2.00 MiB/s")) << st;
  EXPECT_TRUE(Has(st, "discard passdown off")) << st;
  ASSERT_EQ(c_.Unmount().code, 0);

  // An option given again overrides and is stored; the rest stays.
  m = MountWith("--rate 3M --discard-passdown");
  ASSERT_EQ(m.code, 0) << m.out;
  st = StatusText();
  EXPECT_TRUE(Has(st, "rate 3.00 MiB/s")) << st;
  EXPECT_TRUE(Has(st, "discard passdown on")) << st;
  ASSERT_EQ(access((c_.mnt + "/x.img").c_str(), F_OK), 0);
  ASSERT_EQ(c_.Unmount().code, 0);
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  st = StatusText();
  EXPECT_TRUE(Has(st, "rate 3.00 MiB/s")) << st;
  EXPECT_TRUE(Has(st, "discard passdown on")) << st;

  // Completion after a resume runs the stored --on-complete.
  msg = Sh(ClonefsBinary() + " message " + Quote(c_.mnt) + " rate 0");
  ASSERT_EQ(msg.code, 0) << msg.out;
  EXPECT_TRUE(WaitForFlag(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
}

TEST_F(StoredSettingsTest, ExplicitOtherRegionSizeIsRefusedWithoutNewCloneAdvice) {
  RunResult m = MountWith("--region-size 128K --no-hydration --on-complete " +
                          Quote("touch " + flag_));
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);

  RunResult r = MountWith("--region-size 64K");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(Has(r.out, "region size: metadata has 131072, requested 65536")) << r.out;
  EXPECT_TRUE(Has(r.out, "without --region-size")) << r.out;
  EXPECT_FALSE(Has(r.out, "new clone")) << r.out;
  EXPECT_FALSE(Has(r.out, "new directory")) << r.out;
  EXPECT_EQ(c_.DaemonPid(), 0);

  // The way back on, and clearing the stored command: hydration completes
  // and no command runs.
  m = MountWith("--hydration --on-complete ''");
  ASSERT_EQ(m.code, 0) << m.out;
  std::string st = StatusText();
  EXPECT_TRUE(Has(st, "region size 128.00 KiB")) << st;
  EXPECT_TRUE(Has(st, "hydration enabled")) << st;
  EXPECT_TRUE(Has(st, "--hydration --on-complete ''")) << st;
  RunResult w = Sh(ClonefsBinary() + " wait " + Quote(c_.mnt));
  EXPECT_EQ(w.code, 0) << w.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_NE(access(flag_.c_str(), F_OK), 0) << "a cleared --on-complete ran";
}

}  // namespace
}  // namespace clonefs::testing
