// A RocksDB table file (*.sst) as found in a damaged metadata store
// (CheckTable, which runs before RocksDB opens the table).
// Checks: the answer is a list of verified blocks or Corruption naming the
// file and an offset inside it; the check never asks for a byte beyond the
// file (it validates a block's handle before reading it); the blocks it
// verified lie, with their 5-byte trailers, before the 53-byte footer, the
// metaindex first and the index last.
#include <string>

#include "fuzz_check.h"
#include "metadata/table_check.h"

namespace clonefs::fuzz {
namespace {

const std::string kName = "000009.sst";
constexpr uint64_t kFooter = 53, kTrailer = 5;

}  // namespace

void FuzzOne(std::string_view input) {
  const uint64_t size = input.size();
  auto read = [&](uint64_t offset, size_t n, std::string* out) -> Status {
    FUZZ_CHECK(offset <= size && n <= size - offset);  // never beyond the file
    out->assign(input.substr(offset, n));
    return Status::OK();
  };
  Result<std::vector<metadata::TableBlock>> r = metadata::CheckTable(read, size, kName);
  if (!r.ok()) {
    FUZZ_CHECK(r.status().code() == Status::Code::kCorruption);
    const size_t off = DamagedOffset(r.status().message(), kName);
    FUZZ_CHECK(off != std::string::npos);
    FUZZ_CHECK(off < size || size == 0);
    return;
  }
  FUZZ_CHECK(size >= kFooter);
  FUZZ_CHECK(r->size() >= 2);
  FUZZ_CHECK(r->front().what == "metaindex");
  FUZZ_CHECK(r->back().what == "index");
  for (const metadata::TableBlock& b : *r) {
    FUZZ_CHECK(b.size <= size - kFooter);
    FUZZ_CHECK(b.offset <= size - kFooter - b.size);
    FUZZ_CHECK(size - kFooter - b.size - b.offset >= kTrailer);
  }
}

}  // namespace clonefs::fuzz
