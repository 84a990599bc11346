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

size_t NamedOffset(const std::string& msg) {
  const std::string at = kName + " is damaged at offset ";
  if (msg.rfind(at, 0) != 0) return std::string::npos;
  size_t i = at.size(), off = 0;
  if (i >= msg.size() || msg[i] < '0' || msg[i] > '9') return std::string::npos;
  for (; i < msg.size() && msg[i] >= '0' && msg[i] <= '9'; ++i) off = off * 10 + (msg[i] - '0');
  return i < msg.size() && msg[i] == ':' ? off : std::string::npos;
}

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
    const size_t off = NamedOffset(r.status().message());
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
