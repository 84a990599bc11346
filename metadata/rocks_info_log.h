// RocksInfoLog: RocksDB's info log ("LOG" in the metadata directory), written
// with plain write(2) calls whose failures are ignored.
//
// Why not RocksDB's own: its file logger writes through a WritableFileWriter,
// and once one write fails (ENOSPC on a full metadata file system) every later
// call on that writer fails an assert() in RocksDB builds that keep assertions
// (Debian's librocksdb 7.8.3 does): the next log line, from any RocksDB
// thread, aborted the daemon. Here a line that cannot be written is dropped.
//
// Size: when LOG would exceed kMaxBytes it is renamed to LOG.old (replacing
// the previous one), so the info log never takes more than 2 * kMaxBytes.
//
// THREAD SAFETY: thread-safe (RocksDB logs from its own threads).
// LIFECYCLE: Open() -> handed to rocksdb::DBOptions::info_log -> released
// when the last database using it is closed.
#pragma once

#include <rocksdb/env.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace clonefs::metadata {

class RocksInfoLog : public rocksdb::Logger {
 public:
  static constexpr uint64_t kMaxBytes = 1 << 20;

  // Appends to DIR/LOG. Never fails: while LOG cannot be opened (no
  // directory yet, a read-only one), each line tries again and is dropped.
  static std::shared_ptr<RocksInfoLog> Open(const std::string& dir);
  ~RocksInfoLog() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;

 private:
  explicit RocksInfoLog(std::string dir);
  void OpenFile(bool truncate);  // REQUIRES: mu_ held

  const std::string dir_;
  std::mutex mu_;
  int fd_ = -1;        // GUARDED_BY(mu_); -1: dropping lines
  uint64_t size_ = 0;  // GUARDED_BY(mu_); bytes in LOG
};

}  // namespace clonefs::metadata
