// Counts and durations on the command line. (Sizes and rates: base/byte_size.h,
// shared with the control protocol.)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace clonefs::cli {

// A plain non-negative integer that fits `max`, or nullopt.
std::optional<uint64_t> ParseCount(const std::string& text, uint64_t max);

// A duration in milliseconds: "30", "30s", "2.5" / "2.5s" (seconds, at most
// three decimals), "500ms"; nullopt if `text` is none of these or exceeds a
// day.
std::optional<uint64_t> ParseSeconds(const std::string& text);

}  // namespace clonefs::cli
