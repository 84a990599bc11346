// Unit tests of the --on-complete command runner: wait statuses decoded,
// the command's output in the log (line by line, bounded), its working
// directory, signal mask and environment, and that it outlives the daemon.
#include "fuse/on_complete.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "base/log.h"

namespace clonefs::fuse {
namespace {

int RunShell(const char* script) {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", script, static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

TEST(DescribeWaitStatusTest, DecodesExitsAndSignals) {
  EXPECT_EQ(DescribeWaitStatus(RunShell("exit 3")), "exited with 3");
  EXPECT_EQ(DescribeWaitStatus(768), "exited with 3");  // what was logged as "status 768"
  EXPECT_EQ(DescribeWaitStatus(RunShell("exit 0")), "exited with 0");
  EXPECT_EQ(DescribeWaitStatus(RunShell("kill -KILL $$")), "killed by SIGKILL");
  EXPECT_EQ(DescribeWaitStatus(RunShell("kill -TERM $$")), "killed by SIGTERM");
  EXPECT_EQ(DescribeWaitStatus(SIGSEGV | 0x80), "killed by SIGSEGV (core dumped)");
  EXPECT_EQ(DescribeWaitStatus(0x7f | (SIGSTOP << 8)), "stopped by SIGSTOP");
}

class OnCompleteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clonefs-oncomplete-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    log_ = dir_ + "/log";
    ASSERT_TRUE(SetLogToFile(log_).ok());
  }
  void TearDown() override {
    SetLogToStderr();
    std::filesystem::remove_all(dir_);
  }
  std::string Log() {
    std::ifstream f(log_);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  size_t Count(const std::string& text) {
    const std::string l = Log();
    size_t n = 0;
    for (size_t p = l.find(text); p != std::string::npos; p = l.find(text, p + 1)) ++n;
    return n;
  }
  std::string dir_, log_;
};

// The command's stdout and stderr reach the log, and a failure says how it
// ended ("exited with 3"), not a raw wait status.
TEST_F(OnCompleteTest, OutputIsLoggedAndTheExitIsDecoded) {
  OnCompleteOptions o;
  o.command = "echo to-stdout; echo to-stderr >&2; printf 'no newline'; exit 3";
  OnCompleteCommand c(o);
  c.Start();
  c.Start();  // once only
  const int status = c.WaitForTesting();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  const std::string l = Log();
  EXPECT_NE(l.find("]: to-stdout\n"), std::string::npos) << l;
  EXPECT_NE(l.find("]: to-stderr\n"), std::string::npos) << l;
  EXPECT_NE(l.find("]: no newline\n"), std::string::npos) << l;
  EXPECT_NE(l.find("warning: on-complete: command (pid "), std::string::npos) << l;
  EXPECT_NE(l.find(") failed: exited with 3"), std::string::npos) << l;
  EXPECT_EQ(l.find("status 768"), std::string::npos) << l;
  EXPECT_EQ(Count("on-complete: started '"), 1u) << l;
}

TEST_F(OnCompleteTest, SuccessAndSignalsAreSaid) {
  OnCompleteOptions o;
  o.command = "true";
  OnCompleteCommand ok(o);
  ok.Start();
  EXPECT_EQ(ok.WaitForTesting(), 0);
  EXPECT_NE(Log().find("info: on-complete: command (pid "), std::string::npos) << Log();
  EXPECT_NE(Log().find(") exited with 0"), std::string::npos) << Log();
  o.command = "kill -KILL $$";
  OnCompleteCommand killed(o);
  killed.Start();
  const int status = killed.WaitForTesting();
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_NE(Log().find(") failed: killed by SIGKILL"), std::string::npos) << Log();
}

// A chatty command neither blocks nor grows the log without bound: lines
// past the limit are counted, long lines are cut.
TEST_F(OnCompleteTest, OutputIsBounded) {
  OnCompleteOptions o;
  o.command =
      "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done; "
      "head -c 300000 /dev/zero | tr '\\0' x";
  o.max_lines = 10;
  o.max_line_bytes = 50;
  OnCompleteCommand c(o);
  c.Start();
  EXPECT_EQ(c.WaitForTesting(), 0);
  const std::string l = Log();
  EXPECT_NE(l.find("]: line-9\n"), std::string::npos) << l;
  EXPECT_EQ(l.find("]: line-10\n"), std::string::npos) << l;
  EXPECT_NE(l.find("10 lines logged; further output is not logged"), std::string::npos) << l;
  EXPECT_NE(l.find("(2991 more lines of output not logged)"), std::string::npos) << l;
  EXPECT_LT(l.size(), 4000u);

  OnCompleteOptions w;
  w.command = "head -c 300000 /dev/zero | tr '\\0' x";
  w.max_line_bytes = 50;
  OnCompleteCommand wide(w);
  wide.Start();
  EXPECT_EQ(wide.WaitForTesting(), 0);
  EXPECT_NE(Log().find("]: " + std::string(50, 'x') + " [line cut]\n"), std::string::npos)
      << Log();
}

// It runs in /, with the environment given, stdin from /dev/null, and no
// signal blocked even though the daemon's threads block theirs.
TEST_F(OnCompleteTest, WorkingDirectoryEnvironmentAndSignals) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
  OnCompleteOptions o;
  o.command =
      "echo cwd=$(pwd); echo var=$CLONEFS_DEST; grep '^SigBlk' /proc/self/status; "
      "read x; echo read=$?";
  o.env = {"CLONEFS_DEST=/data/dest.img", "PATH=/usr/bin:/bin"};
  OnCompleteCommand c(o);
  c.Start();
  EXPECT_EQ(c.WaitForTesting(), 0);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  const std::string l = Log();
  EXPECT_NE(l.find("]: cwd=/\n"), std::string::npos) << l;
  EXPECT_NE(l.find("]: var=/data/dest.img\n"), std::string::npos) << l;
  EXPECT_NE(l.find("]: SigBlk:\\x090000000000000000\n"), std::string::npos) << l;
  EXPECT_NE(l.find("]: read=1\n"), std::string::npos) << l;  // end of file at once
}

// The daemon does not wait for the command: destroying the runner (the
// daemon exiting) leaves it running, and its later output neither blocks it
// nor kills it.
TEST_F(OnCompleteTest, KeepsRunningAfterTheDaemonStops) {
  const std::string go = dir_ + "/go", done = dir_ + "/done";
  OnCompleteOptions o;
  o.command = "while [ ! -e " + go + " ]; do sleep 0.01; done; i=0; "
              "while [ $i -lt 20000 ]; do echo late-output-$i; i=$((i+1)); done; touch " + done;
  o.env = {"PATH=/usr/bin:/bin"};
  {
    OnCompleteCommand c(o);
    c.Start();
  }
  EXPECT_NE(Log().find("is still running as the daemon stops; it keeps running"),
            std::string::npos)
      << Log();
  std::ofstream(go).put('x');
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!std::filesystem::exists(done) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(std::filesystem::exists(done)) << Log();
  EXPECT_EQ(Log().find("]: late-output"), std::string::npos) << Log();
}

}  // namespace
}  // namespace clonefs::fuse
