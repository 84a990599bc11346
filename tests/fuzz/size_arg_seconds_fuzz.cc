// cli::ParseSeconds (--source-timeout). Checks: a parsed duration is at most
// a day, and written back as "<ms>ms" and as seconds with three decimals it
// parses to itself.
#include <cstdio>
#include <string>

#include "fuzz_check.h"
#include "size_arg.h"

namespace clonefs::fuzz {

void FuzzOne(std::string_view input) {
  std::optional<uint64_t> ms = cli::ParseSeconds(std::string(input));
  if (!ms) return;
  FUZZ_CHECK(*ms <= 86'400'000);
  FUZZ_CHECK(cli::ParseSeconds(std::to_string(*ms) + "ms") == ms);
  char s[64];
  std::snprintf(s, sizeof s, "%llu.%03llus", static_cast<unsigned long long>(*ms / 1000),
                static_cast<unsigned long long>(*ms % 1000));
  FUZZ_CHECK(cli::ParseSeconds(s) == ms);
}

}  // namespace clonefs::fuzz
