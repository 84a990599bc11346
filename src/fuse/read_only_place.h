// Whether a path the clone must write lies on a read-only file system, and
// where that file system is mounted, so that a refusal can say what to
// remount rather than blame the data (a store RocksDB cannot lock or write
// on a read-only file system is not damaged; `clonefs check` finds it
// clean).
//
// THREAD SAFETY: stateless functions (they read the file system and
// /proc/self/mountinfo).
#pragma once

#include <optional>
#include <string>

namespace clonefs::fuse {

struct ReadOnlyPlace {
  std::string dir;          // the nearest existing directory at or above the path
  std::string mount_point;  // where its file system is mounted ("" if not found)
};

// The place, if `path` (or, when it does not exist yet, its nearest existing
// parent directory) is on a file system mounted read-only (statvfs
// ST_RDONLY: the file system, or a read-only bind mount of it); nullopt if
// it is writable or cannot be examined.
std::optional<ReadOnlyPlace> ReadOnlyFileSystemAt(const std::string& path);

}  // namespace clonefs::fuse
