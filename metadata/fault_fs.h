// FaultInjectionFs: test support. A rocksdb::FileSystem that models power
// loss and I/O failures under the metadata store (TESTING §2; the model is
// LevelDB's fault-injection Env and RocksDB's FaultInjectionTestFS).
// Route a store through it with MetadataOptions::fault_fs.
//
// POWER LOSS MODEL
//   Writes go through to the real files at once (so every reader sees them,
//   as with a page cache), and the wrapper remembers, per file, the length
//   that was last made durable by Sync/Fsync of that file. It also remembers,
//   per directory, the files created since the directory was last fsynced.
//   DropUnsyncedData() then produces one state a real crash could leave:
//     - files created since their directory's last fsync vanish;
//     - every other tracked file is cut back to its last synced length.
//   Simplifications (each still a state a crash may produce): a rename is
//   treated as durable when made, except that a new, never-dir-synced file
//   renamed over a name that did not durably exist stays "new"; deletions are
//   durable when made; files opened with NewRandomRWFile are not tracked
//   (RocksDB does not use them for this store). Files this wrapper never saw
//   being written are considered durable.
//
// FAILURES
//   SetFailWrites(true): creating/reopening writable files, Append,
//   PositionedAppend and RenameFile fail with an IOError.
//   SetFailSyncs(true): file Sync/Fsync and directory Fsync fail.
//   SetNoSpace(true): a full file system. Append and PositionedAppend fail
//   with IOStatus::NoSpace (RocksDB's form of ENOSPC); creating, renaming,
//   syncing and deleting files still work, as on a full tmpfs or ext4 where
//   only new data blocks are refused.
//   Injected failures change nothing on disk.
//
// THREAD SAFETY: all methods are thread-safe (RocksDB calls the file methods
// from its own threads). REQUIRES for DropUnsyncedData: no database is open
// on the files (destroy the Metadata first), as after a real power cut.
#pragma once

#include <rocksdb/file_system.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

namespace clonefs::metadata {

class FaultInjectionFs : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultInjectionFs(
      std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());

  static const char* kClassName() { return "ClonefsFaultInjectionFs"; }
  const char* Name() const override { return kClassName(); }

  void SetFailWrites(bool fail) { fail_writes_.store(fail); }
  void SetFailSyncs(bool fail) { fail_syncs_.store(fail); }
  void SetNoSpace(bool full) { no_space_.store(full); }
  // Number of operations failed on purpose so far.
  uint64_t InjectedFailures() const { return injected_.load(); }

  // Simulates a power cut (see the model above). Returns what was lost, for
  // test diagnostics.
  struct DropStats {
    uint64_t bytes_dropped = 0;  // unsynced tails plus the contents of removed files
    uint64_t files_removed = 0;
  };
  DropStats DropUnsyncedData();
  // Bytes written but not yet synced, over all tracked files.
  uint64_t UnsyncedBytes() const;

  // --- rocksdb::FileSystem overrides ---
  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& d, const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& f, const rocksdb::IOOptions& o,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& s, const std::string& t,
                               const rocksdb::IOOptions& o, rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& f, size_t size, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override;

  // --- called by the file wrappers ---
  rocksdb::IOStatus CheckWrite();
  // CheckWrite, then the NoSpace injection: for calls that add data.
  rocksdb::IOStatus CheckAppend();
  rocksdb::IOStatus CheckSync();
  void OnWrite(const std::string& f, uint64_t new_end);
  void OnSync(const std::string& f);
  void OnTruncate(const std::string& f, uint64_t size);
  void OnDirSync(const std::string& d);

 private:
  struct FileState {
    uint64_t size = 0;    // bytes written
    uint64_t synced = 0;  // bytes durable
  };
  static std::string DirOf(const std::string& f);
  static std::string Norm(std::string p);

  std::atomic<bool> fail_writes_{false};
  std::atomic<bool> fail_syncs_{false};
  std::atomic<bool> no_space_{false};
  std::atomic<uint64_t> injected_{0};
  mutable std::mutex mu_;
  std::map<std::string, FileState> files_;                 // GUARDED_BY(mu_)
  std::map<std::string, std::set<std::string>> new_files_;  // GUARDED_BY(mu_): dir -> files
};

}  // namespace clonefs::metadata
