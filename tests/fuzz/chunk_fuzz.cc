// A bitmap chunk as read from a damaged metadata store (DecodeChunkValue;
// and DecodeChunkKey on the first 8 bytes).
// Input: 2 bytes choosing `valid` (1..kRegionsPerChunk: regions of the chunk
// that exist), then the value.
// Checks: a decoded chunk marks no region at or beyond `valid` and is not
// empty (empty chunks are never stored); its encoding (EncodeChunkValue) is
// no longer than a raw bitmap and decodes to the same bits.
#include <cstring>
#include <vector>

#include "fuzz_check.h"
#include "metadata/chunk_codec.h"

namespace clonefs::fuzz {

void FuzzOne(std::string_view input) {
  using namespace metadata;
  if (input.size() >= 8) {
    Result<uint64_t> key = DecodeChunkKey(input.substr(0, 8));
    FUZZ_CHECK(key.ok() && EncodeChunkKey(*key) == input.substr(0, 8));
  }
  if (input.size() < 2) return;
  const uint64_t valid = (static_cast<uint64_t>(static_cast<unsigned char>(input[0])) << 8 |
                          static_cast<unsigned char>(input[1])) %
                             kRegionsPerChunk +
                         1;
  input.remove_prefix(2);
  std::vector<uint64_t> words(kWordsPerChunk);
  if (!DecodeChunkValue(input, valid, words.data()).ok()) return;
  FUZZ_CHECK(!ChunkIsZero(words.data()));
  for (uint64_t r = valid; r < kRegionsPerChunk; ++r)
    FUZZ_CHECK((words[r / 64] >> (r % 64) & 1) == 0);
  const std::string encoded = EncodeChunkValue(words.data(), valid);
  FUZZ_CHECK(encoded.size() <= 1 + kChunkBytes);
  std::vector<uint64_t> again(kWordsPerChunk);
  FUZZ_CHECK(DecodeChunkValue(encoded, valid, again.data()).ok());
  FUZZ_CHECK(again == words);
}

}  // namespace clonefs::fuzz
