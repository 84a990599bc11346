// TableCheckFs: a rocksdb::FileSystem wrapper under every metadata store
// (rocks_store.cc) that checks a table file (*.sst) with CheckTable
// (table_check.h) each time RocksDB opens one for reading, and refuses the
// open with IOStatus::Corruption if the check fails, so RocksDB never parses
// a damaged table's footer, metaindex, properties or index block.
//
// Why here rather than before DB::Open, as for the logs (log_check.h): only
// the tables the MANIFEST lists are live, and RocksDB opens exactly those.
// A table an interrupted flush or compaction left behind (cut short, never
// recorded) is not live and RocksDB deletes it; checked before DB::Open, it
// would be refused as damaged. RocksDB opens a table when it recovers the
// store (DB::Open loads the table readers), and again whenever its table
// cache dropped the reader, so the check also runs on those later opens and
// on the tables RocksDB itself has just written (a few kilobytes each).
//
// RocksDB passes the refusal on, but wraps it (during recovery it appends
// "in file .../MANIFEST-N", which points at the wrong file), so the first
// refusal is also kept for the store to report as it is (first_refusal()).
//
// Every other call goes to the wrapped file system unchanged. The check
// reads through the file RocksDB gets, at unaligned offsets: REQUIRES
// RocksDB's use_direct_reads off (clonefs never turns it on).
//
// THREAD SAFETY: thread-safe (RocksDB opens tables from its background
// threads too); mu_ guards the one member.
#pragma once

#include <rocksdb/file_system.h>

#include <memory>
#include <mutex>
#include <string>

#include "base/status.h"

namespace clonefs::metadata {

class TableCheckFs : public rocksdb::FileSystemWrapper {
 public:
  explicit TableCheckFs(std::shared_ptr<rocksdb::FileSystem> base);

  static const char* kClassName() { return "ClonefsTableCheckFs"; }
  const char* Name() const override { return kClassName(); }

  // Opens the file; for a *.sst, checks it first. Errors: the wrapped file
  // system's; Corruption ("NNNNNN.sst is damaged at offset N: ...") for a
  // table that fails the check; the read error if it cannot be read.
  rocksdb::IOStatus NewRandomAccessFile(const std::string& fname, const rocksdb::FileOptions& opts,
                                        std::unique_ptr<rocksdb::FSRandomAccessFile>* result,
                                        rocksdb::IODebugContext* dbg) override;

  // The first table this wrapper refused (Corruption, or the read error), or
  // OK if none.
  Status first_refusal() const;

 private:
  mutable std::mutex mu_;
  Status first_refusal_;  // GUARDED_BY(mu_)
};

}  // namespace clonefs::metadata
