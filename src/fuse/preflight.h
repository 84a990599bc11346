// The checks `clonefs mount` makes before it mounts (SPEC §7), each failing
// with a Status whose message says what is wrong and what to do, and the
// opening of source, dest and metadata in an order that never writes to the
// source and leaves nothing behind on failure.
//
// THREAD SAFETY: stateless functions. CheckMountpoint may lazily unmount a
// stale clonefs mount (ENOTCONN) and reports that through `note`.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <memory>
#include <string>

#include "base/result.h"
#include "devices/device.h"
#include "fuse/mount_options.h"
#include "metadata/metadata.h"

namespace clonefs::fuse {

using NoteFn = std::function<void(const std::string&)>;

// Mount point: exists, is a directory, is not a mount point. A stale mount
// left by a dead clonefs daemon (stat fails with ENOTCONN) is detached
// (umount -l) and `note` is told. REQUIRES: o resolved (ResolveMountDefaults).
Status CheckMountpoint(const MountOptions& o, const NoteFn& note);

// Paths that must not lie inside the mount point (the daemon never writes
// inside its own mount) and must not coincide: source, dest, metadata dir,
// log file.
Status CheckPathLayout(const MountOptions& o);

// Everything the engine needs, opened and validated.
struct OpenedClone {
  std::unique_ptr<Device> source;
  std::unique_ptr<Device> dest;
  std::unique_ptr<metadata::Metadata> metadata;
  struct stat dest_stat = {};  // for the exposed file's mode/owner
  bool created_dest = false;   // dest did not exist before this mount
};

// Opens the source (read-only), checks and prepares dest (creating a
// regular file sparse, or extending a shorter one, to the source's size;
// refusing a smaller block device, a read-only file system, or the source's
// own inode), then opens or formats the metadata (locking it). On failure
// after creating dest, removes the dest it created. Errors carry the
// message for the user; `note` receives non-fatal remarks (O_DIRECT
// fallback).
Result<OpenedClone> OpenClone(const MountOptions& o, const NoteFn& note);

}  // namespace clonefs::fuse
