// PosixDevice: a regular file or a block device reached with positional I/O.
//
// Size() is st_size (regular file) or BLKGETSIZE64 (block device) at open.
// Zero on a block device uses fallocate on the device node, which the kernel
// implements with guaranteed zeroing (PUNCH_HOLE -> write-zeroes with unmap,
// failing with EOPNOTSUPP where the device cannot; ZERO_RANGE -> write-zeroes,
// falling back to writing zero pages); bytes outside the logical-block
// aligned middle are written as zeros. BLKDISCARD is never used: it does not
// guarantee that discarded blocks read back as zeros. NextData/NextHole on a
// block device answer "all data". Flush on a read-only device does nothing.
// CheckUnchanged compares fstat's size (BLKGETSIZE64 for a block device) and,
// for a read-only regular file with watch_mtime, st_mtim with what was seen
// at open; NextData/NextHole on a regular file make the same size check, so a
// file that shrank never looks like a hole.
// Reads, writes and fdatasync retry EINTR; short transfers are continued.
//
// THREAD SAFETY: see device.h. LIFECYCLE: the fds (one, or two with O_DIRECT:
// the O_DIRECT one plus an ordinary one for SpliceFd, fallocate, lseek and
// the file's last partial 4 KiB block) are opened in OpenPosixDevice and
// closed in the destructor.
#pragma once

#include <sys/stat.h>

#include "devices/device.h"

namespace clonefs {

struct PosixDeviceOptions {
  // Open O_RDONLY (the source: never written, whatever happens). Default: false.
  bool read_only = false;
  // Open with O_DIRECT, bouncing unaligned requests through 4 KiB-aligned
  // buffers: partly covered 4 KiB blocks are read, merged and rewritten under
  // a per-block lock, so concurrent writes to disjoint bytes of one block are
  // safe; concurrent writes to overlapping bytes give an unspecified mix.
  // The file's last partial 4 KiB block goes through an ordinary descriptor.
  // Zero writes the partly covered 4 KiB blocks at its edges as zeros through
  // that same locked read-modify-write (fallocate only for whole blocks), so
  // a zero and a write to disjoint bytes of one block both take effect.
  // Default: false.
  bool direct = false;
  // For a writable regular file: create it if missing (sparse, mode 0644).
  // Default: false.
  bool create = false;
  // For a writable regular file shorter than this: extend it (sparse, with
  // ftruncate) to this many bytes, so a new dest can match the source. Never
  // shrinks anything; ignored for block devices and read-only opens.
  // Default: 0 (never resize).
  uint64_t min_size = 0;
  // For a read-only regular file: CheckUnchanged also compares the mtime
  // with the one seen at open, so a modification that keeps the size is
  // noticed. Set it false where the file system invents mtimes (FUSE or
  // network file systems that report their own mount time, e.g. nbdfuse);
  // the size is always compared. Default: true.
  bool watch_mtime = true;
};

// Opens `path`. Errors: NotFound, Permission (with "on a read-only file
// system" for EROFS), InvalidArgument if it is neither a regular file nor a
// block device, or if O_DIRECT was asked for and the file system refuses it.
Result<std::unique_ptr<Device>> OpenPosixDevice(const std::string& path,
                                                const PosixDeviceOptions& options);

}  // namespace clonefs
