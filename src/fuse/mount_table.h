// The system's mount table and unmounting, as clonefs's daemon and command
// line need them: is a path a mount point (and of what), unmount it plainly
// or lazily, and which loop devices use a file.
//
// Nothing here touches a FUSE mount's content: reading /proc/self/mountinfo
// and /sys/block does not send requests to a daemon, so these are safe to
// call from the daemon that serves the mount.
//
// THREAD SAFETY: free functions without shared state; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/status.h"

namespace clonefs::fuse {

struct MountEntry {
  std::string mountpoint;  // unescaped
  std::string fstype;      // e.g. "fuse.clonefs", "ext4"
  std::string source;      // unescaped mount source (fsname for FUSE)
  std::optional<uint32_t> user_id;  // a FUSE mount's owner (user_id=)
};

// Parses the text of /proc/self/mountinfo (octal escapes such as \040 are
// decoded). Malformed lines are skipped.
std::vector<MountEntry> ParseMountInfo(const std::string& text);

// The topmost mount whose mount point is exactly `path` (an absolute,
// normalized path), if any. Errors: IoError if mountinfo cannot be read.
Result<std::optional<MountEntry>> FindMount(const std::string& path);

// Unmounts `path`: umount2 (MNT_DETACH if `lazy`) and, when that is not
// permitted (not root), `fusermount3 -u [-z]`. Errors: Busy if the kernel
// refuses because something in the mount is in use; NotFound if it is not a
// mount; Permission / IoError otherwise (fusermount3's message included).
Status UnmountPath(const std::string& path, bool lazy);

// Loop devices ("/dev/loopN") whose backing file is `file` (an absolute
// path), from /sys/block/loop*/loop/backing_file. Empty if none or if /sys
// cannot be read.
std::vector<std::string> LoopDevicesBackedBy(const std::string& file);

// Loop devices whose backing file lies directly in the directory `dir` (an
// absolute path without a trailing slash: a mount point), as above.
std::vector<std::string> LoopDevicesBackedByFilesIn(const std::string& dir);

// realpath(path) without its trailing slashes (so that a mount point's
// daemon is never asked: realpath stats what a trailing slash follows);
// for a dead FUSE mount point (ENOTCONN) realpath of the
// parent plus the last component, a symbolic link there followed
// (CanonicalBesideMount, base/mountinfo.h); NormalizePath(path) if neither
// resolves.
std::string CanonicalPath(const std::string& path);

// Lexically normalizes an absolute path ("/a/./b//c/../d" -> "/a/b/d");
// relative paths are made absolute against the current directory first.
// Does not touch the filesystem (safe on a dead, ENOTCONN mount point).
std::string NormalizePath(const std::string& path);

}  // namespace clonefs::fuse
