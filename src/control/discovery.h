// Finding a clone's control socket from its mountpoint (docs/control.md,
// "Where the socket lives").
//
// The daemon listens on <dir>/<hash>.sock where <hash> is MountpointHash of
// the canonical mountpoint and <dir> depends on the daemon's uid:
//   root:  /run/clonefs
//   other: $XDG_RUNTIME_DIR/clonefs, or /tmp/clonefs-<uid> without it.
// The client reads /proc/self/mountinfo to check that MOUNTPOINT is a clonefs
// mount and learn the owner (user_id=) of the FUSE mount, then tries the
// directories that owner's daemon could have used.
//
// THREAD SAFETY: pure functions, except those that read the filesystem
// (documented), which are still safe to call from any thread.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace clonefs::control {

// 16 lowercase hex digits: FNV-1a 64 of the path's bytes.
std::string MountpointHash(std::string_view canonical_mountpoint);

// The directory a daemon running as `uid` uses, given its XDG_RUNTIME_DIR
// (empty or relative = unset).
std::string SocketDirFor(uid_t uid, std::string_view xdg_runtime_dir);

// SocketDirFor(geteuid(), $XDG_RUNTIME_DIR) + "/" + hash + ".sock".
// Errors: InvalidArgument if the path would not fit in sockaddr_un.
Result<std::string> DaemonSocketPath(const std::string& canonical_mountpoint);

// Socket paths a daemon owned by `owner` may be listening on, most likely
// first: for root /run/clonefs only; for others $XDG_RUNTIME_DIR/clonefs
// (when owner is the caller), /run/user/<owner>/clonefs, /tmp/clonefs-<owner>.
std::vector<std::string> ClientSocketCandidates(const std::string& canonical_mountpoint,
                                                uid_t owner, uid_t self,
                                                std::string_view xdg_runtime_dir);

// realpath(path); if the mountpoint itself cannot be stat'ed because its
// daemon died (ENOTCONN) or it denies us access (EACCES: a FUSE mount of
// another user), realpath of the parent plus the last component.
// Reads the filesystem. Errors: NotFound, Permission, IoError with the path.
Result<std::string> CanonicalMountpoint(const std::string& path);

// One line of /proc/<pid>/mountinfo.
struct MountEntry {
  std::string mount_point;  // unescaped (\040 -> space, ...)
  std::string fstype;       // e.g. "fuse.clonefs"
  std::string source;       // mount source (FUSE fsname)
  std::string super_options;
  std::optional<uid_t> user_id;  // FUSE's user_id= super option
};

// Parses one mountinfo line. Errors: InvalidArgument if malformed.
Result<MountEntry> ParseMountInfoLine(std::string_view line);

// The topmost mount at `canonical_mountpoint` in a mountinfo text, or
// NotFound if nothing is mounted there.
Result<MountEntry> FindMount(std::string_view mountinfo, const std::string& canonical_mountpoint);

// Every clonefs mount in a mountinfo text, in order.
std::vector<MountEntry> ClonefsMounts(std::string_view mountinfo);

// fstype "fuse.clonefs" (subtype clonefs), or a plain "fuse" mount whose
// source is "clonefs".
bool IsClonefsMount(const MountEntry& e);

// Reads /proc/self/mountinfo. Errors: IoError.
Result<std::string> ReadSelfMountInfo();

// For a client: resolves MOUNTPOINT to the control socket of the daemon
// serving it. Reads the filesystem. Errors (messages meant for the user):
//   NotFound     "X: no such file or directory";
//   InvalidArgument "X is not a clonefs mount" (not a mount, or another fs);
//   NotFound     "no control socket for X: is the clonefs daemon running?";
//   Permission   "X is controlled by uid N; only that user and root may ...";
//   IoError      "X: the clonefs daemon is gone (transport endpoint is not
//                 connected); unmount it with fusermount3 -u X".
Result<std::string> ResolveControlSocket(const std::string& mountpoint);

}  // namespace clonefs::control
