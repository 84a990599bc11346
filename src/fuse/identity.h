// File identities recorded in a clone's metadata superblock (SPEC §5), so a
// later mount with a different or modified source, or another dest, is
// refused instead of silently mixing images.
//
//   source: size, mtime (regular files only) and a content fingerprint;
//   dest:   inode (regular file) or device number (block device) only. Its
//           size is not recorded: a regular-file dest may be extended to the
//           image size at mount, and a block device may be larger.
//
// Fingerprint (format "fp1"; changing it would make every existing clone
// refuse to mount): FNV-1a 64 over the bytes "clonefs-fp1", the image size
// as 8 little-endian bytes, and three samples of up to 64 KiB each, read at
// offset 0, at the middle (size/2 rounded down to 4 KiB) and at the end
// (size - 64 KiB, or 0), each clipped to the image. Reading 192 KiB keeps a
// mount fast even on a slow source; it detects any change to the sampled
// bytes and, with size and mtime, most replacements of the file.
//
// THREAD SAFETY: stateless functions.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <string>

#include "base/result.h"
#include "devices/device.h"
#include "metadata/metadata.h"

namespace clonefs::fuse {

inline constexpr uint64_t kFingerprintSampleBytes = 64 * 1024;

// The fingerprint of `dev` (reads through Device::Read). Errors: the
// device's read error.
Result<uint64_t> Fingerprint(Device& dev);

// Identity of the source: size from the device, mtime from `st` for a
// regular file (0 for a block device), fingerprint from its content.
Result<metadata::FileIdentity> SourceIdentity(Device& dev, const struct stat& st,
                                              const std::string& path);

// Identity of the dest: st_ino for a regular file, st_rdev for a block
// device; size 0 (not recorded).
metadata::FileIdentity DestIdentity(const struct stat& st, const std::string& path);

}  // namespace clonefs::fuse
