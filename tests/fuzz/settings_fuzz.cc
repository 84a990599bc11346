// The stored settings record as read from a damaged metadata store
// (DecodeSettings).
// Checks: decoded settings re-encode (EncodeSettings) to a record that
// decodes to the same settings, and their text pairs (ToPairs, the status
// JSON's "settings") read back (FromPairs) to the same settings.
#include "clone/settings.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {

void FuzzOne(std::string_view input) {
  Result<clone::Settings> s = clone::DecodeSettings(input);
  if (!s.ok()) return;
  Result<clone::Settings> again = clone::DecodeSettings(clone::EncodeSettings(*s));
  FUZZ_CHECK(again.ok() && *again == *s);
  Result<clone::Settings> pairs = clone::FromPairs(clone::ToPairs(*s));
  FUZZ_CHECK(pairs.ok() && *pairs == *s);
  (void)clone::DescribeSettings(*s);
}

}  // namespace clonefs::fuzz
