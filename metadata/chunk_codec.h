// Encoding of the bitmap chunks stored in the "regions" column family
// (docs/metadata-format.md, "Bitmap chunks").
//
// The hydration bitmap is cut into chunks of kRegionsPerChunk regions (4 KiB of
// bitmap). Chunk c covers regions [c * kRegionsPerChunk, (c+1) *
// kRegionsPerChunk); in memory it is kWordsPerChunk 64-bit words, bit b of
// word w standing for region c * kRegionsPerChunk + 64 * w + b.
//
//   key   = chunk index, 8 bytes big-endian (so keys sort by index)
//   value = one tag byte, then:
//     kTagRaw  (1): the 4096-byte bitmap, words little-endian
//     kTagFull (2): nothing; every region of the chunk is hydrated
//     kTagRuns (3): runs of hydrated regions, as varint32 pairs
//                   (gap from the end of the previous run, run length);
//                   canonical: length >= 1, gap >= 1 except for the first run
//   An all-zero chunk is never stored: no key means "nothing hydrated".
//
// A pure codec: no I/O, no locks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace clonefs::metadata {

inline constexpr uint64_t kRegionsPerChunk = 32768;
inline constexpr uint64_t kWordsPerChunk = kRegionsPerChunk / 64;
inline constexpr size_t kChunkBytes = kRegionsPerChunk / 8;

inline constexpr uint8_t kTagRaw = 1;
inline constexpr uint8_t kTagFull = 2;
inline constexpr uint8_t kTagRuns = 3;

std::string EncodeChunkKey(uint64_t chunk);
// Corruption unless `key` is exactly 8 bytes.
Result<uint64_t> DecodeChunkKey(std::string_view key);

// True if all kWordsPerChunk words are zero.
bool ChunkIsZero(const uint64_t* words);

// Encodes a chunk whose first `valid` regions exist (kRegionsPerChunk except
// in the last chunk) as the shortest of full / runs / raw.
// REQUIRES: !ChunkIsZero(words); no bit at or beyond `valid` is set.
std::string EncodeChunkValue(const uint64_t* words, uint64_t valid);

// Decodes `value` into words[0, kWordsPerChunk). Corruption (with the reason)
// if the tag is unknown, the length is wrong, a run is malformed or extends
// past `valid`, or a raw bitmap has bits at or beyond `valid`.
Status DecodeChunkValue(std::string_view value, uint64_t valid, uint64_t* words);

}  // namespace clonefs::metadata
