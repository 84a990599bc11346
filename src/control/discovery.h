// Finding a clone's control socket from its mountpoint (docs/control.md,
// "Where the socket lives").
//
// The daemon listens on METADATA/control.sock (metadata/clone_files.h): the
// clone's metadata directory is its home, and the mount's FUSE fsname (the
// `source` field of /proc/self/mountinfo) is that directory. The client
// reads /proc/self/mountinfo to check that MOUNTPOINT is a clonefs mount,
// learns the owner (user_id=) and the metadata directory, and connects there.
// Nothing depends on the caller's uid, XDG_RUNTIME_DIR or path lengths (a
// socket path too long for sockaddr_un is reached through /proc/self/fd,
// socket_io.h).
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

// METADATA/control.sock for the clone whose metadata directory is `metadata_dir`.
std::string ControlSocketPath(const std::string& metadata_dir);

// realpath(path); if the mountpoint itself cannot be stat'ed because its
// daemon died (ENOTCONN) or it denies us access (EACCES: a FUSE mount of
// another user), realpath of the parent plus the last component, a
// symbolic link there followed (CanonicalBesideMount, base/mountinfo.h).
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
// serving it. Reads the filesystem and mountinfo, and connects to the socket
// once to learn whether the daemon died (refused: nobody listens); never
// sends a request to the mount itself, so it returns at once even when the
// daemon does not answer. Errors (messages meant for the user):
//   NotFound     "X: no such file or directory";
//   InvalidArgument "X is not a clonefs mount (nothing is mounted there): ..."
//                   with how to mount it or see it offline, or
//                   "... (mounted there: TYPE)" for another file system;
//   NotFound     "no control socket for X (looked for METADATA/control.sock):
//                 is the clonefs daemon running?";
//   Permission   "X is controlled by uid N; only that user and root may ..."
//                (the socket is not ours to use), or the socket is owned by
//                neither the mount's owner nor root (refused: not its daemon);
//   IoError      "X: the clonefs daemon serving it died (transport endpoint
//                 is not connected); ... Resume it with clonefs mount ... or
//                 remove the stale mount with clonefs unmount X" (the mount is
//                 there, its socket refuses connections).
Result<std::string> ResolveControlSocket(const std::string& mountpoint);

}  // namespace clonefs::control
