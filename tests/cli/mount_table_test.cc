#include "fuse/mount_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "fuse/runtime_info.h"

namespace clonefs::fuse {
namespace {

TEST(MountTable, ParsesMountinfoWithEscapesAndOptionalFields) {
  const std::string text =
      "22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw\n"
      "90 22 0:50 / /mnt/my\\040clone rw,nosuid,nodev shared:7 master:1 - fuse.clonefs "
      "/var/lib/d.img.clonefs rw,user_id=0\n"
      "garbage line\n"
      "91 22 0:51 / /mnt/x rw - ext4 /dev/loop0 rw\n";
  auto m = ParseMountInfo(text);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[1].mountpoint, "/mnt/my clone");
  EXPECT_EQ(m[1].fstype, "fuse.clonefs");
  EXPECT_EQ(m[1].source, "/var/lib/d.img.clonefs");
  EXPECT_EQ(m[2].fstype, "ext4");
  EXPECT_EQ(m[2].source, "/dev/loop0");
}

TEST(MountTable, FindsRealMounts) {
  auto root = FindMount("/");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->has_value());
  auto none = FindMount("/definitely/not/a/mount/point");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(MountTable, NormalizePath) {
  EXPECT_EQ(NormalizePath("/a/./b//c/../d/"), "/a/b/d");
  EXPECT_EQ(NormalizePath("/../.."), "/");
  EXPECT_EQ(NormalizePath("/"), "/");
  EXPECT_EQ(NormalizePath("rel").front(), '/');
}

TEST(RuntimeInfo, TheRecordLivesInTheMetadataDirectoryAndRoundTrips) {
  EXPECT_EQ(DaemonRecordPath("/v/d.img.clonefs"), "/v/d.img.clonefs/daemon.info");
  char tmpl[] = "/tmp/clonefs-record-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  EXPECT_TRUE(ReadDaemonRecord(dir).status().IsNotFound());
  DaemonInfo in{1234,    "/mnt/odd\\name\nwith newline", "/s.img", "/d.img", dir,
                "d.img", dir + "/clonefs.log",           "",       ""};
  ASSERT_TRUE(WriteDaemonInfo(in).ok());
  auto out = ReadDaemonRecord(dir);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->pid, 1234);
  EXPECT_EQ(out->mountpoint, in.mountpoint);
  EXPECT_EQ(out->log_file, in.log_file);
  EXPECT_EQ(out->metadata_dir, dir);
  EXPECT_EQ(out->final_error, "");
  in.final_error = "I/O error: commit\nfailed";
  ASSERT_TRUE(WriteDaemonInfo(in).ok());
  out = ReadDaemonRecord(dir);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->final_error, in.final_error);
  EXPECT_EQ(out->profile_error, "");
  in.profile_error = "I/O error: cannot create /gone/p.tmp";
  ASSERT_TRUE(WriteDaemonInfo(in).ok());
  out = ReadDaemonRecord(dir);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->profile_error, in.profile_error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/daemon.info.tmp"));
  RemoveDaemonInfo(dir);
  EXPECT_TRUE(ReadDaemonRecord(dir).status().IsNotFound());
  std::filesystem::remove_all(dir);
}

// A dead daemon's record names its id; another program may have that id
// by now (a stale mount found long after). Waiting for it took the whole
// timeout: 5 s more for such a mount.
TEST(RuntimeInfo, ALiveProcessUnderADeadDaemonsIdIsNotWaitedFor) {
  const pid_t other = fork();
  if (other == 0) {
    pause();
    _exit(0);
  }
  ASSERT_GT(other, 0);
  EXPECT_TRUE(WaitUntilAllThreadsExited(other, 3000));
  kill(other, SIGKILL);
  waitpid(other, nullptr, 0);
}

// A killed daemon's leader is a zombie while its other threads still exit:
// that is waited for.
TEST(RuntimeInfo, AZombieLeaderIsWaitedForUntilItsLastThreadExited) {
#if defined(__SANITIZE_THREAD__)
  // The child starts a thread after fork, which TSan does not support in a
  // child of a multi-threaded process (its own threads count): it hangs.
  // The normal and ASan+UBSan tiers run this test.
  GTEST_SKIP() << "TSan cannot start threads in a forked child";
#endif
  char tmpl[] = "/tmp/clonefs-threads-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string mark = std::string(tmpl) + "/last-thread-done";
  const pid_t daemon = fork();
  if (daemon == 0) {
    std::thread([mark] {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      const int fd = open(mark.c_str(), O_CREAT | O_WRONLY, 0644);
      close(fd);
      syscall(SYS_exit, 0);  // this thread alone
    }).detach();
    syscall(SYS_exit, 0);  // the leader alone: a zombie until the thread ends
  }
  ASSERT_GT(daemon, 0);
  // As the mount finds it: the leader has exited (IsClonefsProcess false).
  const auto zombie = [&] {
    std::ifstream f("/proc/" + std::to_string(daemon) + "/stat");
    std::string stat;
    std::getline(f, stat);
    const size_t close = stat.rfind(')');
    return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
  };
  for (int i = 0; i < 10000 && !zombie(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(zombie());
  EXPECT_FALSE(IsClonefsProcess(daemon));
  EXPECT_TRUE(WaitUntilAllThreadsExited(daemon, 10000));
  EXPECT_TRUE(std::filesystem::exists(mark)) << "returned before the last thread exited";
  waitpid(daemon, nullptr, 0);
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace clonefs::fuse
