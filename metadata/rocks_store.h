// RocksStore: the RocksDB side of Metadata. The only file that talks to
// RocksDB's database API; RocksDB types stay in rocks_store.cc.
//
// Layout (docs/metadata-format.md): the default column family holds the
// superblock under kSuperblockKey; the "regions" column family holds bitmap
// chunks (chunk_codec.h). Every write is synced (WriteOptions::sync).
//
// DAMAGE: before RocksDB opens the store, the framing of every WAL and of the
// MANIFEST is checked (log_check.h); every table file is checked when
// RocksDB opens it, by the TableCheckFs the store runs on (table_check_fs.h).
// Either is refused with Corruption naming the file and the offset.
//
// Memory is bounded by StoreOptions: one LRU block cache shared by both column
// families (index and filter blocks are charged to it too), memtables limited
// by write_buffer_bytes (two per column family at most, and a database-wide
// cap of twice write_buffer_bytes), at most kMaxOpenFiles table readers.
//
// FAILED WRITES: once a write fails (ENOSPC, EIO), RocksDB's file writers
// that saw the error must never be used again (its assertions abort the
// process otherwise), so the store makes no further write of any kind:
// PutSuperblock, PutRecord and BatchCommit return the refusal at once, and
// the destructor closes without flushing (the WAL is replayed at the next
// Open, as after a crash). Reads keep working and show the last successful
// write (a failed write never reaches the memtable). Reopen the store to
// write again. RocksDB's own automatic error recovery is off, and its info
// log (rocks_info_log.h) drops lines it cannot write.
//
// THREAD SAFETY: not thread-safe, except GetRecord/PutRecord and
// write_error() (see there); Metadata calls the rest from the commit side
// only.
// LIFECYCLE: Open() -> use -> destroy (closes the database).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace rocksdb {
class Status;
}

namespace clonefs::metadata {

class FaultInjectionFs;

inline constexpr std::string_view kRegionsColumnFamily = "regions";
// Key of the settings record (Metadata::PutSettings) in the default family.
inline constexpr std::string_view kSettingsKey = "settings";
inline constexpr int kMaxOpenFiles = 64;

struct StoreOptions {
  std::string dir;
  bool read_only = false;
  // Create the database and its column families if missing.
  bool create = false;
  uint64_t block_cache_bytes = 8 << 20;
  uint64_t write_buffer_bytes = 4 << 20;
  std::shared_ptr<FaultInjectionFs> fault_fs;  // nullptr: the real filesystem
};

class RocksStore {
 public:
  // Opens (or with `create`, creates) the store. REQUIRES: when not creating,
  // the store has exactly the default and "regions" column families (check
  // with ListColumnFamilies first). Errors: as RocksDB's, converted (a held
  // RocksDB LOCK becomes Busy).
  static Result<std::unique_ptr<RocksStore>> Open(const StoreOptions& options);
  // Column family names of the store in options.dir.
  static Result<std::vector<std::string>> ListColumnFamilies(const StoreOptions& options);
  ~RocksStore();

  // The superblock value, or nullopt if the key is absent.
  Result<std::optional<std::string>> GetSuperblock();
  // Writes the superblock with sync. Errors: as RocksDB's (NoSpace for
  // ENOSPC); after a failed write, NoSpace or Failed without any I/O.
  Status PutSuperblock(std::string_view value);
  // A record of the default column family (e.g. kSettingsKey), or nullopt
  // if absent. Thread-safe (RocksDB's Get), also against BatchCommit.
  Result<std::optional<std::string>> GetRecord(std::string_view key);
  // Writes a record of the default column family with sync, outside the
  // commit batch. Thread-safe (RocksDB's Put), also against BatchCommit
  // (writes are serialized). Errors: as PutSuperblock.
  Status PutRecord(std::string_view key, std::string_view value);
  // True if neither column family holds any key.
  Result<bool> IsEmpty();
  // Calls fn(key, value) for every chunk in key order; stops at the first
  // non-OK status from fn and returns it.
  Status ForEachChunk(const std::function<Status(std::string_view, std::string_view)>& fn);

  // The commit batch: accumulate, then write atomically with sync.
  void BatchPut(uint64_t chunk, std::string_view value);
  void BatchDelete(uint64_t chunk);
  // Writes the batch (one WriteBatch, sync=true) and empties it, either way.
  // Errors: as PutSuperblock.
  Status BatchCommit();
  size_t BatchBytes() const;

  // The first write that failed, or OK. Once set, it stays for the life of
  // this object. Thread-safe.
  Status write_error() const;

 private:
  struct Rep;
  explicit RocksStore(std::unique_ptr<Rep> rep);
  Status WriteRefused() const;
  // Converts a write's result; a failure becomes write_error().
  Status Wrote(const rocksdb::Status& s, const std::string& what);
  std::unique_ptr<Rep> rep_;
};

}  // namespace clonefs::metadata
