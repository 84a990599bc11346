// cli::ParseCount (--hydration-threshold, --threads and other counts on the
// command line). Input: 8 bytes of `max` (little-endian), then the text.
// Checks: accepted exactly when the text is decimal digits whose value is at
// most `max`, and then with that value.
#include <string>

#include "decimal_oracle.h"
#include "fuzz_check.h"
#include "size_arg.h"

namespace clonefs::fuzz {

void FuzzOne(std::string_view input) {
  const uint64_t max = TakeU64(&input, UINT64_MAX);
  std::optional<uint64_t> v = cli::ParseCount(std::string(input), max);
  FUZZ_CHECK(v == DecimalValue(input, max));
}

}  // namespace clonefs::fuzz
