// The record a running daemon keeps of itself, keyed by its mount point, so
// the command line (unmount, and status-like commands) can find the daemon
// and its metadata from a mount point alone.
//
// Location: $CLONEFS_RUNTIME_DIR if set, else /run/clonefs for root, else
// $XDG_RUNTIME_DIR/clonefs, else /tmp/clonefs-<uid>. File: the mount point
// with '/' turned into '-' (other unsafe bytes and '-' itself as %XX), plus
// ".info". Content: "key=value" lines (pid, mountpoint, source, dest,
// metadata, name). Written after the mount exists, removed when the daemon
// exits cleanly; a record whose pid is gone is stale.
//
// THREAD SAFETY: stateless functions.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "base/status.h"

namespace clonefs::fuse {

struct DaemonInfo {
  pid_t pid = 0;
  std::string mountpoint;
  std::string source;
  std::string dest;
  std::string metadata_dir;
  std::string name;  // exposed file name
  // Set (and the record left behind) when the daemon's final commit failed.
  std::string final_error;
};

std::string RuntimeDir();
std::string RuntimeInfoPath(const std::string& mountpoint);

// Writes atomically (temp file + rename). Errors: the file system's.
Status WriteDaemonInfo(const DaemonInfo& info);
// Errors: NotFound if there is no record for `mountpoint`.
Result<DaemonInfo> ReadDaemonInfo(const std::string& mountpoint);
void RemoveDaemonInfo(const std::string& mountpoint);

// True if `pid` is a live clonefs process: not a zombie, and either its
// command name starts with "clonefs" or it runs the same executable as the
// caller (a renamed copy or link of the binary).
bool IsClonefsProcess(pid_t pid);

}  // namespace clonefs::fuse
