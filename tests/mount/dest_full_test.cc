// SPEC §7a through the real command: DEST lives on a small tmpfs that the
// copier fills up. Status must say so -- health "degraded: dest full" and the
// last error with ENOSPC, not only a failure count --, the log must say it
// once (not once per region), `wait --stall-timeout` must give up saying
// why, and once space is freed hydration completes and the health is "ok"
// again, which the log also says once. The source never changes.
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "control/status_report.h"
#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kSourceSize = 24ull << 20;

size_t Occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

class DestFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, kSourceSize, 11);
    src_sha_ = Sha256(c_.src);
    char tmpl[] = "/tmp/clonefs-destfs-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    fs_ = tmpl;
    ASSERT_TRUE(ShOk("mount -t tmpfs -o size=4M,mode=0755 clonefs-test " + Quote(fs_)));
    tmpfs_mounted_ = true;
    c_.dst = fs_ + "/dst.img";
    c_.metadata = c_.dir() / "md";  // the metadata has room: only DEST fills up
  }
  void TearDown() override {
    if (c_.IsMounted()) Sh(ClonefsBinary() + " unmount --force " + Quote(c_.mnt));
    for (int i = 0; i < 250 && c_.DaemonPid() != 0; ++i) usleep(20000);
    if (tmpfs_mounted_ && Sh("umount " + Quote(fs_)).code != 0) Sh("umount -l " + Quote(fs_));
    if (!fs_.empty()) rmdir(fs_.c_str());
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }

  Result<control::StatusReport> Query() { return QueryStatus(c_.mnt); }
  // Polls status until pred holds (or about `seconds` passed); the last
  // report seen.
  control::StatusReport WaitForStatus(const std::function<bool(const control::StatusReport&)>& pred,
                                      int seconds) {
    control::StatusReport last;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    do {
      Result<control::StatusReport> r = Query();
      EXPECT_TRUE(r.ok()) << r.status().ToString();
      if (!r.ok()) return last;
      last = *r;
      if (pred(last)) return last;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    } while (std::chrono::steady_clock::now() < end);
    return last;
  }

  CloneDir c_;
  std::string src_sha_, fs_;
  bool tmpfs_mounted_ = false;
};

TEST_F(DestFullTest, StatusSaysDestFullAndOkAgainOnceSpaceIsFreed) {
  RunResult m = c_.Mount("--metadata " + Quote(c_.metadata));
  ASSERT_EQ(m.code, 0) << m.out;

  control::StatusReport r = WaitForStatus(
      [](const control::StatusReport& s) { return s.health == "degraded: dest full"; }, 120);
  ASSERT_EQ(r.health, "degraded: dest full") << c_.LogText();
  EXPECT_EQ(r.schema_version, control::kStatusSchemaVersion);
  EXPECT_EQ(r.last_error.kind, ErrorKind::kDestFull);
  EXPECT_EQ(r.last_error.err, ENOSPC);
  EXPECT_NE(r.last_error.what.find(" to dest at offset "), std::string::npos)
      << r.last_error.what;
  EXPECT_NE(r.last_error.what.find("No space left on device"), std::string::npos)
      << r.last_error.what;
  EXPECT_GE(r.last_error.count, 1u);
  EXPECT_GT(r.copy_failures, 0u);
  EXPECT_FALSE(r.hydration_done);
  EXPECT_EQ(r.mode, EngineMode::kReadWrite);  // the metadata is fine

  RunResult human = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  EXPECT_NE(human.out.find("Health:       degraded: dest full\n"), std::string::npos)
      << human.out;
  EXPECT_NE(human.out.find("(errno 28 ENOSPC)"), std::string::npos) << human.out;

  // Nothing progresses while DEST is full: wait gives up, saying why.
  RunResult w = Sh(ClonefsBinary() + " wait --stall-timeout 3 --interval 1 " + Quote(c_.mnt));
  EXPECT_EQ(w.code, 6) << w.out;
  EXPECT_NE(w.out.find("health: degraded: dest full"), std::string::npos) << w.out;
  EXPECT_NE(w.out.find("ENOSPC"), std::string::npos) << w.out;
  EXPECT_EQ(w.out.find("ETA -"), std::string::npos) << w.out;

  // Free space: the failed copies are retried and succeed.
  ASSERT_TRUE(ShOk("mount -o remount,size=64M " + Quote(fs_)));
  ASSERT_TRUE(c_.WaitComplete(300)) << c_.LogText();
  r = WaitForStatus([](const control::StatusReport& s) { return s.health == "ok"; }, 30);
  EXPECT_EQ(r.health, "ok");
  EXPECT_TRUE(r.hydration_done);
  EXPECT_EQ(r.last_error.kind, ErrorKind::kDestFull);  // still the last error there was

  const std::string log = c_.LogText();
  EXPECT_EQ(Occurrences(log, "is full (copy write to dest"), 1u) << log;
  EXPECT_EQ(Occurrences(log, "dest has space again"), 1u) << log;
  EXPECT_EQ(Occurrences(log, "background copy failed"), 0u) << log;

  RunResult u = c_.Unmount();
  EXPECT_EQ(u.code, 0) << u.out;
  EXPECT_EQ(Sha256(c_.dst), src_sha_);
}

}  // namespace
}  // namespace clonefs::testing
