// control::ParseByteSize (`clonefs message rate`, the daemon's rate message).
// Checks: accepted only as digits and a suffix of the documented table,
// giving exactly digits x multiplier (no overflow), accepted whenever that
// fits; and the value written in plain bytes parses to itself.
#include <cctype>
#include <string>

#include "control/units.h"
#include "decimal_oracle.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {
namespace {

// units.h: K/KiB M/MiB G/GiB T/TiB binary, KB MB GB TB decimal, B bytes.
uint64_t Multiplier(std::string suffix) {
  for (char& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.empty() || suffix == "B") return 1;
  static const char* kBinary[] = {"K", "M", "G", "T"};
  static const char* kBinaryI[] = {"KIB", "MIB", "GIB", "TIB"};
  static const char* kDecimal[] = {"KB", "MB", "GB", "TB"};
  uint64_t bin = 1, dec = 1;
  for (int i = 0; i < 4; ++i) {
    bin <<= 10;
    dec *= 1000;
    if (suffix == kBinary[i] || suffix == kBinaryI[i]) return bin;
    if (suffix == kDecimal[i]) return dec;
  }
  return 0;
}

}  // namespace

void FuzzOne(std::string_view input) {
  Result<uint64_t> v = control::ParseByteSize(input);
  size_t digits = 0;
  while (digits < input.size() && input[digits] >= '0' && input[digits] <= '9') ++digits;
  const uint64_t mult = Multiplier(std::string(input.substr(digits)));
  std::optional<uint64_t> n =
      mult == 0 ? std::nullopt : DecimalValue(input.substr(0, digits), UINT64_MAX / mult);
  FUZZ_CHECK(v.ok() == n.has_value());
  if (!v.ok()) return;
  FUZZ_CHECK(*v == *n * mult);
  Result<uint64_t> plain = control::ParseByteSize(std::to_string(*v));
  FUZZ_CHECK(plain.ok() && *plain == *v);
}

}  // namespace clonefs::fuzz
