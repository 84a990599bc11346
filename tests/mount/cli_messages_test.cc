// What the real `clonefs` command says in the awkward cases: a stale mount,
// a watch whose clone goes away, a mount over a non-empty directory, another
// user's clone, a modified source's fingerprints. Each message says what
// happened and what to do, and never passes raw tool output through.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "mount/harness.h"

namespace clonefs::testing {
namespace {

class CliMessagesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, 8 << 20, 3);
  }
  std::string Clonefs() const { return ClonefsBinary(); }
  CloneDir c_;
};

// mount(8)'s spelling, and other near misses, get a suggestion; exit 2.
TEST_F(CliMessagesTest, AMistypedCommandGetsASuggestion) {
  RunResult u = Sh(Clonefs() + " umount " + Quote(c_.mnt));
  EXPECT_EQ(u.code, 2) << u.out;
  EXPECT_NE(u.out.find("unknown command 'umount'; did you mean 'unmount'?"), std::string::npos)
      << u.out;
  RunResult far = Sh(Clonefs() + " hydrate");
  EXPECT_EQ(far.code, 2) << far.out;
  EXPECT_NE(far.out.find("unknown command 'hydrate'; see: clonefs --help"), std::string::npos)
      << far.out;
}

TEST_F(CliMessagesTest, StatusOfAStaleMountSaysHowToResumeOrRemoveIt) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(ShOk("kill -9 " + std::to_string(pid)));
  for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) usleep(20000);
  RunResult st = Sh(Clonefs() + " status " + Quote(c_.mnt));
  EXPECT_EQ(st.code, 1) << st.out;
  EXPECT_NE(st.out.find("daemon serving it died"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("clonefs mount SOURCE DEST " + c_.mnt), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("clonefs unmount " + c_.mnt), std::string::npos) << st.out;
  EXPECT_EQ(st.out.find("fusermount3"), std::string::npos) << st.out;
  RunResult u = c_.Unmount();
  EXPECT_EQ(u.code, 0) << u.out;
}

// A mount point named through a symbolic link with a trailing slash, as
// shell completion writes it (`/mnt/vm/`, vm -> the mount point): realpath
// cannot resolve it once the daemon died, yet status and unmount still find
// the stale clonefs mount rather than saying nothing is mounted there.
TEST_F(CliMessagesTest, AStaleMountNamedThroughALinkWithATrailingSlashIsFound) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string link = c_.dir() / "link";
  ASSERT_EQ(symlink(c_.mnt.c_str(), link.c_str()), 0) << strerror(errno);
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(ShOk("kill -9 " + std::to_string(pid)));
  for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) usleep(20000);
  RunResult st = Sh(Clonefs() + " status " + Quote(link + "/"));
  EXPECT_EQ(st.code, 1) << st.out;
  EXPECT_NE(st.out.find("daemon serving it died"), std::string::npos) << st.out;
  EXPECT_EQ(st.out.find("nothing is mounted there"), std::string::npos) << st.out;
  RunResult u = Sh(Clonefs() + " unmount " + Quote(link + "/"));
  EXPECT_EQ(u.code, 0) << u.out;
  EXPECT_NE(u.out.find("its daemon had died"), std::string::npos) << u.out;
  EXPECT_FALSE(c_.IsMounted());
}

// Mounting again over a dead daemon's mount while a loop device still holds
// its file: the loop device stays with the dead mount (every request fails),
// so the mount says which loop device that is and what to do. With nothing
// holding the file, the stale mount is simply unmounted.
TEST_F(CliMessagesTest, MountingOverAStaleMountNamesTheLoopDevicesLeftOnIt) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string loop = c_.AttachLoop();
  ASSERT_FALSE(loop.empty());
  int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(ShOk("kill -9 " + std::to_string(pid)));
  for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) usleep(20000);
  RunResult again = c_.Mount();
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_NE(again.out.find("detached it (umount -l)"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("loop device " + loop +
                           " still uses the dead mount's file and is not served by the new "
                           "mount"),
            std::string::npos)
      << again.out;
  EXPECT_NE(again.out.find("(losetup -d " + loop + ")"), std::string::npos) << again.out;
  // What the note says: the loop device fails, the new mount serves.
  const int lfd = open(loop.c_str(), O_RDONLY);
  ASSERT_GE(lfd, 0) << strerror(errno);
  char b[4096];
  EXPECT_EQ(pread(lfd, b, sizeof(b), 0), -1);
  close(lfd);
  const int ffd = open(c_.exposed().c_str(), O_RDONLY);
  ASSERT_GE(ffd, 0) << strerror(errno);
  EXPECT_EQ(pread(ffd, b, sizeof(b), 0), static_cast<ssize_t>(sizeof(b)));
  close(ffd);
  c_.DetachLoop(loop);

  pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(ShOk("kill -9 " + std::to_string(pid)));
  for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) usleep(20000);
  RunResult idle = c_.Mount();
  ASSERT_EQ(idle.code, 0) << idle.out;
  EXPECT_NE(idle.out.find("was a stale mount of a clonefs daemon that died; unmounted it"),
            std::string::npos)
      << idle.out;
  EXPECT_EQ(idle.out.find("loop device"), std::string::npos) << idle.out;
  EXPECT_EQ(c_.Unmount().code, 0);
}

// Mounting over a clonefs mount whose daemon is alive but does not answer
// (stopped here; stuck alike) is refused at once, as over any live mount:
// whether that daemon lives is read from its record, not asked through its
// mount (a statfs there would wait for the daemon, holding the command).
TEST_F(CliMessagesTest, MountingOverAMountWhoseDaemonDoesNotAnswerIsRefusedAtOnce) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  usleep(1500000);  // past the kernel's attribute cache (1 s)
  const std::string other = c_.dir() / "other.img";
  RunResult again = Sh("timeout -s KILL 10 " + Clonefs() + " mount --no-hydration " +
                       Quote(c_.src) + " " + Quote(other) + " " + Quote(c_.mnt));
  // Named with a trailing slash, as shell completion writes it, neither
  // mount nor unmount may stat the mount point either.
  RunResult slash = Sh("timeout -s KILL 10 " + Clonefs() + " mount --no-hydration " +
                       Quote(c_.src) + " " + Quote(other) + " " + Quote(c_.mnt + "/"));
  RunResult unmount =
      Sh("timeout -s KILL 10 " + Clonefs() + " unmount --timeout 1 " + Quote(c_.mnt + "/"));
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_NE(again.out.find("is already a mount point (fuse.clonefs"), std::string::npos)
      << again.out;
  EXPECT_EQ(slash.code, 1) << slash.out;
  EXPECT_NE(slash.out.find("is already a mount point (fuse.clonefs"), std::string::npos)
      << slash.out;
  // The mount is gone; the stopped daemon could not exit within 1 s.
  EXPECT_EQ(unmount.code, 1) << unmount.out;
  EXPECT_NE(unmount.out.find("has not exited after 1 s"), std::string::npos) << unmount.out;
  EXPECT_NE(again.out.find("clonefs unmount " + c_.mnt), std::string::npos) << again.out;
  for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) usleep(100000);
  EXPECT_NE(kill(pid, 0), 0) << "the daemon did not exit once continued";
  EXPECT_NE(access(other.c_str(), F_OK), 0) << "the refused mount left its dest behind";
}

TEST_F(CliMessagesTest, AWatchSaysWhenItsCloneIsUnmounted) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  // Unmounted once the watch has shown its first line (it has had an answer).
  const std::string out = c_.dir() / "watch.out";
  RunResult w = Sh(Clonefs() + " status --dm --watch 0.1 " + Quote(c_.mnt) + " >" + Quote(out) +
                   " 2>&1 & w=$!; for i in $(seq 300); do [ -s " + Quote(out) +
                   " ] && break; sleep 0.1; done; " + Clonefs() + " unmount " + Quote(c_.mnt) +
                   " >/dev/null; wait $w; rc=$?; cat " + Quote(out) + "; exit $rc");
  EXPECT_EQ(w.code, 1) << w.out;
  EXPECT_NE(w.out.find("the clone stopped answering"), std::string::npos) << w.out;
  EXPECT_EQ(w.out.find("connect "), std::string::npos) << w.out;
  // Once it is gone, status says what to do.
  RunResult st = Sh(Clonefs() + " status --watch 1 " + Quote(c_.mnt));
  EXPECT_EQ(st.code, 1) << st.out;
  EXPECT_NE(st.out.find("nothing is mounted there"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("clonefs info DEST"), std::string::npos) << st.out;
}

TEST_F(CliMessagesTest, BusyMountOfADeadDaemonIsNotSaidToKeepServing) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const int fd = open(c_.exposed().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_TRUE(ShOk("kill -9 " + std::to_string(pid)));
  for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) usleep(20000);
  RunResult busy = c_.Unmount();
  close(fd);
  EXPECT_EQ(busy.code, 3) << busy.out;
  EXPECT_NE(busy.out.find("Its daemon has died"), std::string::npos) << busy.out;
  EXPECT_EQ(busy.out.find("keeps serving"), std::string::npos) << busy.out;
  RunResult u = c_.Unmount();
  EXPECT_EQ(u.code, 0) << u.out;
}

// A clone detached with `unmount --force` keeps serving the programs that
// still have its file open, and holds its dest and metadata until they close
// it. Mounting it again meanwhile was refused with "unmount that clone
// first (see: mount -t fuse.clonefs)", where it is no longer listed and from
// where it cannot be unmounted. The refusal now says what became of it and
// when it lets go; once the file is closed the clone mounts again.
TEST_F(CliMessagesTest, MountingACloneStillServingAfterAForcedUnmountSaysWhy) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  const int fd = open(c_.exposed().c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  RunResult u = c_.Unmount("--force");
  ASSERT_EQ(u.code, 0) << u.out;
  RunResult again = c_.Mount("--no-hydration");
  EXPECT_EQ(again.code, 1) << again.out;
  EXPECT_NE(again.out.find("is in use by another clonefs daemon (pid " + std::to_string(pid)),
            std::string::npos)
      << again.out;
  EXPECT_NE(again.out.find("was detached (clonefs unmount --force) and still serves the "
                           "programs that have its file open: it makes its final commit and "
                           "exits once they close it"),
            std::string::npos)
      << again.out;
  close(fd);
  for (int i = 0; i < 500 && kill(pid, 0) == 0; ++i) usleep(20000);
  EXPECT_NE(kill(pid, 0), 0) << "the detached daemon did not exit once its file was closed";
  again = c_.Mount("--no-hydration");
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_EQ(c_.Unmount().code, 0);
}

TEST_F(CliMessagesTest, MountingOverANonEmptyDirectoryNotesIt) {
  ASSERT_TRUE(static_cast<bool>(std::ofstream(c_.mnt + "/old-file")));
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_NE(m.out.find("note: mount point " + c_.mnt +
                       " is not empty (1 entry: 'old-file'); "
                       "they are hidden while the clone is mounted"),
            std::string::npos)
      << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_EQ(access((c_.mnt + "/old-file").c_str(), F_OK), 0);
}

TEST_F(CliMessagesTest, AnotherUserCannotUnmountAndIsToldWhy) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  RunResult u = Sh("setpriv --reuid=65534 --regid=65534 --clear-groups " + Clonefs() + " unmount " +
                   Quote(c_.mnt));
  EXPECT_EQ(u.code, 1) << u.out;
  EXPECT_NE(u.out.find(" is mounted by uid 0; only that user or root can unmount it"),
            std::string::npos)
      << u.out;
  EXPECT_EQ(u.out.find("mtab"), std::string::npos) << u.out;
  EXPECT_TRUE(c_.IsMounted());
  EXPECT_EQ(c_.Unmount().code, 0);
}

TEST_F(CliMessagesTest, AModifiedSourcesFingerprintsAreShownAsCheckShowsThem) {
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  ASSERT_TRUE(
      ShOk("printf changed! | dd of=" + Quote(c_.src) + " bs=1 seek=100 conv=notrunc status=none"));
  const std::regex fp(
      "fingerprint differs: [^(]*\\(metadata has ([0-9a-f]{16}), file has ([0-9a-f]{16})\\)");
  RunResult refused = c_.Mount();
  EXPECT_EQ(refused.code, 1) << refused.out;
  std::smatch a, b;
  ASSERT_TRUE(std::regex_search(refused.out, a, fp)) << refused.out;
  RunResult check = Sh(Clonefs() + " check " + Quote(c_.dst));
  ASSERT_TRUE(std::regex_search(check.out, b, fp)) << check.out;
  EXPECT_EQ(a[1], b[1]);
  EXPECT_EQ(a[2], b[2]);
  // The clone's directory is random (mkdtemp) and may itself contain "0x".
  const std::string dir = std::filesystem::path(c_.src).parent_path().string();
  std::string without_paths = refused.out;
  for (size_t at; (at = without_paths.find(dir)) != std::string::npos;)
    without_paths.erase(at, dir.size());
  EXPECT_EQ(without_paths.find("0x"), std::string::npos) << refused.out;
}

}  // namespace
}  // namespace clonefs::testing
