// The framing of a RocksDB log-format file (a write-ahead log or the
// MANIFEST) as found in a damaged metadata store (CheckLogFraming, which
// runs before RocksDB replays the file).
// Checks: the answer is OK or Corruption naming the file and an offset
// inside it; and a file the check accepts is accepted when cut at any block
// boundary (a record never crosses one, so such a cut leaves only whole
// records: a file system that lost the tail of a log must still open).
#include <string>

#include "fuzz_check.h"
#include "metadata/log_check.h"

namespace clonefs::fuzz {
namespace {

constexpr size_t kBlock = 32768;
const std::string kName = "000007.log";

}  // namespace

void FuzzOne(std::string_view input) {
  const Status s = metadata::CheckLogFraming(input, kName);
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == Status::Code::kCorruption);
    const size_t off = DamagedOffset(s.message(), kName);
    FUZZ_CHECK(off != std::string::npos);
    FUZZ_CHECK(off < input.size());
    return;
  }
  for (size_t cut = kBlock; cut < input.size(); cut += kBlock) {
    FUZZ_CHECK(metadata::CheckLogFraming(input.substr(0, cut), kName).ok());
  }
}

}  // namespace clonefs::fuzz
