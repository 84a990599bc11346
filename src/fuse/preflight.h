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
#include <vector>

#include "base/result.h"
#include "clone/dest_guard.h"
#include "devices/device.h"
#include "fuse/mount_options.h"
#include "metadata/metadata.h"

namespace clonefs::fuse {

using NoteFn = std::function<void(const std::string&)>;

// Mount point: exists, is a directory, is not a mount point. A stale mount
// left by a dead clonefs daemon (its record names a process that is gone,
// or statfs fails with ENOTCONN) is unmounted, or
// detached (umount -l) while something still has its file open, and `note`
// is told (with the loop devices left on the dead mount and what to do
// about them), as is a directory that is not empty (its entries are hidden
// while mounted). No path of CheckPathLayout may reach it under another
// name. REQUIRES: o resolved (ResolveMountDefaults).
Status CheckMountpoint(const MountOptions& o, const NoteFn& note);

// Paths that must not lie inside the mount point (the daemon never writes
// inside its own mount) and must not coincide: source, dest, metadata dir,
// log file. Inside means spelled under it, or (unless the mount point is a
// mount already: CheckMountpoint repeats this part) reaching it through a
// symlink or a bind mount, by device and inode.
Status CheckPathLayout(const MountOptions& o);

// What the clone writes -- dest (clone::CheckDistinctStorage, which
// OpenClone repeats under the dest lock), its metadata directory and its log
// file -- must not be stored on the source (a file system inside a source
// image, on a source device): checked before any of them is created or
// opened, so a refusal writes nothing there. A remote source, or one that
// cannot be examined (OpenClone says why), is not checked.
Status CheckWritesOffSource(const MountOptions& o);

// The file --record-profile names (o.record_profile, given or stored) is
// replaced by the recording at unmount (a rename over it), so it must be no
// file the clone or the user needs: not the source or the dest (by path or
// by inode), not the log file, not a device node, FIFO or socket, and
// nothing inside the metadata directory but a profile already there (the
// clone's own files live there). `dest_st`: dest as opened. OK when
// nothing is recorded.
Status CheckRecordingTarget(const MountOptions& o, const struct stat& dest_st);

// What this mount created, so a mount that fails later removes exactly that
// (SPEC §7a: a failed mount leaves nothing behind that it created).
struct CreatedByMount {
  std::string dest;          // "" unless this mount created the dest file
  std::string metadata_dir;  // "" unless this mount may have written a new store there
  // The outermost directory this mount made for metadata_dir (metadata_dir
  // itself or a parent that did not exist either); "" if it existed.
  std::string metadata_top_made;
  // Entries metadata_dir held before (when it existed): they are kept.
  std::vector<std::string> metadata_kept;
};

// Removes what `c` names: metadata_top_made entirely, otherwise the entries
// of metadata_dir that are not in metadata_kept, and dest. REQUIRES: nothing
// holds the files open (the metadata closed). Best effort; failures are
// logged.
void RemoveCreated(const CreatedByMount& c);

// Everything the engine needs, opened and validated.
struct OpenedClone {
  std::unique_ptr<Device> source;
  std::unique_ptr<Device> dest;
  std::unique_ptr<metadata::Metadata> metadata;
  // Held for as long as the clone is served: no second clone may use dest.
  std::unique_ptr<clone::DestLock> dest_lock;
  struct stat dest_stat = {};  // for the exposed file's mode/owner
  CreatedByMount created;
};

// Opens a clone (SPEC §5, §7a), in an order that never writes to the source,
// never writes to a dest another clone uses, and writes nothing before every
// check has passed:
//   1. source: stat, open read-only; one that cannot be opened is stood in
//      for (sources/unopened_source.h) when it is named as recorded and the
//      clone is complete and committed (SPEC §4: dest alone is the image);
//   2. dest: kind and file system checks; not the source under another name
//      (clone::CheckDistinctStorage); locked (created empty if missing);
//   3. metadata present (an existing clone): dest must not have been created
//      now, must be at least the image size (never extended), and the
//      identities must match (metadata::IdentityDifferences);
//      metadata absent (a new clone): dest must have been created now, be
//      empty or all holes, unless o.overwrite_dest; a regular dest is then
//      extended to the image size and made durable (data, size, directory
//      entry) before the metadata is formatted, so a power cut leaves either
//      nothing or a clone that check, info and mount all recognise.
// On failure removes what it created. Errors carry the message for the
// user; `note` receives non-fatal remarks (O_DIRECT fallback, an
// interrupted creation completed).
Result<OpenedClone> OpenClone(const MountOptions& o, const NoteFn& note);

}  // namespace clonefs::fuse
