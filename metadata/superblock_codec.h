// The superblock's binary encoding (docs/metadata-format.md, "Superblock").
//
// A pure codec: no I/O. Every multi-byte integer is little-endian.
//
//   off  size  field
//   0    8     magic "CLONEFSB"
//   8    4     format_version (u32)
//   12   4     body_length (u32): bytes between offset 16 and the CRC
//   16   ...   body (version 1):
//                uuid            36 bytes, textual UUID
//                region_size     u64
//                image_size      u64
//                nr_regions      u64
//                created_unix_s  u64
//                source identity (see below)
//                dest identity
//   end  4     crc32c of every byte before it
//
//   identity: size u64, inode u64, mtime_ns i64, fingerprint u64,
//             path_length u32, path bytes (at most kMaxIdentityPath);
//             from version 2 on, then: btime_ns i64, fingerprint2 u64,
//             flags u32, device_id_length u32, device_id bytes (at most
//             kMaxIdentityPath); from version 3 on, then: generation u32
//             (meaningful with flags bit kGeneration, which a version 1 or 2
//             identity never has). An older superblock decodes with the
//             newer fields 0 / empty ("not recorded") and is re-encoded in
//             its own version.
//
// THREAD SAFETY: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "metadata/metadata.h"

namespace clonefs::metadata {

// Key of the superblock in RocksDB's default column family.
inline constexpr std::string_view kSuperblockKey = "superblock";
inline constexpr std::string_view kSuperblockMagic = "CLONEFSB";
inline constexpr size_t kMaxIdentityPath = 4096;

// Number of regions of an image: ceil(image_size / region_size), computed
// without overflow. REQUIRES: region_size > 0.
uint64_t NrRegionsFor(uint64_t image_size, uint64_t region_size);

// Encodes `sb` in the layout of its format_version (1, 2 or 3), written as
// given. Paths and device ids longer than kMaxIdentityPath are truncated.
std::string EncodeSuperblock(const Superblock& sb);

// Decodes and checks an encoded superblock: magic, CRC, lengths, UUID syntax,
// region size (ValidateRegionSize), image size > 0 and nr_regions consistent
// with both. Errors: Corruption saying what is wrong; Mismatch if the format
// version is newer than kFormatVersion (written by a newer clonefs).
Result<Superblock> DecodeSuperblock(std::string_view bytes);

// A fresh random (version 4) UUID in its 36-character text form.
std::string NewUuid();

}  // namespace clonefs::metadata
