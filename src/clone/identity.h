// File identities recorded in a clone's metadata superblock (SPEC §5 "Clone
// identity"), so a later mount with a different or modified source, or
// another dest, is refused instead of silently mixing images. The
// comparison itself is metadata::IdentityDifferences (metadata.h), shared by
// the mount and `clonefs check`.
//
//   source: size, a content fingerprint ("fp1") and a wide one ("fp2"), and
//           the mtime (regular files; an http(s) file's Last-Modified date),
//           flagged kMtimeUnstable on FUSE file systems whose servers invent
//           mtimes and for remote sources without one; never its inode (the
//           same content copied elsewhere is the same source).
//   dest:   regular file: inode, birth time and inode generation (a file
//           removed and created again, even under the same inode number,
//           differs: by its birth time where the file system records one,
//           by its generation where it has one, e.g. an ext4 made with
//           128-byte inodes, which has no birth time); block device:
//           device number, size and what names the disk (BlockDeviceId: a
//           loop device's backing file, a serial/WWN). A regular dest's size
//           is not part of its identity: a dest shorter than the image is
//           refused on its own (it was truncated), a longer one is fine.
//
// Fingerprints (changing either would make existing clones refuse to mount):
//   fp1: FNV-1a 64 over "clonefs-fp1", the image size as 8 little-endian
//        bytes, and three samples of up to 64 KiB at offset 0, at the middle
//        (size/2 rounded down to 4 KiB) and at the end (size - 64 KiB, or 0),
//        each clipped to the image.
//   fp2: FNV-1a 64 over "clonefs-fp2", the size, and 32 samples of up to
//        4 KiB at offsets i * (size - 4 KiB) / 31 rounded down to 4 KiB
//        (i = 0..31), clipped to the image: a change anywhere in a 4 KiB
//        block on that grid is seen even where mtimes are not compared.
//   Together 320 KiB are read, all samples at once (Device::ReadAsync), so a
//   mount costs about one round trip on a remote source.
//
// THREAD SAFETY: stateless functions.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "devices/device.h"
#include "metadata/metadata.h"

namespace clonefs::clone {

inline constexpr uint64_t kFingerprintSampleBytes = 64 * 1024;
inline constexpr uint64_t kWideSampleBytes = 4096;
inline constexpr int kWideSamples = 32;

// The fingerprints of `dev` (reads through Device::Read). Errors: the
// device's read error.
Result<uint64_t> Fingerprint(Device& dev);
Result<uint64_t> WideFingerprint(Device& dev);

// Identity of the source opened as `dev` from `path`. Errors: the stat error
// or the device's read error.
Result<metadata::FileIdentity> SourceIdentity(Device& dev, const std::string& path);

// Identity of a remote source (SPEC §5, §9) opened as `dev`: its size,
// fingerprints and, where its server gives one (Device::ServerMtimeNs: an
// http(s) file's Last-Modified), its mtime; flags kRemote, plus
// kMtimeUnstable where there is no mtime; `uri` as the path (for
// people, never compared) and `export_key` as the device_id (the NBD export
// name as "nbd export 'NAME'", or "" where there is none), never a host,
// port or socket path: those may change between mounts. Errors: the
// device's read error.
Result<metadata::FileIdentity> RemoteSourceIdentity(Device& dev, const std::string& uri,
                                                    const std::string& export_key);

// The check a remote source runs after each reconnect and now and then
// (Device::SetIdentityCheck, SPEC §7a): RemoteSourceIdentity of the view
// compared with `recorded` by metadata::IdentityDifferences, as the mount
// does. OK if none differs; Mismatch listing the differences ("source
// fingerprint differs: ..."); a read error as it is. Costs what
// RemoteSourceIdentity does: 35 reads, 320 KiB.
Device::IdentityCheck RemoteIdentityCheck(const metadata::FileIdentity& recorded,
                                          const std::string& uri, const std::string& export_key);

// The same check for a local block-device source (Device::SetIdentityCheck
// of a TimedSource, SPEC §7a: a device has no mtime to tell a rewrite):
// SourceIdentity of the view opened from `path` compared with `recorded`.
// Results as RemoteIdentityCheck's.
Device::IdentityCheck LocalIdentityCheck(const metadata::FileIdentity& recorded,
                                         const std::string& path);

// Identity of the dest at `path` (see above). Errors: the stat error.
Result<metadata::FileIdentity> DestIdentity(const std::string& path);

}  // namespace clonefs::clone
