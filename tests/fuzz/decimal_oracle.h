// An independent reading of a decimal string, for the size parsers' targets:
// the value of `digits` (all '0'..'9', non-empty) if it is at most `max`.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace clonefs::fuzz {

inline bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

inline std::optional<uint64_t> DecimalValue(std::string_view digits, uint64_t max) {
  if (!AllDigits(digits)) return std::nullopt;
  unsigned __int128 v = 0;
  for (char c : digits) {
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > max) return std::nullopt;
  }
  return static_cast<uint64_t>(v);
}

// Reads a little-endian u64 from the first 8 bytes of `in` and removes them;
// `fallback` if `in` is shorter.
inline uint64_t TakeU64(std::string_view* in, uint64_t fallback) {
  if (in->size() < 8) return fallback;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v |= static_cast<uint64_t>(static_cast<unsigned char>((*in)[i])) << (8 * i);
  in->remove_prefix(8);
  return v;
}

}  // namespace clonefs::fuzz
