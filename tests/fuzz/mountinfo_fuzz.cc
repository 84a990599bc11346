// /proc/self/mountinfo (ParseMountInfo, ParseMountInfoLine, FuseUserId):
// the kernel writes it, but mount points and sources are names any user can
// choose (escaped as \ooo), and the control client and the daemon decide
// from it whether a path is a clonefs mount, and whose.
// Checks: ParseMountInfo keeps exactly the lines ParseMountInfoLine accepts,
// in order and with the same fields; a parsed line's fstype is never empty;
// and FuseUserId answers the first user_id= option that is 1 to 10
// decimal digits within 32 bits (others are skipped).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/mountinfo.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {
namespace {

bool Same(const MountInfoLine& a, const MountInfoLine& b) {
  return a.mount_point == b.mount_point && a.fstype == b.fstype && a.source == b.source &&
         a.super_options == b.super_options;
}

// The user_id= option by the rule FuseUserId documents, independently.
std::optional<uint32_t> ExpectedUserId(std::string_view opts) {
  size_t pos = 0;
  while (pos <= opts.size()) {
    size_t comma = opts.find(',', pos);
    if (comma == std::string_view::npos) comma = opts.size();
    std::string_view o = opts.substr(pos, comma - pos);
    if (o.substr(0, 8) == "user_id=") {
      std::string_view v = o.substr(8);
      uint64_t n = 0;
      bool ok = !v.empty() && v.size() <= 10;
      for (char c : v) {
        ok = ok && c >= '0' && c <= '9';
        if (ok) n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (ok && n <= UINT32_MAX) return static_cast<uint32_t>(n);
    }
    pos = comma + 1;
  }
  return std::nullopt;
}

}  // namespace

void FuzzOne(std::string_view input) {
  const std::vector<MountInfoLine> all = ParseMountInfo(input);
  size_t kept = 0, pos = 0;
  while (pos < input.size()) {
    size_t nl = input.find('\n', pos);
    if (nl == std::string_view::npos) nl = input.size();
    Result<MountInfoLine> one = ParseMountInfoLine(input.substr(pos, nl - pos));
    if (one.ok()) {
      FUZZ_CHECK(kept < all.size());
      FUZZ_CHECK(Same(*one, all[kept]));
      FUZZ_CHECK(!one->fstype.empty());
      ++kept;
    }
    pos = nl + 1;
  }
  FUZZ_CHECK(kept == all.size());
  FUZZ_CHECK(FuseUserId(input) == ExpectedUserId(input));
}

}  // namespace clonefs::fuzz
