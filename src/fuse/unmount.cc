#include "fuse/unmount.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "fuse/exit_codes.h"
#include "fuse/mount_table.h"
#include "fuse/runtime_info.h"

namespace clonefs::fuse {
namespace {

void Error(const std::string& m) { fprintf(stderr, "clonefs: error: %s\n", m.c_str()); }

std::string InUseMessage(const std::string& mp, const std::string& file) {
  std::vector<std::string> loops = LoopDevicesBackedBy(file);
  std::string m = file + " is still in use";
  if (!loops.empty()) {
    std::string list;
    for (const auto& l : loops) list += (list.empty() ? "" : ", ") + l;
    m += " by loop device " + list + "; unmount what is mounted from it, then detach it: ";
    for (const auto& l : loops) m += "losetup -d " + l + "; ";
    m += "then run clonefs unmount " + mp + " again";
  } else {
    m += " (an open file, a VM or a loop device; find loop devices with: losetup -j " + file +
         "); stop its users (e.g. shut the VM down), then run clonefs unmount " + mp + " again";
  }
  m += ". clonefs unmount --force detaches lazily instead (the clone keeps serving its users "
       "and stops when the last one closes the file)";
  return m;
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
  auto info = ReadDaemonInfo(mp);
  const bool have_daemon = info.ok() && IsClonefsProcess(info->pid);
  const std::string file = mp + "/" + (info.ok() && !info->name.empty() ? info->name : "");

  Status s = UnmountPath(mp, in.force);
  if (s.IsBusy()) {
    Error(InUseMessage(mp, file));
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
    printf("clonefs: unmounted %s (no record of its daemon in %s: not waiting for its final "
           "commit)\n", mp.c_str(), RuntimeDir().c_str());
    return kExitOk;
  }
  if (!have_daemon) {
    printf("clonefs: unmounted %s (its daemon had died; the next mount resumes from the last "
           "commit)\n", mp.c_str());
    RemoveDaemonInfo(mp);
    return kExitOk;
  }
  // Wait for the daemon's final commit and exit.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(in.wait_seconds);
  while (IsClonefsProcess(info->pid)) {
    if (std::chrono::steady_clock::now() > deadline) {
      Error("unmounted " + mp + ", but daemon " + std::to_string(info->pid) +
            " has not finished its final commit after " + std::to_string(in.wait_seconds) +
            " s; it keeps going in the background (see its log)");
      return kExitFailure;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto after = ReadDaemonInfo(mp);
  if (after.ok() && after->pid == info->pid && !after->final_error.empty()) {
    RemoveDaemonInfo(mp);
    Error("unmounted " + mp + ", but the final commit failed: " + after->final_error +
          "; the next mount resumes from the last successful commit");
    return kExitFailure;
  }
  printf("clonefs: unmounted %s; final commit done\n", mp.c_str());
  return kExitOk;
}

}  // namespace clonefs::fuse
