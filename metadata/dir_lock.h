// DirLock: exclusive ownership of one metadata directory.
//
// Two layers:
//   - a process-wide registry of held directories (by realpath), which
//     catches a second Metadata on the same directory in this process;
//   - flock(2) on the directory itself, which catches other processes. It is
//     independent of RocksDB's own LOCK file, so it stays held while the store
//     is closed and reopened (Metadata::Abort after a failed commit), and it
//     also covers read-only opens, which RocksDB does not lock.
// Where flock is not supported (some network filesystems), only RocksDB's
// LOCK protects the store from other processes; this is logged.
//
// THREAD SAFETY: Acquire may be called from any thread; a DirLock is released
// by its destructor.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "base/status.h"

namespace clonefs::metadata {

class DirLock {
 public:
  // REQUIRES: `dir` exists and is a directory. Errors: Busy ("metadata <dir>
  // is in use by another clonefs process (pid N)"), NotFound / IoError if the
  // directory cannot be resolved or opened.
  static Result<std::unique_ptr<DirLock>> Acquire(const std::string& dir);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  // The canonical path (realpath) of the directory.
  const std::string& real_dir() const { return real_dir_; }

  // OK while the directory is still linked into the file system and still
  // holds `marker` (a file the store cannot do without, e.g. "CURRENT").
  // IoError saying what is gone otherwise: a directory removed (rm -rf) while
  // the store is open keeps accepting writes into files that vanish at the
  // next close or crash. No disk I/O: an fstat of the open directory and one
  // name lookup in it.
  Status CheckPresent(const char* marker) const;

  // The pid holding an flock on `dir` according to /proc/locks, or 0 if it
  // cannot be told. Exposed for tests.
  static int HolderPid(const std::string& dir);

 private:
  DirLock(std::string real_dir, int fd) : real_dir_(std::move(real_dir)), fd_(fd) {}
  std::string real_dir_;
  int fd_;  // the directory, open; flocked where flock is supported
};

}  // namespace clonefs::metadata
