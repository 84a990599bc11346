// Sizes on the command line: "4096", "64K", "1M", "2G", "1T" (binary
// multiples; "KiB"/"MiB"/... and "KB"/"MB"/... mean the same, case does not
// matter; a trailing "/s" is allowed for rates).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace clonefs::cli {

// The size in bytes, or nullopt if `text` is not a size or overflows 64 bits.
std::optional<uint64_t> ParseSize(const std::string& text);

// A plain non-negative integer that fits `max`, or nullopt.
std::optional<uint64_t> ParseCount(const std::string& text, uint64_t max);

// A duration in milliseconds: "30", "30s", "2.5" / "2.5s" (seconds, at most
// three decimals), "500ms"; nullopt if `text` is none of these or exceeds a
// day.
std::optional<uint64_t> ParseSeconds(const std::string& text);

}  // namespace clonefs::cli
