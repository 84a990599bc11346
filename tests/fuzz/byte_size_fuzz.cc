// ParseSize and ParseRate (base/byte_size.h): every size and rate of the
// command line, the control protocol (`message rate`) and stored settings.
// Built twice: byte_size (ParseSize) and byte_rate (CLONEFS_FUZZ_RATE:
// ParseRate). Checks: accepted exactly when the input is digits and a unit
// of the documented table (all powers of 1024, any case; a rate may end in
// "/s"), with the value digits x multiplier when that fits in 64 bits; and
// the value written in plain bytes, or with its largest exact unit, parses
// back to itself.
#include <cctype>
#include <string>

#include "base/byte_size.h"
#include "decimal_oracle.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {
namespace {

#ifdef CLONEFS_FUZZ_RATE
constexpr bool kRate = true;
Result<uint64_t> Parse(std::string_view s) { return ParseRate(s); }
#else
constexpr bool kRate = false;
Result<uint64_t> Parse(std::string_view s) { return ParseSize(s); }
#endif

// 0 if `suffix` is not a unit of the table.
uint64_t Multiplier(std::string suffix) {
  for (char& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.empty() || suffix == "B") return 1;
  const std::string letters = "KMGTP";
  for (size_t i = 0; i < letters.size(); ++i) {
    const std::string l(1, letters[i]);
    if (suffix == l || suffix == l + "B" || suffix == l + "IB") return uint64_t{1} << (10 * (i + 1));
  }
  return 0;
}

}  // namespace

void FuzzOne(std::string_view input) {
  Result<uint64_t> v = Parse(input);
  std::string_view body = input;
  if (kRate && body.size() >= 2 && body[body.size() - 2] == '/' &&
      (body.back() == 's' || body.back() == 'S')) {
    body.remove_suffix(2);
  }
  size_t digits = 0;
  while (digits < body.size() && body[digits] >= '0' && body[digits] <= '9') ++digits;
  const uint64_t mult = Multiplier(std::string(body.substr(digits)));
  std::optional<uint64_t> n =
      mult == 0 ? std::nullopt : DecimalValue(body.substr(0, digits), UINT64_MAX / mult);
  FUZZ_CHECK(v.ok() == n.has_value());
  if (!v.ok()) {
    FUZZ_CHECK(!v.status().message().empty());
    return;
  }
  FUZZ_CHECK(*v == *n * mult);
  Result<uint64_t> plain = Parse(std::to_string(*v));
  FUZZ_CHECK(plain.ok() && *plain == *v);
  if (*v != 0) {
    int shift = 0;
    while (shift < 50 && (*v >> (shift + 10)) << (shift + 10) == *v) shift += 10;
    if (shift > 0) {
      Result<uint64_t> unit =
          Parse(std::to_string(*v >> shift) + "KMGTP"[shift / 10 - 1] + (kRate ? "iB/s" : "iB"));
      FUZZ_CHECK(unit.ok() && *unit == *v);
    }
  }
}

}  // namespace clonefs::fuzz
