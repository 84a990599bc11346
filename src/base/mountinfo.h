// The system's mount table, as read from /proc/self/mountinfo: the one parser
// that the daemon (stale-mount detection, unmount) and the control client
// (is MOUNTPOINT a clonefs mount, and whose) share.
//
// Reading mountinfo sends no request to any FUSE daemon, so this is safe to
// call from the daemon that serves a mount.
//
// THREAD SAFETY: free functions without shared state; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace clonefs {

// One line of mountinfo:
//   id parent major:minor root mountpoint options [optional...] - fstype source superopts
// Every field is unescaped (octal escapes such as \040 decoded).
struct MountInfoLine {
  std::string mount_point;
  std::string fstype;         // e.g. "fuse.clonefs", "ext4"
  std::string source;         // mount source (the fsname for FUSE)
  std::string super_options;  // may be empty
};

// Parses one line. Errors: InvalidArgument if it is malformed (no "-"
// separator after the optional fields, or fewer than two fields after it).
Result<MountInfoLine> ParseMountInfoLine(std::string_view line);

// Parses a whole mountinfo text, in order (later lines are mounted on top of
// earlier ones at the same mount point). Malformed lines are skipped.
std::vector<MountInfoLine> ParseMountInfo(std::string_view text);

// The owner of a FUSE mount: the user_id= option of its super options
// ("rw,user_id=1000,group_id=1000"), or nullopt if there is none.
std::optional<uint32_t> FuseUserId(std::string_view super_options);

// Reads /proc/self/mountinfo. Errors: IoError.
Result<std::string> ReadSelfMountInfo();

// The canonical path of a mount point that realpath(3) could not resolve
// because the mount itself does not answer a stat (its FUSE daemon died:
// ENOTCONN, or ECONNABORTED while the kernel tears down its io_uring
// queues; another user's FUSE mount: EACCES): realpath of the parent
// directory plus the last name, following that name while it is a
// symbolic link. (Behind a trailing slash, `/mnt/vm/` with vm -> the mount
// point, realpath must stat the mount, so a link there is followed here.)
// Trailing slashes are ignored. Never stats the mount itself. Errors: the
// parent's realpath error, with the parent's path; ELOOP past 40 links.
Result<std::string> CanonicalBesideMount(const std::string& path);

}  // namespace clonefs
