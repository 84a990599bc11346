// control::ParseDecimal (message values, JSON integers). Input: 8 bytes of
// `max` (little-endian), then the text.
// Checks: accepted exactly when the text is decimal digits whose value is at
// most `max`, and then with that value.
#include "control/units.h"
#include "decimal_oracle.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {

void FuzzOne(std::string_view input) {
  const uint64_t max = TakeU64(&input, UINT64_MAX);
  Result<uint64_t> v = control::ParseDecimal(input, max);
  const std::optional<uint64_t> want = DecimalValue(input, max);
  FUZZ_CHECK(v.ok() == want.has_value());
  if (v.ok()) FUZZ_CHECK(*v == *want);
}

}  // namespace clonefs::fuzz
