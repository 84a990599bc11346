// Mount tier: the control commands against the real `clonefs` daemon through
// the kernel: status across a remount, messages, wait, --on-complete running
// exactly once, info/check around a mount. Needs root and /dev/fuse (skips
// otherwise; fails under CI=true).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <thread>

#include "control/commands.h"
#include "control/discovery.h"
#include "control/notify_socket.h"
#include "control/status_report.h"
#include "mount/mount_test_util.h"

namespace clonefs::control {
namespace {

using clonefs::testing::TempDir;

struct Out {
  int rc;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

class ControlMountTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    ASSERT_FALSE(dir_.path().empty());
    src_ = dir_ / "src.img";
    dest_ = dir_ / "dest.img";
    mnt_ = dir_ / "mnt";
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    std::ofstream f(src_, std::ios::binary);
    std::mt19937_64 rng(42);
    std::string buf(kImage, '\0');
    for (auto& c : buf) c = static_cast<char>(rng());
    f.write(buf.data(), static_cast<std::streamsize>(buf.size()));
  }
  void TearDown() override {
    if (mounted_) {
      Clonefs({"unmount", mnt_});
      if (mounted_) (void)std::system(("fusermount3 -u -z " + mnt_ + " 2>/dev/null").c_str());
    }
  }

  // Runs the clonefs binary; arguments must not need shell quoting except
  // the ones we quote here.
  Out Clonefs(const std::vector<std::string>& args) {
    std::string cmd = CLONEFS_BINARY;
    for (const std::string& a : args) cmd += " '" + a + "'";
    std::string o = dir_ / "cmd.out", e = dir_ / "cmd.err";
    int st = std::system((cmd + " >" + o + " 2>" + e + " </dev/null").c_str());
    Out r{WIFEXITED(st) ? WEXITSTATUS(st) : 200, Slurp(o), Slurp(e)};
    if (!args.empty() && args[0] == "mount" && r.rc == 0) mounted_ = true;
    if (!args.empty() && args[0] == "unmount" && r.rc == 0) mounted_ = false;
    return r;
  }

  void Mount(std::vector<std::string> extra) {
    std::vector<std::string> a = {"mount"};
    a.insert(a.end(), extra.begin(), extra.end());
    a.insert(a.end(), {src_, dest_, mnt_});
    Out r = Clonefs(a);
    ASSERT_EQ(r.rc, 0) << r.out << r.err;
  }

  StatusReport Status() {
    Out r = Clonefs({"status", mnt_, "--json"});
    EXPECT_EQ(r.rc, 0) << r.err;
    Result<StatusReport> rep = ReportFromJsonText(r.out);
    EXPECT_TRUE(rep.ok()) << rep.status().ToString() << "\n" << r.out;
    return rep.ok() ? *rep : StatusReport{};
  }

  // Writes whole regions [first, first+n) through the mounted file.
  void WriteRegions(uint64_t first, uint64_t n) {
    int fd = open((mnt_ + "/dest.img").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0) << strerror(errno);
    std::string buf(kRegion * n, 'w');
    ASSERT_EQ(pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(first * kRegion)),
              static_cast<ssize_t>(buf.size()));
    ASSERT_EQ(fsync(fd), 0);
    close(fd);
  }

  static constexpr uint64_t kRegion = 64 * 1024;
  static constexpr uint64_t kImage = 128 * kRegion;  // 8 MiB

  TempDir dir_;
  std::string src_, dest_, mnt_;
  bool mounted_ = false;
};

TEST_F(ControlMountTest, StatusAcrossRemountAndMessages) {
  Mount({"--no-hydration"});
  WriteRegions(10, 3);
  StatusReport s = Status();
  EXPECT_TRUE(s.live);
  EXPECT_EQ(s.info.mountpoint, mnt_);
  EXPECT_EQ(s.nr_regions, 128u);
  EXPECT_EQ(s.hydrated_regions, 3u);
  EXPECT_EQ(s.committed_hydrated_regions, 3u);
  EXPECT_FALSE(s.knobs.hydration_enabled);
  EXPECT_EQ(s.State(), "paused");
  Out dm = Clonefs({"status", mnt_, "--dm"});
  EXPECT_EQ(dm.out.substr(0, 2), "8 ");
  EXPECT_NE(dm.out.find(" 128 3/128 0 1 no_hydration 4 hydration_threshold "), std::string::npos)
      << dm.out;

  // Locked while mounted: info and check say where.
  Out info = Clonefs({"info", dest_});
  EXPECT_EQ(info.rc, kInfoMounted);
  EXPECT_NE(info.err.find("clone is mounted at " + mnt_), std::string::npos) << info.err;
  EXPECT_EQ(Clonefs({"check", dest_}).rc, kCheckLocked);

  ASSERT_EQ(Clonefs({"unmount", mnt_}).rc, 0);
  // The socket is gone with the daemon.
  std::string sock = ControlSocketPath(dest_ + ".clonefs");
  EXPECT_NE(access(sock.c_str(), F_OK), 0) << sock;
  Out st = Clonefs({"status", mnt_});
  EXPECT_EQ(st.rc, kExitFailure);
  EXPECT_NE(st.err.find("is not a clonefs mount"), std::string::npos) << st.err;
  Out off = Clonefs({"info", dest_, "--json"});
  ASSERT_EQ(off.rc, 0) << off.err;
  Result<StatusReport> o = ReportFromJsonText(off.out);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->hydrated_regions, 3u);
  EXPECT_EQ(Clonefs({"check", dest_}).rc, kCheckClean);

  // Remount: the committed regions are still hydrated.
  Mount({"--no-hydration"});
  s = Status();
  EXPECT_EQ(s.hydrated_regions, 3u);
  EXPECT_EQ(s.committed_hydrated_regions, 3u);

  // Messages reach the engine; bad ones are refused with exit 2.
  EXPECT_EQ(Clonefs({"message", mnt_, "hydration_batch_size", "0"}).rc, kExitUsage);
  Out m = Clonefs({"message", mnt_, "HYDRATION_THRESHOLD", "5"});
  EXPECT_EQ(m.rc, 0) << m.err;
  EXPECT_EQ(Status().knobs.hydration_threshold, 5u);
  EXPECT_EQ(Clonefs({"message", mnt_, "rate", "1G"}).rc, 0);
  EXPECT_EQ(Status().knobs.rate_bytes_per_s, 1ull << 30);
  EXPECT_EQ(Clonefs({"message", mnt_, "enable_hydration"}).rc, 0);
  Out w = Clonefs({"wait", mnt_, "--timeout", "120"});
  EXPECT_EQ(w.rc, kWaitDone) << w.out << w.err;
  s = Status();
  EXPECT_TRUE(s.hydration_done);
  EXPECT_EQ(s.committed_hydrated_regions, 128u);
  ASSERT_EQ(Clonefs({"unmount", mnt_}).rc, 0);
  EXPECT_EQ(Clonefs({"check", dest_}).rc, kCheckClean);
}

TEST_F(ControlMountTest, OnCompleteRunsExactlyOnce) {
  std::string marker = dir_ / "complete.log";
  Mount({"--on-complete", "echo \"$CLONEFS_MOUNTPOINT\" >> " + marker});
  Out w = Clonefs({"wait", mnt_, "--timeout", "120", "--interval", "0.2"});
  ASSERT_EQ(w.rc, kWaitDone) << w.out << w.err;
  // Give the command time to run, and a second completion time to appear:
  // the committer runs every second.
  for (int i = 0; i < 50 && Slurp(marker).empty(); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  WriteRegions(0, 1);  // writes after completion do not complete it again
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(Slurp(marker), mnt_ + "\n");
  ASSERT_EQ(Clonefs({"unmount", mnt_}).rc, 0);
  EXPECT_EQ(Slurp(marker), mnt_ + "\n");
  // Mounting the complete clone again does not run it again.
  Mount({"--on-complete", "echo \"again $CLONEFS_MOUNTPOINT\" >> " + marker});
  EXPECT_TRUE(Status().hydration_done);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(Clonefs({"unmount", mnt_}).rc, 0);
  EXPECT_EQ(Slurp(marker), mnt_ + "\n");
}

TEST_F(ControlMountTest, WaitTimesOutThenCompletes) {
  Mount({"--rate", "256K"});
  Out w = Clonefs({"wait", mnt_, "--timeout", "0.5"});
  EXPECT_EQ(w.rc, kWaitTimedOut) << w.out << w.err;
  EXPECT_NE(w.err.find("timed out"), std::string::npos) << w.err;
  EXPECT_EQ(Clonefs({"message", mnt_, "rate", "0"}).rc, 0);
  w = Clonefs({"wait", mnt_, "--timeout", "120"});
  EXPECT_EQ(w.rc, kWaitDone) << w.out << w.err;
  EXPECT_NE(w.out.find("100.0%"), std::string::npos) << w.out;
  // wait on a directory that is not a clonefs mount.
  Out n = Clonefs({"wait", dir_.path()});
  EXPECT_EQ(n.rc, kWaitError);
  EXPECT_NE(n.err.find("is not a clonefs mount"), std::string::npos) << n.err;
}

TEST_F(ControlMountTest, OtherUserIsToldWhoControlsTheClone) {
  Mount({"--no-hydration"});
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  std::string o = dir_ / "nobody.out";
  std::string cmd = "setpriv --reuid=65534 --regid=65534 --clear-groups " +
                    std::string(CLONEFS_BINARY) + " status '" + mnt_ + "' >" + o + " 2>&1";
  int st = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), kExitFailure);
  EXPECT_NE(Slurp(o).find("is controlled by uid 0"), std::string::npos) << Slurp(o);
  cmd = "setpriv --reuid=65534 --regid=65534 --clear-groups " + std::string(CLONEFS_BINARY) +
        " message '" + mnt_ + "' enable_hydration >" + o + " 2>&1";
  st = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(st), kExitFailure);
  EXPECT_FALSE(Status().knobs.hydration_enabled);
}

TEST_F(ControlMountTest, WaitReportsDaemonGone) {
  Mount({"--no-hydration"});
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    std::string cmd = std::string(CLONEFS_BINARY) + " unmount '" + mnt_ + "' >/dev/null 2>&1";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
  });
  Out w = Clonefs({"wait", mnt_, "--timeout", "60", "--interval", "0.1"});
  t.join();
  mounted_ = false;
  EXPECT_EQ(w.rc, kWaitDaemonGone) << w.out << w.err;
}

// A daemon that is alive but does not answer (stopped here; stuck alike):
// finding its control socket must not wait for it. Asking the mount (a
// stat, or realpath behind a trailing slash) would hold the command in the
// kernel until the daemon answers -- for good under FUSE over io_uring,
// where even SIGKILL cannot end it -- instead of saying it does not answer.
TEST_F(ControlMountTest, FindingTheSocketOfAStoppedDaemonDoesNotWaitForIt) {
  Mount({"--no-hydration"});
  const pid_t pid = static_cast<pid_t>(Status().pid);
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  // Past the kernel's attribute cache (1 s), so a stat would reach the daemon.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  std::atomic<bool> done{false};
  std::optional<Result<std::string>> found;
  std::thread t([&] {
    found = ResolveControlSocket(mnt_ + "/");
    done = true;
  });
  for (int i = 0; i < 50 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(done) << "finding the socket waited for the stopped daemon";
  ASSERT_EQ(kill(pid, SIGCONT), 0);
  t.join();
  ASSERT_TRUE(found.has_value());
  ASSERT_TRUE(found->ok()) << found->status().ToString();
  EXPECT_EQ(**found, ControlSocketPath(dest_ + ".clonefs"));
}

// Run as systemd runs it (clonefs@.service: Type=notify, --foreground,
// stderr to the journal): READY=1 only once the file is usable, live
// STATUS=, STOPPING=1 at unmount, and log lines with journald priorities.
TEST_F(ControlMountTest, UnderSystemdTheDaemonReportsReadyStatusAndStopping) {
  clonefs::testing::NotifySocket sock;
  ASSERT_TRUE(sock.ok());
  const std::string err = dir_ / "journal";
  int efd = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(efd, 0);
  struct stat est;
  ASSERT_EQ(fstat(efd, &est), 0);
  const std::string stream = std::to_string(est.st_dev) + ":" + std::to_string(est.st_ino);
  const std::string file = mnt_ + "/dest.img";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(efd, STDERR_FILENO);
    setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);
    setenv("JOURNAL_STREAM", stream.c_str(), 1);
    execl(CLONEFS_BINARY, "clonefs", "mount", "--foreground", "--rate", "1M", src_.c_str(),
          dest_.c_str(), mnt_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(efd);
  mounted_ = true;
  std::string ready = sock.Next(30000);
  EXPECT_EQ(ready, "READY=1\nMAINPID=" + std::to_string(pid));
  struct stat st;
  EXPECT_EQ(stat(file.c_str(), &st), 0) << "READY=1 came before the file was usable";
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kImage);
  std::string status = sock.Next();
  EXPECT_EQ(status.rfind("STATUS=hydrating ", 0), 0u) << status;
  EXPECT_NE(status.find("% at "), std::string::npos) << status;

  Out u = Clonefs({"unmount", mnt_});
  EXPECT_EQ(u.rc, 0) << u.err;
  std::string last;
  for (std::string m = sock.Next(2000); !m.empty(); m = sock.Next(2000)) last = m;
  EXPECT_EQ(last, "STOPPING=1\nSTATUS=unmounted");
  int ws = 0;
  ASSERT_EQ(waitpid(pid, &ws, 0), pid);
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << ws;
  mounted_ = false;
  const std::string journal = Slurp(err);
  EXPECT_NE(journal.find("<6>clonefs: info: mounted "), std::string::npos) << journal;
  EXPECT_EQ(journal.find("\nclonefs: "), std::string::npos) << "a line without a priority:\n"
                                                             << journal;
}

// /etc/fstab and mount(8): `mount --fstab FILE MOUNTPOINT` runs
// mount.fuse3, which runs `clonefs SOURCE MOUNTPOINT -o OPTIONS` from the
// default PATH (mount(8) gives its helpers no PATH): the test links the
// binary under test into /usr/local/sbin for its duration. umount(8) of the
// mount makes the daemon do its final commit and exit.
TEST_F(ControlMountTest, FstabLineMountsAndUmountMakesTheFinalCommit) {
  const std::string link = "/usr/local/sbin/clonefs";
  char target[4096];
  ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  bool made_link = false;
  if (n < 0) {
    ASSERT_EQ(errno, ENOENT) << link << ": " << strerror(errno);
    ASSERT_EQ(symlink(CLONEFS_BINARY, link.c_str()), 0) << strerror(errno);
    made_link = true;
  } else {
    target[n] = '\0';
    ASSERT_EQ(std::string(target), CLONEFS_BINARY) << link << " is another clonefs";
  }
  struct LinkGuard {
    std::string path;
    bool remove;
    ~LinkGuard() {
      if (remove) unlink(path.c_str());
    }
  } guard{link, made_link};

  const std::string fstab = dir_ / "fstab";
  {
    std::ofstream f(fstab);
    f << "# a test fstab\n"
      << src_ << " " << mnt_ << " fuse.clonefs dest=" << dest_
      << ",rate=1M,hydration_threshold=4,nofail,_netdev,x-systemd.automount,nosuid 0 0\n";
  }
  const std::string out = dir_ / "mount.out";
  int st = std::system(("mount --fstab '" + fstab + "' '" + mnt_ + "' >'" + out + "' 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << Slurp(out);
  mounted_ = true;
  StatusReport r = Status();
  EXPECT_EQ(r.image_size, kImage);
  EXPECT_EQ(r.settings.rate_bytes_per_s, std::optional<uint64_t>(1 << 20));
  EXPECT_EQ(r.knobs.hydration_threshold, 4u);
  const uint64_t pid = r.pid;
  ASSERT_GT(pid, 0u);
  WriteRegions(120, 1);  // hydrated by the write; committed by the final commit

  st = std::system(("umount '" + mnt_ + "' >'" + out + "' 2>&1").c_str());
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << Slurp(out);
  mounted_ = false;
  bool gone = false;
  for (int i = 0; i < 600 && !gone; ++i) {
    gone = kill(static_cast<pid_t>(pid), 0) != 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(gone) << "the daemon did not exit after umount";
  Out info = Clonefs({"info", dest_, "--json"});
  ASSERT_EQ(info.rc, 0) << info.err;
  Result<StatusReport> off = ReportFromJsonText(info.out);
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_GE(off->committed_hydrated_regions, 1u);
  EXPECT_EQ(off->committed_hydrated_regions, off->hydrated_regions);
  EXPECT_NE(Slurp(dest_ + ".clonefs/clonefs.log").find("final commit done"), std::string::npos);
}

}  // namespace
}  // namespace clonefs::control
