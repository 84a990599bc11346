// `clonefs unmount MOUNTPOINT [--force]`: a clean unmount that waits for the
// daemon's final commit, refusing (with the fix named) while the exposed file
// is in use.
//
// How: a plain umount, which the kernel refuses (EBUSY) while anything has
// the file open; the daemon's loop then ends and its FUSE destroy operation
// makes the final commit; this command waits for the daemon to exit. The
// daemon is found from the mount alone (runtime_info.h: the mount's source is
// its metadata directory, which holds the daemon's record), and waited for
// with a pidfd, so root unmounting a user's clone, another XDG_RUNTIME_DIR
// or a mount point of any length all wait the same way; then the record
// says whether the final commit failed (exit kExitFailure); a daemon that
// has not exited within the wait is asked why (UnmountOptions::ask_daemon)
// and the message says so (exit kExitFailure). If the
// file is in use, the loop devices backed by it are named (from
// /sys/block/loop*/loop/backing_file) with the commands that free them.
// --force detaches lazily instead: the mount disappears from the namespace
// at once and the daemon finishes when the last user closes the file.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/result.h"
#include "fuse/unmount_messages.h"

namespace clonefs::fuse {

struct UnmountOptions {
  // The clonefs mount point. Required.
  std::string mountpoint;
  // Lazy unmount even if the file is in use. Default: false.
  bool force = false;
  // Longest wait, in seconds, for the daemon to exit (its work in flight,
  // then its final commit). Default: 600.
  uint32_t wait_seconds = 600;
  // Asks the daemon whose clone's metadata directory is the argument what
  // it is doing, when it has not exited within wait_seconds, so that the
  // message can say why (StillStoppingMessage). Called on the caller's
  // thread; it must return within a few seconds. Default: none (the
  // message then says what the daemon may be waiting for).
  std::function<Result<StoppingDaemon>(const std::string& metadata_dir)> ask_daemon;
};

// Returns the exit code (exit_codes.h): kExitBusy if the file is in use.
int RunUnmount(const UnmountOptions& options);

}  // namespace clonefs::fuse
