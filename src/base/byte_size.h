// Sizes and rates as the user writes them, the one parser for every size and
// rate the command line, the control protocol and the stored settings accept
// (docs/cli.md, "Sizes and rates").
//
// A size is a decimal integer, optionally followed by a unit; units are
// case-insensitive and all are powers of 1024:
//   (none), B                     1
//   K, KB, KiB, KIB               2^10
//   M, MB, MiB                    2^20
//   G, GB, GiB                    2^30
//   T, TB, TiB                    2^40
//   P, PB, PiB                    2^50
// So "5MB" and "5MiB" are both 5242880 (as in mount --rate, and as status
// prints rates: "5.00 MiB/s"). No sign, no spaces, no fraction, no hex; the
// value must fit in 64 bits. A rate is a size per second and may end in
// "/s" ("50M/s").
//
// THREAD SAFETY: pure functions.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace clonefs {

// The number of bytes `text` denotes. Errors: InvalidArgument, whose message
// quotes `text` and says what is wrong (empty, not a number, unknown unit,
// larger than 2^64-1 bytes) and what is accepted.
Result<uint64_t> ParseSize(std::string_view text);

// As ParseSize, with an optional trailing "/s" (any case): bytes per second.
Result<uint64_t> ParseRate(std::string_view text);

}  // namespace clonefs
