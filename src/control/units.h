// Number parsing and byte-count formatting for the control commands and status output.
// (Sizes and rates are parsed by base/byte_size.h.)
//
// THREAD SAFETY: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace clonefs::control {

// Parses a non-negative decimal integer with no sign, no spaces and no other
// characters. Errors: InvalidArgument ("'x' is not a decimal number") or, if
// it exceeds `max`, InvalidArgument ("'x' is larger than MAX").
Result<uint64_t> ParseDecimal(std::string_view s, uint64_t max = UINT64_MAX);

// floor(100 * part / whole * 10^decimals), computed exactly (no rounding up:
// 99.9999% never shows as 100%). whole == 0 counts as 100%. REQUIRES:
// part <= whole, decimals in [0, 6].
uint64_t FlooredPercent(uint64_t part, uint64_t whole, int decimals);
// FlooredPercent as text with `decimals` decimals and a '%': "99.99%".
std::string FormatPercent(uint64_t part, uint64_t whole, int decimals);

// "0 B", "512 B", "1.50 KiB", "10.00 GiB" (binary units, two decimals).
std::string FormatBytes(uint64_t bytes);
// "1.50 MiB/s", or "unlimited" when `unlimited_if_zero` and bytes_per_s == 0.
std::string FormatRate(uint64_t bytes_per_s, bool unlimited_if_zero = false);
// "45s", "3m05s", "2h03m", "4d02h".
std::string FormatDuration(uint64_t seconds);
// "2026-11-28 12:03:04 UTC" for a wall-clock time in ns since the Unix epoch.
std::string FormatWallTime(uint64_t unix_ns);
// "2026-11-28T21:05:23Z" (ISO 8601, UTC, whole seconds), and back: false if
// `s` is not in that form.
std::string FormatIsoTime(uint64_t unix_ns);
bool ParseIsoTime(const std::string& s, uint64_t* unix_ns);

}  // namespace clonefs::control
