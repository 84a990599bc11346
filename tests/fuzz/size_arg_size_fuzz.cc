// cli::ParseSize (--region-size, --rate and other sizes on the command line).
// Checks: accepted only as digits and a suffix of size_arg.h (B, K/KB/KiB ..
// P/PB/PiB as powers of 1024, any case, optional "/s"), giving exactly
// digits << shift, accepted whenever that fits in 64 bits; the value written
// in bytes, and in its unit, parses to itself.
#include <cctype>
#include <string>

#include "decimal_oracle.h"
#include "fuzz_check.h"
#include "size_arg.h"

namespace clonefs::fuzz {
namespace {

// The shift of a lower-case suffix, or -1.
int Shift(const std::string& suffix) {
  if (suffix.empty() || suffix == "b") return 0;
  static const char kUnits[] = "kmgtp";
  for (int i = 0; i < 5; ++i) {
    const std::string u(1, kUnits[i]);
    if (suffix == u || suffix == u + "b" || suffix == u + "ib") return 10 * (i + 1);
  }
  return -1;
}

}  // namespace

void FuzzOne(std::string_view input) {
  const std::string text(input);
  std::optional<uint64_t> v = cli::ParseSize(text);
  std::string s;
  for (char c : input) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "/s") == 0) s.resize(s.size() - 2);
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  const int shift = Shift(s.substr(digits));
  std::optional<uint64_t> n =
      shift < 0 ? std::nullopt
                : DecimalValue(std::string_view(s).substr(0, digits), UINT64_MAX >> shift);
  FUZZ_CHECK(v.has_value() == n.has_value());
  if (!v) return;
  FUZZ_CHECK(*v == *n << shift);
  FUZZ_CHECK(cli::ParseSize(std::to_string(*v)) == v);
  if (shift > 0)
    FUZZ_CHECK(cli::ParseSize(std::to_string(*n) + "KMGTP"[shift / 10 - 1] + "iB/s") == v);
}

}  // namespace clonefs::fuzz
