// Mount tier, real `clonefs`: the metadata directory is the clone's home.
//
// Logs are never silently lost: the detached daemon logs to
// METADATA/clonefs.log (whether or not a syslog socket exists), including
// what it logged before that directory existed and refusals made after it
// started; the mount message and `clonefs status` name the file.
//
// `clonefs unmount` waits for the final commit whoever runs it: root
// unmounting another user's clone, another XDG_RUNTIME_DIR, a mount point
// path over 255 bytes, and a /tmp/clonefs-UID squatted by another user.
//
// The other user's clones run in a private mount namespace (unshare -m)
// whose /dev/fuse is a bind-mounted node that user may open: libfuse opens
// /dev/fuse itself before it falls back to fusermount3, and this machine's
// /dev/fuse is 0600. Nothing outside the namespace changes; when the
// namespace's last process ends, its mounts go with it.
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "control/status_report.h"
#include "fuse/mount_table.h"
#include "fuse/runtime_info.h"
#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uid_t kUser = 65534;  // nobody

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool Contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

class DaemonHomeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, 4ull << 20, 21);
    src_sha_ = Sha256(c_.src);
  }
  void TearDown() override {
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }

  // Hands the clone's directory (and everything in it) to kUser.
  void GiveToUser() {
    ASSERT_TRUE(ShOk("chown -R " + std::to_string(kUser) + ":" + std::to_string(kUser) + " " +
                     Quote(c_.dir().path())));
    ASSERT_EQ(chmod(c_.dir().path().c_str(), 0755), 0);
  }

  // Runs `body` (sh) as root in a private mount namespace where kUser can
  // mount FUSE file systems. In `body`: $U runs a command as kUser, $B is
  // the clonefs binary, $MNT the mount point. With `private_tmp`, /tmp is a
  // fresh tmpfs there. Whatever is still mounted at $MNT is detached when
  // the script ends.
  RunResult InUserNamespace(const std::string& body, bool private_tmp = false) {
    const std::string node = ns_dir_ / "fuse";
    if (access(node.c_str(), F_OK) != 0) {
      chmod(ns_dir_.path().c_str(), 0700);
      EXPECT_EQ(mknod(node.c_str(), S_IFCHR | 0666, makedev(10, 229)), 0) << strerror(errno);
      EXPECT_EQ(chmod(node.c_str(), 0666), 0);
    }
    const std::string script = ns_dir_ / "run.sh";
    std::ofstream(script) << "set -u\n"
                          << "mount --bind " << Quote(node) << " /dev/fuse || exit 90\n"
                          << "B=" << Quote(ClonefsBinary()) << "\n"
                          // The binary may itself live under /tmp (a build
                          // tree there): keep a copy outside before hiding it.
                          << (private_tmp ? "cp \"$B\" " + Quote(c_.dir() / "clonefs") + " && B=" +
                                                Quote(c_.dir() / "clonefs") +
                                                " && mount -t tmpfs tmpfs /tmp || exit 91\n"
                                          : std::string())
                          << "U='setpriv --reuid=" << kUser << " --regid=" << kUser
                          << " --clear-groups'\n"
                          << "MNT=" << Quote(c_.mnt) << "\n"
                          << "trap '$B unmount --force \"$MNT\" >/dev/null 2>&1' EXIT\n"
                          << body << "\n";
    return Sh("unshare -m --propagation private sh " + Quote(script));
  }

  // Shell: prints "daemon-state:[S]" for the pid in $PID: empty once the
  // process is gone, Z while it is an unreaped zombie (it has exited).
  static std::string DaemonState() {
    return "echo \"daemon-state:[$(sed -n 's/^[0-9]* (.*) \\(.\\) .*/\\1/p' /proc/$PID/stat "
           "2>/dev/null)]\"\n";
  }
  static bool DaemonExited(const std::string& out) {
    return Contains(out, "daemon-state:[]") || Contains(out, "daemon-state:[Z]");
  }

  std::string Mount(const std::string& extra) { return MountWith(ClonefsBinary(), extra); }
  // The same, inside an InUserNamespace script (its $B: /tmp may be hidden).
  std::string ScriptMount() { return MountWith("$B", ""); }
  std::string MountWith(const std::string& binary, const std::string& extra) {
    return binary + " mount --no-hydration " + extra + " " + Quote(c_.src) + " " +
           Quote(c_.dst) + " " + Quote(c_.mnt);
  }

  CloneDir c_;
  TempDir ns_dir_;
  std::string src_sha_;
};

// The default log: METADATA/clonefs.log, named by the mount message and by
// status; it holds what was logged before the directory existed, refusals
// made while the daemon runs, and the end.
TEST_F(DaemonHomeTest, TheDaemonLogsToTheMetadataDirectoryAndStatusNamesIt) {
  const std::string log = c_.metadata + "/clonefs.log";
  SCOPED_TRACE(access("/dev/log", F_OK) == 0 ? "a syslog socket exists" : "no syslog socket");
  RunResult m = Sh(Mount(""));  // no --log-file
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Contains(m.out, "; log: " + log + ")")) << m.out;
  // Logged inside Metadata::Open, before the log file could be opened.
  EXPECT_TRUE(Contains(Slurp(log), "formatted clonefs metadata " + c_.metadata)) << Slurp(log);
  EXPECT_TRUE(Contains(Slurp(log), "mounted " + c_.exposed())) << Slurp(log);

  RunResult st = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  ASSERT_EQ(st.code, 0) << st.out;
  EXPECT_TRUE(Contains(st.out, "Log:          " + log + "\n")) << st.out;
  auto rep = QueryStatus(c_.mnt);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->info.log_file, log);

  // Refusals after the daemon started are in the log.
  // 1. A second mount of the same clone elsewhere.
  const std::string mnt2 = c_.dir() / "mnt2";
  ASSERT_EQ(mkdir(mnt2.c_str(), 0755), 0);
  RunResult m2 = Sh(ClonefsBinary() + " mount " + Quote(c_.src) + " " + Quote(c_.dst) + " " +
                    Quote(mnt2));
  EXPECT_NE(m2.code, 0) << m2.out;
  EXPECT_TRUE(Contains(Slurp(log), "is in use by another clonefs daemon")) << Slurp(log);
  // 2. SIGTERM while the file is open.
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  {
    std::ifstream busy(c_.exposed());
    ASSERT_TRUE(busy.good());
    ASSERT_EQ(kill(pid, SIGTERM), 0);
    for (int i = 0; i < 200 && !Contains(Slurp(log), "ignored"); i++) usleep(10000);
  }
  EXPECT_TRUE(Contains(Slurp(log), "ignored: " + c_.exposed() + " is in use")) << Slurp(log);
  RunResult u = c_.Unmount();
  EXPECT_EQ(u.code, 0) << u.out;
  EXPECT_TRUE(Contains(Slurp(log), "final commit done")) << Slurp(log);
  // The side files never make the directory look foreign: it mounts again.
  RunResult again = Sh(Mount(""));
  EXPECT_EQ(again.code, 0) << again.out;
  EXPECT_EQ(c_.Unmount().code, 0);
}

// A start that fails after the clone exists (here: libfuse refuses an
// option) leaves its reason in the clone's log, not only on the terminal.
TEST_F(DaemonHomeTest, AFailedStartOfAnExistingCloneIsInItsLog) {
  const std::string log = c_.metadata + "/clonefs.log";
  ASSERT_EQ(Sh(Mount("")).code, 0);
  ASSERT_EQ(c_.Unmount().code, 0);
  RunResult m = Sh(Mount("-o clonefs_no_such_option"));
  EXPECT_NE(m.code, 0) << m.out;
  EXPECT_FALSE(c_.IsMounted());
  const std::string text = Slurp(log);
  EXPECT_TRUE(Contains(text, "clonefs: error: cannot create the FUSE session: unknown option(s): '-o clonefs_no_such_option'"))
      << text;
}

// --log-file keeps overriding the location.
TEST_F(DaemonHomeTest, LogFileOptionOverridesTheLocation) {
  RunResult m = c_.Mount("--no-hydration");  // the harness passes --log-file
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Contains(m.out, "log: " + c_.log + ")")) << m.out;
  RunResult st = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  EXPECT_TRUE(Contains(st.out, "Log:          " + c_.log + "\n")) << st.out;
  EXPECT_FALSE(std::filesystem::exists(c_.metadata + "/clonefs.log"));
  EXPECT_TRUE(Contains(c_.LogText(), "formatted clonefs metadata")) << c_.LogText();
  EXPECT_EQ(c_.Unmount().code, 0);
}

// The background daemon keeps none of its caller's descriptors. It used to
// keep every one not marked close-on-exec: a script holding a lock on fd 9
// (`exec 9>LOCK; flock -n 9 || exit`) that mounted a clone found LOCK still
// locked, by the daemon, until the clone was unmounted; the --on-complete
// command inherited it too.
TEST_F(DaemonHomeTest, TheDaemonKeepsNoneOfItsCallersDescriptors) {
  const std::string lock = c_.dir() / "script.lock";
  RunResult m =
      Sh("exec 9>" + Quote(lock) + " && flock -n 9 && " + ClonefsBinary() +
         " mount --no-hydration " + Quote(c_.src) + " " + Quote(c_.dst) + " " + Quote(c_.mnt));
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(ShOk("flock -n " + Quote(lock) + " true"))
      << "the daemon holds its caller's lock on " << lock;
  EXPECT_EQ(c_.Unmount().code, 0);
}

// Root unmounts a clone another user mounted: it finds the daemon through
// the mount's metadata directory and waits for its final commit.
TEST_F(DaemonHomeTest, RootUnmountingAnotherUsersCloneWaitsForTheFinalCommit) {
  GiveToUser();
  RunResult r = InUserNamespace(
      "$U env -u XDG_RUNTIME_DIR " + ScriptMount() + " || exit 1\n"
      "PID=$(sed -n 's/^pid=//p' " + Quote(c_.metadata + "/daemon.info") + ")\n"
      "$U dd if=/dev/zero of=\"$MNT/dst.img\" bs=64K seek=5 count=1 conv=notrunc status=none\n"
      "$B status \"$MNT\" | head -1\n"
      "$B unmount \"$MNT\"; echo unmount-rc=$?\n" + DaemonState());
  EXPECT_NE(r.code, 90) << "cannot bind the FUSE device node: " << r.out;
  EXPECT_TRUE(Contains(r.out, "Mountpoint:   " + c_.mnt)) << r.out;
  EXPECT_TRUE(Contains(r.out, "final commit done")) << r.out;
  EXPECT_TRUE(Contains(r.out, "unmount-rc=0")) << r.out;
  EXPECT_TRUE(DaemonExited(r.out)) << r.out;
  EXPECT_EQ(HydratedRegions(c_.metadata), 1);
}

// The user mounts with one XDG_RUNTIME_DIR and unmounts with another.
TEST_F(DaemonHomeTest, AnotherRuntimeDirectoryStillFindsTheDaemon) {
  const std::string a = c_.dir() / "xdg-a", b = c_.dir() / "xdg-b";
  ASSERT_EQ(mkdir(a.c_str(), 0700), 0);
  ASSERT_EQ(mkdir(b.c_str(), 0700), 0);
  GiveToUser();
  RunResult r = InUserNamespace(
      "$U env XDG_RUNTIME_DIR=" + Quote(a) + " " + ScriptMount() + " || exit 1\n"
      "PID=$(sed -n 's/^pid=//p' " + Quote(c_.metadata + "/daemon.info") + ")\n"
      "$U env XDG_RUNTIME_DIR=" + Quote(b) + " $B status \"$MNT\" | head -1\n"
      "$U dd if=/dev/zero of=\"$MNT/dst.img\" bs=64K seek=2 count=1 conv=notrunc status=none\n"
      "$U env XDG_RUNTIME_DIR=" + Quote(b) + " $B unmount \"$MNT\"; echo unmount-rc=$?\n" +
      DaemonState());
  EXPECT_TRUE(Contains(r.out, "Mountpoint:   " + c_.mnt)) << r.out;
  EXPECT_TRUE(Contains(r.out, "final commit done")) << r.out;
  EXPECT_TRUE(Contains(r.out, "unmount-rc=0")) << r.out;
  EXPECT_TRUE(DaemonExited(r.out)) << r.out;
  EXPECT_EQ(HydratedRegions(c_.metadata), 1);
}

// Another user created /tmp/clonefs-UID first: the user's mount, status and
// unmount do not depend on it.
TEST_F(DaemonHomeTest, ASquattedTmpDirectoryBlocksNothing) {
  GiveToUser();
  const std::string squat = "/tmp/clonefs-" + std::to_string(kUser);
  RunResult r = InUserNamespace(
      "mkdir -m 0700 " + squat + " && echo squatted\n"
      "$U env -u XDG_RUNTIME_DIR " + ScriptMount() + " || exit 1\n"
      "PID=$(sed -n 's/^pid=//p' " + Quote(c_.metadata + "/daemon.info") + ")\n"
      "$U env -u XDG_RUNTIME_DIR $B status \"$MNT\" | head -1\n"
      "$U env -u XDG_RUNTIME_DIR $B unmount \"$MNT\"; echo unmount-rc=$?\n" + DaemonState(),
      /*private_tmp=*/true);
  EXPECT_TRUE(Contains(r.out, "squatted")) << r.out;
  EXPECT_TRUE(Contains(r.out, "Mountpoint:   " + c_.mnt)) << r.out;
  EXPECT_TRUE(Contains(r.out, "final commit done")) << r.out;
  EXPECT_TRUE(Contains(r.out, "unmount-rc=0")) << r.out;
  EXPECT_TRUE(DaemonExited(r.out)) << r.out;
}

// A mount point (and a metadata directory) whose path is longer than
// NAME_MAX, and a control socket path longer than sockaddr_un holds.
TEST_F(DaemonHomeTest, LongPathsStillFindTheDaemon) {
  std::string deep = c_.dir().path();
  for (int i = 0; i < 5; i++) {
    deep += "/" + std::string(60, static_cast<char>('k' + i));
    ASSERT_EQ(mkdir(deep.c_str(), 0755), 0);
  }
  const std::string mnt = deep + "/mnt", md = deep + "/md";
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  ASSERT_GT(mnt.size(), 255u);
  struct Detach {
    std::string mnt;
    ~Detach() {
      auto e = fuse::FindMount(mnt);
      if (e.ok() && e->has_value()) Sh(ClonefsBinary() + " unmount --force " + Quote(mnt));
    }
  } detach{mnt};
  RunResult m = Sh(ClonefsBinary() + " mount --no-hydration --metadata " + Quote(md) + " " +
                   Quote(c_.src) + " " + Quote(c_.dst) + " " + Quote(mnt));
  ASSERT_EQ(m.code, 0) << m.out;
  auto info = fuse::FindDaemonInfo(mnt);
  EXPECT_TRUE(info.ok()) << info.status().ToString();
  const pid_t pid = info.ok() ? info->pid : 0;
  RunResult st = Sh(ClonefsBinary() + " status " + Quote(mnt));
  EXPECT_EQ(st.code, 0) << st.out;
  EXPECT_TRUE(Contains(st.out, "Log:          " + md + "/clonefs.log")) << st.out;
  ASSERT_TRUE(ShOk("dd if=/dev/zero of=" + Quote(mnt + "/dst.img") +
                   " bs=64K seek=7 count=1 conv=notrunc status=none"));
  RunResult u = Sh(ClonefsBinary() + " unmount " + Quote(mnt));
  EXPECT_EQ(u.code, 0) << u.out;
  EXPECT_TRUE(Contains(u.out, "final commit done")) << u.out;
  if (pid > 0) {
    EXPECT_FALSE(fuse::IsClonefsProcess(pid)) << "unmount returned before the daemon exited";
  }
  EXPECT_EQ(HydratedRegions(md), 1);
}

}  // namespace
}  // namespace clonefs::testing
