#include "fuse/unmount.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "fuse/exit_codes.h"
#include "fuse/mount_table.h"
#include "fuse/runtime_info.h"
#include "fuse/unmount_messages.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace clonefs::fuse {
namespace {

void Error(const std::string& m) { fprintf(stderr, "clonefs: error: %s\n", m.c_str()); }

// A pidfd for `pid` (readable once it exits), or -1 where the kernel has
// none (then the wait polls /proc). Any uid may open one: root waits for a
// user's daemon as well as the user does.
int OpenPidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// Waits until the daemon `pid` has exited or `deadline` passed; true if it
// exited.
bool WaitForExit(int pidfd, pid_t pid, std::chrono::steady_clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      const int n = poll(&p, 1, static_cast<int>(std::max<int64_t>(0, left.count())));
      if (n > 0) return true;
      if (n < 0 && errno == EINTR) continue;
      if (n == 0) return false;
      // poll failed: fall through to the /proc check
    }
    if (!IsClonefsProcess(pid)) return true;
    if (left.count() <= 0) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

int RunUnmount(const UnmountOptions& in) {
  const std::string mp = CanonicalPath(in.mountpoint);
  auto entry = FindMount(mp);
  if (!entry.ok()) {
    Error(entry.status().message());
    return kExitFailure;
  }
  if (!*entry) {
    Error(mp + " is not mounted; nothing to unmount");
    return kExitFailure;
  }
  if ((*entry)->fstype != "fuse.clonefs") {
    Error(mp + " is not a clonefs mount (it is " + (*entry)->fstype + "); use umount");
    return kExitFailure;
  }
  // Another user's FUSE mount: fusermount3 would only say it is "not found
  // in /etc/mtab".
  const std::string not_owner = UnmountOwnerProblem(mp, (*entry)->user_id, geteuid());
  if (!not_owner.empty()) {
    Error(not_owner);
    return kExitFailure;
  }
  // The mount's source is its metadata directory, which holds the record.
  const std::string metadata_dir = (*entry)->source;
  const std::string record = DaemonRecordPath(metadata_dir);
  auto info = ReadDaemonRecord(metadata_dir);
  if (info.ok() && info->mountpoint != mp) {
    info = Status::NotFound(record + " is the record of a mount at " + info->mountpoint);
  }
  // Open the pidfd before judging the process, so that what we wait for is
  // the process we judged.
  int pidfd = info.ok() ? OpenPidfd(info->pid) : -1;
  struct PidfdCloser {
    int& fd;
    ~PidfdCloser() {
      if (fd >= 0) close(fd);
    }
  } closer{pidfd};
  const bool have_daemon = info.ok() && IsClonefsProcess(info->pid);
  const std::string file = mp + "/" + (info.ok() && !info->name.empty() ? info->name : "");

  Status s = UnmountPath(mp, in.force);
  if (s.IsBusy()) {
    Error(InUseMessage(mp, file, LoopDevicesBackedBy(file), have_daemon));
    return kExitBusy;
  }
  if (!s.ok()) {
    Error(s.message());
    return kExitFailure;
  }
  if (in.force) {
    printf("clonefs: detached %s lazily; the daemon makes its final commit and exits when "
           "the last user closes the file\n", mp.c_str());
    return kExitOk;
  }
  if (!info.ok()) {
    printf("clonefs: unmounted %s (no record of its daemon: %s; not waiting for its final "
           "commit)\n", mp.c_str(), info.status().message().c_str());
    return kExitOk;
  }
  if (!have_daemon) {
    printf("clonefs: unmounted %s (its daemon had died; the next mount resumes from the last "
           "commit)\n", mp.c_str());
    RemoveDaemonInfo(metadata_dir);
    return kExitOk;
  }
  // Wait for the daemon's final commit and exit.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(in.wait_seconds);
  if (!WaitForExit(pidfd, info->pid, deadline)) {
    Result<StoppingDaemon> said = Status::NotSupported("this clonefs has no control client");
    if (in.ask_daemon) said = in.ask_daemon(metadata_dir);
    std::optional<StoppingDaemon> daemon;
    if (said.ok()) daemon = *said;
    Error(StillStoppingMessage(mp, info->pid, in.wait_seconds, info->log_file, daemon,
                               said.ok() ? std::string() : said.status().message(),
                               WallNowNanos()));
    return kExitFailure;
  }
  auto after = ReadDaemonRecord(metadata_dir);
  const bool ours = after.ok() && after->pid == info->pid;
  if (ours && !after->profile_error.empty()) {
    RemoveDaemonInfo(metadata_dir);
    fprintf(stderr,
            "clonefs: warning: the access profile recorded by this mount (--record-profile) "
            "could not be written: %s; what it recorded is lost (the file, if any, holds the "
            "last one written)\n",
            after->profile_error.c_str());
  }
  if (ours && !after->final_error.empty()) {
    RemoveDaemonInfo(metadata_dir);
    Error("unmounted " + mp + ", but the final commit failed: " + after->final_error +
          "; the next mount resumes from the last successful commit" +
          (info->log_file.empty() ? std::string() : " (details in " + info->log_file + ")"));
    return kExitFailure;
  }
  printf("clonefs: unmounted %s; final commit done\n", mp.c_str());
  return kExitOk;
}

}  // namespace clonefs::fuse
