#include "base/byte_size.h"

#include <string>

namespace clonefs {
namespace {

constexpr char kAccepted[] =
    "use a whole number of bytes with an optional unit K, M, G, T or P (powers of 1024; "
    "KB, KiB, MB, MiB, ... mean the same), e.g. 4096, 64K, 50M";

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

// log2 of the unit's multiplier, or -1 if `unit` is not one.
int UnitShift(std::string_view unit) {
  if (unit.empty() || IEquals(unit, "b")) return 0;
  static constexpr char kPrefixes[] = "kmgtp";
  int shift = -1;
  for (int i = 0; kPrefixes[i] != '\0'; i++) {
    if (Lower(unit[0]) == kPrefixes[i]) shift = 10 * (i + 1);
  }
  if (shift < 0) return -1;
  const std::string_view rest = unit.substr(1);
  if (rest.empty() || IEquals(rest, "b") || IEquals(rest, "ib")) return shift;
  return -1;
}

Status Bad(std::string_view text, const std::string& why) {
  return Status::InvalidArgument("'" + std::string(text) + "' " + why + "; " + kAccepted);
}

// Parses `body`, a prefix of `text` (what the user wrote, for messages).
Result<uint64_t> ParseBody(std::string_view text, std::string_view body, const char* what) {
  if (text.empty()) return Status::InvalidArgument(std::string("empty ") + what + "; " + kAccepted);
  size_t digits = 0;
  while (digits < body.size() && body[digits] >= '0' && body[digits] <= '9') digits++;
  if (digits == 0) return Bad(text, std::string("is not a ") + what);
  const std::string_view unit = body.substr(digits);
  if (!unit.empty() && unit[0] == '.') {
    return Bad(text, "has a fraction; give whole bytes in a smaller unit (1536K, not 1.5M)");
  }
  const int shift = UnitShift(unit);
  if (shift < 0) return Bad(text, "has an unknown unit '" + std::string(unit) + "'");
  const uint64_t max = UINT64_MAX >> shift;
  uint64_t n = 0;
  for (size_t i = 0; i < digits; i++) {
    const uint64_t d = static_cast<uint64_t>(body[i] - '0');
    if (n > (max - d) / 10) return Bad(text, "is too large (more than 2^64-1 bytes)");
    n = n * 10 + d;
  }
  return n << shift;
}

}  // namespace

Result<uint64_t> ParseSize(std::string_view text) { return ParseBody(text, text, "size"); }

Result<uint64_t> ParseRate(std::string_view text) {
  const bool per_s = text.size() >= 2 && text[text.size() - 2] == '/' && Lower(text.back()) == 's';
  return ParseBody(text, per_s ? text.substr(0, text.size() - 2) : text, "rate");
}

}  // namespace clonefs
