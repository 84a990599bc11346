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

  // The pid holding an flock on `dir` according to /proc/locks, or 0 if it
  // cannot be told. Exposed for tests.
  static int HolderPid(const std::string& dir);

 private:
  DirLock(std::string real_dir, int fd) : real_dir_(std::move(real_dir)), fd_(fd) {}
  std::string real_dir_;
  int fd_;  // the directory, flocked (or -1 if flock is unsupported)
};

}  // namespace clonefs::metadata
