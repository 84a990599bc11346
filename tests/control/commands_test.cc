// Component tests: the status/message/wait commands against a control server
// backed by a fake engine (reached with --socket; mount discovery is covered
// by the mount-tier tests).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <thread>

#include "control/commands.h"
#include "control/server.h"
#include "control/status_report.h"
#include "fake_engine.h"

namespace clonefs::control {
namespace {

using testing::FakeEngineForControlTests;

struct CmdRun {
  int rc;
  std::string out, err;
};

using Cmd = int (*)(const std::vector<std::string>&, const CommandIo&);

CmdRun Exec(Cmd cmd, std::vector<std::string> args, bool tty = false) {
  std::ostringstream out, err;
  int rc = cmd(args, CommandIo{out, err, tty});
  return CmdRun{rc, out.str(), err.str()};
}

class CommandsTest : public ::testing::Test {
 protected:
  // Waits (up to 20 s) until `calls()` reaches `n`. A client's second request
  // proves it has received, and acted on, the answer to its first one.
  template <typename F>
  static void WaitCalls(F calls, int n) {
    for (int i = 0; i < 20'000 && calls() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_GE(calls(), n);
  }

  void SetUp() override {
    char tmpl[] = "/tmp/clonefs-cmd-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    sock_ = dir_ + "/c.sock";
    ControlServerOptions o;
    o.socket_path = sock_;
    ASSERT_TRUE(server_.Start(&engine_, ControlInfo{"/mnt/x", "/s", "/d", "/d.clonefs", "", "", ""}, o).ok());
  }
  void TearDown() override {
    server_.Stop();
    std::filesystem::remove_all(dir_);
  }

  std::string dir_, sock_;
  FakeEngineForControlTests engine_;
  ControlServer server_;
};

TEST_F(CommandsTest, StatusFormats) {
  engine_.SetHydrated(80, true);
  CmdRun h = Exec(RunStatusCommand, {"--socket", sock_});
  EXPECT_EQ(h.rc, 0) << h.err;
  EXPECT_NE(h.out.find("50.00%"), std::string::npos) << h.out;
  CmdRun j = Exec(RunStatusCommand, {"--socket", sock_, "--json"});
  ASSERT_EQ(j.rc, 0) << j.err;
  Result<StatusReport> r = ReportFromJsonText(j.out);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->hydrated_regions, 80u);
  CmdRun d = Exec(RunStatusCommand, {"--socket", sock_, "--dm"});
  ASSERT_EQ(d.rc, 0);
  EXPECT_EQ(d.out, "8 12/1000 128 80/160 0 0 4 hydration_threshold 1024 hydration_batch_size 16 rw\n");
}

TEST_F(CommandsTest, StatusUsageErrors) {
  EXPECT_EQ(Exec(RunStatusCommand, {"--socket", sock_, "--json", "--dm"}).rc, kExitUsage);
  EXPECT_EQ(Exec(RunStatusCommand, {"--socket", sock_, "--bogus"}).rc, kExitUsage);
  EXPECT_EQ(Exec(RunStatusCommand, {"--socket", sock_, "--watch", "0"}).rc, kExitUsage);
  EXPECT_EQ(Exec(RunStatusCommand, {}).rc, kExitUsage);
  CmdRun nomount = Exec(RunStatusCommand, {"/"});
  EXPECT_EQ(nomount.rc, kExitFailure);
  EXPECT_NE(nomount.err.find("/ is not a clonefs mount"), std::string::npos) << nomount.err;
  CmdRun gone = Exec(RunStatusCommand, {"--socket", dir_ + "/nope.sock"});
  EXPECT_EQ(gone.rc, kExitFailure);
  EXPECT_FALSE(gone.err.empty());
  CmdRun help = Exec(RunStatusCommand, {"--help"});
  EXPECT_EQ(help.rc, 0);
  EXPECT_NE(help.out.find("--watch"), std::string::npos);
}

// --count only counts --watch's refreshes, and at least one.
TEST_F(CommandsTest, StatusCountNeedsWatch) {
  CmdRun alone = Exec(RunStatusCommand, {"--socket", sock_, "--count", "3"});
  EXPECT_EQ(alone.rc, kExitUsage);
  EXPECT_NE(alone.err.find("--count counts the refreshes of --watch"), std::string::npos)
      << alone.err;
  EXPECT_EQ(alone.out, "");
  CmdRun zero = Exec(RunStatusCommand, {"--socket", sock_, "-w", "0.05", "-n", "0"});
  EXPECT_EQ(zero.rc, kExitUsage);
  EXPECT_NE(zero.err.find("--count must be at least 1"), std::string::npos) << zero.err;
  for (const char* bad : {"-1", "x", "1.5"}) {
    CmdRun r = Exec(RunStatusCommand, {"--socket", sock_, "-w", "0.05", "-n", bad});
    EXPECT_EQ(r.rc, kExitUsage) << bad;
  }
}

// A watch whose daemon goes away says so, not "connect ...: No such file".
TEST_F(CommandsTest, StatusWatchSaysWhenTheCloneGoesAway) {
  std::thread stopper([this] {
    WaitCalls([this] { return engine_.commit_calls(); }, 2);  // status-dm commits
    server_.Stop();
  });
  CmdRun r = Exec(RunStatusCommand, {"--socket", sock_, "--dm", "--watch", "0.05"});
  stopper.join();
  EXPECT_EQ(r.rc, kExitFailure);
  EXPECT_NE(r.err.find("the clone stopped answering"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is the clonefs daemon running?"), std::string::npos) << r.err;
}

TEST_F(CommandsTest, StatusWatch) {
  CmdRun plain = Exec(RunStatusCommand, {"--socket", sock_, "--dm", "--watch", "0.05", "--count", "3"});
  ASSERT_EQ(plain.rc, 0) << plain.err;
  EXPECT_EQ(std::count(plain.out.begin(), plain.out.end(), '\n'), 3) << plain.out;
  EXPECT_EQ(plain.out.find("\033["), std::string::npos);
  CmdRun tty = Exec(RunStatusCommand, {"--socket", sock_, "--watch", "0.05", "-n", "2"}, true);
  ASSERT_EQ(tty.rc, 0) << tty.err;
  size_t first = tty.out.find("\033[H\033[2J");
  ASSERT_EQ(first, 0u);
  EXPECT_NE(tty.out.find("\033[H\033[2J", 1), std::string::npos);
}

// --watch's SECONDS may be left out: a word after it that is not a number
// is the MOUNTPOINT (`clonefs status --watch /mnt/c`), not a bad SECONDS.
TEST_F(CommandsTest, StatusWatchBeforeTheMountpoint) {
  for (const char* watch : {"--watch", "-w"}) {
    CmdRun r = Exec(RunStatusCommand, {watch, "/", "--count", "1"});
    EXPECT_EQ(r.rc, kExitFailure) << watch << ": " << r.err;
    EXPECT_NE(r.err.find("/ is not a clonefs mount"), std::string::npos) << watch << ": " << r.err;
  }
  CmdRun ok = Exec(RunStatusCommand, {"--socket", sock_, "--dm", "--watch", "/mnt/c", "-n", "1"});
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_EQ(std::count(ok.out.begin(), ok.out.end(), '\n'), 1) << ok.out;
  // A number after it is still its SECONDS; a bad one is still refused.
  EXPECT_EQ(Exec(RunStatusCommand, {"--socket", sock_, "--watch", "0"}).rc, kExitUsage);
}

TEST_F(CommandsTest, MessageValidAndInvalid) {
  CmdRun ok = Exec(RunMessageCommand, {"--socket", sock_, "Hydration_Threshold", "12"});
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_EQ(ok.out, "hydration_threshold set to 12\n");
  EXPECT_EQ(engine_.Stats().knobs.hydration_threshold, 12u);
  ok = Exec(RunMessageCommand, {"--socket", sock_, "rate", "20MB"});
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_EQ(engine_.Stats().knobs.rate_bytes_per_s, 20u << 20);  // as mount --rate 20MB
  ok = Exec(RunMessageCommand, {"--socket", sock_, "rate", "20M/s"});
  EXPECT_EQ(ok.rc, 0) << ok.err;
  EXPECT_EQ(engine_.Stats().knobs.rate_bytes_per_s, 20u << 20);

  for (std::vector<std::string> bad : std::vector<std::vector<std::string>>{
           {"rate", "-1"}, {"hydration_batch_size", "0"}, {"enable_hydration", "x"},
           {"bogus"}, {}}) {
    std::vector<std::string> args = {"--socket", sock_};
    args.insert(args.end(), bad.begin(), bad.end());
    CmdRun r = Exec(RunMessageCommand, args);
    EXPECT_EQ(r.rc, kExitUsage);
    EXPECT_NE(r.err.find("hydration_batch_size N"), std::string::npos) << r.err;
  }
  EXPECT_EQ(engine_.Stats().knobs.hydration_threshold, 12u);
  EXPECT_EQ(engine_.Stats().knobs.rate_bytes_per_s, 20u << 20);
  // Invalid messages are refused before any connection is made.
  CmdRun offline = Exec(RunMessageCommand, {"/nonexistent-mountpoint", "bogus"});
  EXPECT_EQ(offline.rc, kExitUsage);
  EXPECT_NE(offline.err.find("unsupported message 'bogus'"), std::string::npos) << offline.err;
  CmdRun nomount = Exec(RunMessageCommand, {"/", "enable_hydration"});
  EXPECT_EQ(nomount.rc, kExitFailure);
  EXPECT_NE(nomount.err.find("is not a clonefs mount"), std::string::npos);
}

TEST_F(CommandsTest, WaitDone) {
  engine_.SetHydrated(160, true);
  CmdRun r = Exec(RunWaitCommand, {"--socket", sock_});
  EXPECT_EQ(r.rc, kWaitDone) << r.err;
  EXPECT_NE(r.out.find("hydration complete"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("100.0%"), std::string::npos) << r.out;
}

TEST_F(CommandsTest, WaitHydratedButNotCommittedKeepsWaiting) {
  engine_.SetHydrated(160, /*commit=*/false);
  CmdRun r = Exec(RunWaitCommand, {"--socket", sock_, "--timeout", "0.3", "--quiet"});
  EXPECT_EQ(r.rc, kWaitTimedOut) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_F(CommandsTest, WaitBecomesDone) {
  engine_.SetHydrated(10, true);
  std::thread t([&] {
    WaitCalls([this] { return engine_.stats_calls(); }, 2);  // 10/160 shown
    engine_.SetHydrated(160, true);
  });
  CmdRun r = Exec(RunWaitCommand, {"--socket", sock_, "--timeout", "60", "--interval", "0.1"}, true);
  t.join();
  EXPECT_EQ(r.rc, kWaitDone) << r.err;
  EXPECT_NE(r.out.find("\r\033[K["), std::string::npos) << r.out;  // in-place bar
  EXPECT_NE(r.out.find("6.2%"), std::string::npos) << r.out;      // 10/160 seen first
}

TEST_F(CommandsTest, WaitTimesOut) {
  engine_.SetHydrated(10, true);
  CmdRun r = Exec(RunWaitCommand, {"--socket", sock_, "--timeout", "0.3", "--interval", "0.1"});
  EXPECT_EQ(r.rc, kWaitTimedOut);
  EXPECT_NE(r.err.find("timed out"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("6.2%"), std::string::npos) << r.out;  // plain lines
  EXPECT_EQ(r.out.find('\r'), std::string::npos);
}

// SPEC §7a: `wait` does not spin without saying why. While the clone is not
// healthy its line shows the reason instead of "ETA -"; with --stall-timeout
// it gives up when nothing progressed for that long, with its own exit code.
TEST_F(CommandsTest, WaitStalledSaysWhyAndGivesUp) {
  EngineStats s = engine_.Stats();
  s.dest_condition = DestCondition::kFull;
  s.last_error.kind = ErrorKind::kDestFull;
  s.last_error.what = "copy write to dest at offset 655360: No space left on device";
  s.last_error.err = 28;
  s.last_error.count = 4641;
  engine_.SetStats(s);
  engine_.SetHydrated(10, true);
  CmdRun r = Exec(RunWaitCommand,
                  {"--socket", sock_, "--stall-timeout", "0.3", "--interval", "0.1"});
  EXPECT_EQ(r.rc, kWaitStalled) << r.err;
  EXPECT_EQ(kWaitStalled, 6);
  EXPECT_NE(r.out.find("6.2%"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("degraded: dest full"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("ETA -"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("no hydration progress for 0.3 s"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("health: degraded: dest full"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("degraded: dest full"), r.err.rfind("degraded: dest full"))
      << "the health said twice: " << r.err;
  EXPECT_NE(r.err.find(" s at 6.2%"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("last error: copy write to dest at offset 655360: No space left on "
                       "device (errno 28 ENOSPC)"),
            std::string::npos)
      << r.err;
  // A healthy clone that stalls (here: paused) gives up the same way.
  s = engine_.Stats();
  s.dest_condition = DestCondition::kOk;
  s.knobs.hydration_enabled = false;
  engine_.SetStats(s);
  r = Exec(RunWaitCommand, {"--socket", sock_, "--stall-timeout", "0.2", "--quiet"});
  EXPECT_EQ(r.rc, kWaitStalled) << r.err;
  EXPECT_NE(r.err.find("health: ok"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("(paused)"), std::string::npos) << r.err;
  // A source that is down is why: the clone's own last error is none, and
  // the message used to stop there.
  s = engine_.Stats();
  s.knobs.hydration_enabled = true;
  s.last_error = {};
  s.copier_pause = "source down";
  s.source_health.state = SourceHealth::State::kReconnecting;
  s.source_health.since_unix_ns = WallNowNanos() - 5'000'000'000;
  s.source_health.last_error = "reconnecting to nbd://h/e: connect: Connection refused";
  s.source_health.last_error_unix_ns = WallNowNanos();
  s.source_health.errors = 3;
  engine_.SetStats(s);
  r = Exec(RunWaitCommand, {"--socket", sock_, "--stall-timeout", "0.2", "--quiet"});
  EXPECT_EQ(r.rc, kWaitStalled) << r.err;
  EXPECT_NE(r.err.find("health: degraded: source unreachable"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("; source link: reconnecting since "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("connect: Connection refused"), std::string::npos) << r.err;
  s.source_health = {};
  s.copier_pause.clear();
  engine_.SetStats(s);
  // --timeout still wins when it comes first.
  r = Exec(RunWaitCommand,
           {"--socket", sock_, "--stall-timeout", "60", "--timeout", "0.2", "--quiet"});
  EXPECT_EQ(r.rc, kWaitTimedOut) << r.err;
}

TEST_F(CommandsTest, WaitReadOnlyAndFail) {
  engine_.SetMode(EngineMode::kReadOnly);
  CmdRun r = Exec(RunWaitCommand, {"--socket", sock_, "--timeout", "30"});
  EXPECT_EQ(r.rc, kWaitCloneFailed);
  EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
  engine_.SetMode(EngineMode::kFail);
  r = Exec(RunWaitCommand, {"--socket", sock_, "--timeout", "30"});
  EXPECT_EQ(r.rc, kWaitCloneFailed);
  EXPECT_NE(r.err.find("fail"), std::string::npos) << r.err;
}

TEST_F(CommandsTest, WaitDaemonGone) {
  std::thread t([&] {
    WaitCalls([this] { return engine_.stats_calls(); }, 2);  // answered once
    server_.Stop();
  });
  CmdRun r = Exec(RunWaitCommand, {"--socket", sock_, "--timeout", "60", "--interval", "0.1"});
  t.join();
  EXPECT_EQ(r.rc, kWaitDaemonGone) << r.err;
  EXPECT_NE(r.err.find("went away"), std::string::npos) << r.err;
}

TEST_F(CommandsTest, WaitUsageErrors) {
  EXPECT_EQ(Exec(RunWaitCommand, {"--socket", dir_ + "/none.sock"}).rc, kWaitError);
  EXPECT_EQ(Exec(RunWaitCommand, {"--socket", sock_, "--timeout", "-1"}).rc, kWaitUsage);
  EXPECT_EQ(Exec(RunWaitCommand, {"--socket", sock_, "--timeout", "abc"}).rc, kWaitUsage);
  EXPECT_EQ(Exec(RunWaitCommand, {"--socket", sock_, "--stall-timeout", "-1"}).rc, kWaitUsage);
  EXPECT_EQ(Exec(RunWaitCommand, {}).rc, kWaitUsage);
  CmdRun nomount = Exec(RunWaitCommand, {"/"});
  EXPECT_EQ(nomount.rc, kWaitError);
  EXPECT_NE(nomount.err.find("is not a clonefs mount"), std::string::npos);
}

}  // namespace
}  // namespace clonefs::control
