// LogCheck: verifies the framing of RocksDB's log-format files (the
// write-ahead logs "*.log" and the MANIFEST) before RocksDB replays them, so
// that damage is refused rather than taken for the end of the log.
//
// Why: RocksDB (kTolerateCorruptedTailRecords, rocks_store.cc) refuses a
// record that fails its checksum, but a record whose length field was
// damaged so that it reaches past the end of the file looks exactly like the
// torn last record a crash leaves: RocksDB drops it and every record after it
// and opens. Every clonefs commit is a synced WAL record, so those records
// are committed transactions (SPEC §5). This check tells the two apart: a
// torn last record has nothing valid after it.
//
// The log format (RocksDB db/log_format.h, unchanged since LevelDB): 32 KiB
// blocks of physical records, each a 7-byte header (masked CRC-32C of type
// and payload, 16-bit length, type) and its payload; a record never crosses
// a block; a block's last 0-6 bytes may be padding. clonefs never enables
// the variants with other headers (recycled logs, WAL compression); a record
// type this check does not know ends its check of that file and leaves the
// rest to RocksDB.
//
// Accepted, as after a crash: a last header cut short, a last record cut
// short (no prefix of what remains matches its checksum, and no valid record
// follows it), a zero-filled tail (a zero header
// skips the rest of its block, as RocksDB does). Refused (Corruption naming
// the file, the offset and the reason): a checksum mismatch, a length that
// reaches past its block, a record cut short that is whole under a
// shorter length or that has a valid record after it.
//
// THREAD SAFETY: pure function.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace clonefs::metadata {

// Checks `bytes`, the whole content of the log-format file `name` (used in
// the message only). OK, or Corruption as above.
Status CheckLogFraming(std::string_view bytes, const std::string& name);

}  // namespace clonefs::metadata
