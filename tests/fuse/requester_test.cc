#include "fuse/requester.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace clonefs::fuse {
namespace {

TEST(RequesterTest, KillPendingIsReadFromEitherMask) {
  EXPECT_FALSE(
      StatusShowsKillPending("Name:\tx\nSigPnd:\t0000000000000000\n"
                             "ShdPnd:\t0000000000000000\n"));
  // SIGUSR1 (bit 9) and SIGALRM: handled signals, not a kill.
  EXPECT_FALSE(StatusShowsKillPending("SigPnd:\t0000000000002200\nShdPnd:\t0000000000000000\n"));
  // SIGKILL is signal 9: bit 8, 0x100.
  EXPECT_TRUE(StatusShowsKillPending("SigPnd:\t0000000000000100\nShdPnd:\t0000000000000000\n"));
  EXPECT_TRUE(StatusShowsKillPending("SigPnd:\t0000000000000000\nShdPnd:\t0000000000004100"));
  EXPECT_FALSE(StatusShowsKillPending("SigQ:\t0/1\nSigBlk:\t0000000000000100\n"))
      << "other masks are not pending signals";
  EXPECT_FALSE(StatusShowsKillPending(""));
  EXPECT_FALSE(StatusShowsKillPending("SigPnd:\tzz\n"));
}

TEST(RequesterTest, ALiveThreadIsNotAbandonedAndAGoneOneIs) {
  EXPECT_FALSE(RequesterAbandoned(static_cast<pid_t>(syscall(SYS_gettid))));
  EXPECT_TRUE(RequesterAbandoned(0)) << "another pid namespace: cannot tell, so cancel";
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  EXPECT_TRUE(RequesterAbandoned(child)) << "exited";
}

TEST(RequesterTest, AKilledProcessIsAbandonedBeforeItIsReaped) {
  pid_t child = fork();
  if (child == 0) {
    for (;;) pause();
  }
  ASSERT_GT(child, 0);
  EXPECT_FALSE(RequesterAbandoned(child));
  ASSERT_EQ(kill(child, SIGCONT), 0);
  EXPECT_FALSE(RequesterAbandoned(child)) << "a signal it does not die of";
  ASSERT_EQ(kill(child, SIGKILL), 0);
  // SIGKILL pending, or already a zombie (not reaped yet): abandoned either way.
  EXPECT_TRUE(RequesterAbandoned(child));
  int st = 0;
  waitpid(child, &st, 0);
}

}  // namespace
}  // namespace clonefs::fuse
