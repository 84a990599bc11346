// Zero-block detection: data read from the source that is all zeros is
// hydrated as a hole in dest, never written as allocated data (SPEC §9,
// Holes).
//
// Blocks are kZeroBlock bytes aligned to image offsets (so they line up with
// dest's file-system blocks); a partial block at either end of a range is
// judged by the bytes of it that lie in the range.
//
// Cost: a data block is usually recognised by its first 8 bytes; only blocks
// that start with zeros are scanned in full.
//
// THREAD SAFETY: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "base/status.h"

namespace clonefs {

inline constexpr uint64_t kZeroBlock = 4096;

// True if every byte of [p, p+n) is zero.
bool AllZero(const uint8_t* p, size_t n);

// Splits [off, off+len), whose bytes are data[0..len), into maximal runs of
// data and of all-zero blocks, and calls fn(run_off, run_len, zero) for each
// in order. Stops at the first non-OK status fn returns and returns it.
Status ForEachZeroRun(uint64_t off, const uint8_t* data, size_t len,
                      const std::function<Status(uint64_t off, uint64_t len, bool zero)>& fn);

}  // namespace clonefs
