// An access profile file (profile::Parse; `clonefs mount --profile FILE`
// and `clonefs profile show FILE` read any file they are given).
// Checks: a parsed profile keeps the rules of docs/profile-format.md (header
// values are digits; a power-of-two region size; runs non-empty, inside the source and never
// overlapping); its text (Serialize) parses back to the same profile; mapped
// onto a clone's regions (ToRegions) its runs are inside the image, listed
// once each, and cover every byte the profile names.
#include <algorithm>
#include <vector>

#include "fuzz_check.h"
#include "profile/profile.h"

namespace clonefs::fuzz {
namespace {

// ToRegions keeps a bit per region of the image: bounded here so that a
// profile naming a huge source does not just measure memory.
constexpr uint64_t kMaxMappedRegions = 1 << 16;

// The last byte of run `r`, clipped to the source.
uint64_t LastByte(const profile::Profile& p, const RegionRun& r) {
  const uint64_t size = p.source.size;
  return r.end() - 1 == (size - 1) / p.region_size ? size - 1 : r.end() * p.region_size - 1;
}

void CheckMapped(const profile::Profile& p, uint64_t region_size) {
  Result<RegionGeometry> geo = RegionGeometry::Make(p.source.size, region_size);
  if (!geo.ok()) return;
  const bool same = region_size == p.region_size;
  if (!same && geo->nr_regions() > kMaxMappedRegions) return;
  std::vector<RegionRun> mapped = profile::ToRegions(p, *geo);
  for (const RegionRun& r : mapped) {
    FUZZ_CHECK(r.count > 0 && r.first < geo->nr_regions() &&
               r.count <= geo->nr_regions() - r.first);
  }
  if (same) {
    FUZZ_CHECK(mapped == p.runs);
    return;
  }
  std::vector<bool> listed(geo->nr_regions(), false);
  for (const RegionRun& r : mapped) {
    for (uint64_t x = r.first; x < r.end(); ++x) {
      FUZZ_CHECK(!listed[x]);
      listed[x] = true;
    }
  }
  for (const RegionRun& r : p.runs) {
    FUZZ_CHECK(listed[geo->RegionOf(r.first * p.region_size)] &&
               listed[geo->RegionOf(LastByte(p, r))]);
  }
}

}  // namespace

// The value texts of lines 2-6 of an accepted profile: decimal, or hex for
// the fingerprints (docs/profile-format.md), nothing else.
void CheckHeaderDigits(std::string_view input) {
  size_t pos = input.find('\n') + 1;
  for (int line = 2; line <= 6; ++line) {
    const size_t nl = input.find('\n', pos);
    const std::string_view l = input.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
    const std::string_view value = l.substr(l.find(' ') + 1);
    const bool hex = line == 3 || line == 4;
    FUZZ_CHECK(!value.empty());
    for (char c : value) {
      FUZZ_CHECK((c >= '0' && c <= '9') ||
                 (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))));
    }
    pos = nl + 1;
  }
}

void FuzzOne(std::string_view input) {
  Result<profile::Profile> p = profile::Parse(std::string(input));
  if (!p.ok()) return;
  CheckHeaderDigits(input);
  FUZZ_CHECK(p->region_size > 0 && (p->region_size & (p->region_size - 1)) == 0);
  const uint64_t nr = p->source.size == 0 ? 0 : (p->source.size - 1) / p->region_size + 1;
  std::vector<RegionRun> sorted = p->runs;
  std::sort(sorted.begin(), sorted.end(),
            [](const RegionRun& a, const RegionRun& b) { return a.first < b.first; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    FUZZ_CHECK(sorted[i].count > 0 && sorted[i].first < nr &&
               sorted[i].count <= nr - sorted[i].first);
    if (i > 0) FUZZ_CHECK(sorted[i - 1].end() <= sorted[i].first);
  }
  Result<profile::Profile> again = profile::Parse(profile::Serialize(*p));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->source == p->source && again->region_size == p->region_size &&
             again->runs == p->runs);
  if (p->runs.empty()) return;
  CheckMapped(*p, 4096);
  CheckMapped(*p, 64 << 10);
  CheckMapped(*p, p->region_size);
}

}  // namespace clonefs::fuzz
