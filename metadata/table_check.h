// TableCheck: verifies, without RocksDB, the parts of a RocksDB table file
// (*.sst) that RocksDB reads when it opens the table, so that damage there is
// refused with a Corruption status instead of reaching RocksDB's parsers.
//
// Why: RocksDB 7.8.3 parses a table's properties block before it verifies
// that block's checksum (table/meta_blocks.cc, to allow for ingested files);
// Debian's build keeps assert(), so a damaged properties block can abort the
// process (DataBlockHashIndex::Initialize) where it should return
// Corruption. Every other block RocksDB verifies before it parses; checking
// the ones it reads at open here as well costs a few kilobytes per table.
//
// The format (RocksDB's block-based table as 7.8.3 writes it, format_version
// 5): blocks, each followed by a 5-byte trailer (compression type, then a
// 32-bit checksum of the block and that type byte); then a 53-byte footer:
// checksum type (1 byte), the metaindex and index block handles (varint64
// offset and size each) zero-padded to 40 bytes, format_version (fixed32),
// magic number (fixed64). The metaindex block (uncompressed, keys
// prefix-compressed, a restart array at its end) maps names to the handles
// of the meta blocks (properties, filter, ...). Checked, in order:
//   - the footer: length, magic number, format version 5 (RocksDB's default,
//     which clonefs keeps), checksum type CRC32c or XXH3 (RocksDB's default;
//     none, which would let RocksDB parse unverified blocks, is refused),
//     handles that decode and lie inside the table before the footer, zero
//     padding;
//   - the checksum of the metaindex block, its entries, and the checksum of
//     every meta block it names (the properties block among them);
//   - the checksum of the index block.
// Data blocks are not read here: RocksDB verifies each one's checksum before
// it parses it, and reads them only when the bitmap is read.
//
// Refused: Corruption "NAME is damaged at offset N: REASON", N being the
// offset of the damaged block (or footer field). A read error: its status.
//
// THREAD SAFETY: pure function of what `read` returns.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/result.h"

namespace clonefs::metadata {

// Reads exactly n bytes at offset into *out; fewer is an error.
using ReadAtFn = std::function<Status(uint64_t offset, size_t n, std::string* out)>;

// A block whose checksum CheckTable verified. `size` excludes the trailer.
struct TableBlock {
  std::string what;  // "metaindex", "index", or the meta block's name
  uint64_t offset = 0;
  uint64_t size = 0;
};

// Checks the table `name` (used in messages only) of file_size bytes as
// above. On success, the blocks it verified (footer order: metaindex, the
// meta blocks in the metaindex's order, index).
Result<std::vector<TableBlock>> CheckTable(const ReadAtFn& read, uint64_t file_size,
                                           const std::string& name);

// Bytes at the end of every table this check accepts (format_version >= 1).
inline constexpr uint64_t kTableFooterSize = 53;

}  // namespace clonefs::metadata
