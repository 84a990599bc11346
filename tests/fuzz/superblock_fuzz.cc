// The superblock as read from a damaged or foreign metadata store
// (DecodeSuperblock).
// Checks: a superblock that decodes is consistent (region size allowed,
// image size > 0, nr_regions matching both), and re-encoding it
// (EncodeSuperblock) gives back exactly the input bytes: nothing was read
// that the record does not say.
#include "fuzz_check.h"
#include "metadata/superblock_codec.h"

namespace clonefs::fuzz {

void FuzzOne(std::string_view input) {
  Result<metadata::Superblock> sb = metadata::DecodeSuperblock(input);
  if (!sb.ok()) return;
  FUZZ_CHECK(metadata::ValidateRegionSize(sb->region_size).ok());
  FUZZ_CHECK(sb->image_size > 0);
  FUZZ_CHECK(sb->nr_regions == metadata::NrRegionsFor(sb->image_size, sb->region_size));
  FUZZ_CHECK(sb->format_version >= 1 && sb->format_version <= metadata::kFormatVersion);
  FUZZ_CHECK(metadata::EncodeSuperblock(*sb) == input);
}

}  // namespace clonefs::fuzz
