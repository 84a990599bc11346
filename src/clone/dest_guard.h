// What makes a dest safe to write: it is locked while a clone uses it, and a
// new clone only starts on a dest that holds nothing (SPEC §7a).
//
// THREAD SAFETY: DestLock is owned by one thread; the functions are stateless.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"

namespace clonefs::clone {

// Exclusive use of one dest for as long as the object lives, whatever path
// leads to its storage: flock(2) on the file (or device node); for a block
// device an O_EXCL open as well, which the kernel refuses while the device
// is mounted or claimed by another exclusive opener; for a loop device (or a
// partition of one) a flock on its backing file too (exclusive, shared for
// a partition), so a clone of that file, or of another loop device over it,
// is refused in either order. A dest that also has a loop device over it
// (other than dest itself) is refused: writes through it would bypass the
// clone. A loop device over a clone's exposed file (a FUSE file) is no such
// alias. The descriptors are close-on-exec, so commands the daemon starts
// never inherit the lock.
class DestLock {
 public:
  // Locks `path`, first creating it (empty, mode 0644, O_EXCL) when `create`.
  // Errors: Busy ("dest X is in use by another clonefs daemon (pid N) ..."
  // naming the loop device or backing file it was reached through; for a
  // block device, "in use: mounted or claimed by another program"; "dest X
  // is the backing file of loop device L ..." for an alias); the open's
  // error otherwise (NotFound, Permission, ...; with create, an existing
  // file is Busy: another mount raced us to create it).
  static Result<std::unique_ptr<DestLock>> Acquire(const std::string& path, bool create);
  ~DestLock();
  DestLock(const DestLock&) = delete;
  DestLock& operator=(const DestLock&) = delete;

  // True if Acquire created the file.
  bool created() const { return created_; }

 private:
  DestLock(int fd, bool created) : fd_(fd), created_(created) {}
  int fd_;               // flocked
  int excl_fd_ = -1;     // block device opened O_EXCL, or -1
  int backing_fd_ = -1;  // a loop device's backing file, flocked, or -1
  bool created_;
};

// What an existing dest holds, to decide whether a new clone may start on
// it (it would overwrite everything with source bytes).
struct DestContent {
  enum class Kind {
    kEmpty,      // a regular file of size 0
    kAllHoles,   // a regular file (or a loop device over one) with no data extent
    kHoldsData,  // data found at first_data
    kUnknown,    // a block device that cannot tell; treated as holding data
  };
  Kind kind = Kind::kUnknown;
  uint64_t first_data = 0;  // for kHoldsData
  bool blank() const { return kind == Kind::kEmpty || kind == Kind::kAllHoles; }
};

// Examines `path` with SEEK_DATA (through the device layer). Errors: the
// open or seek error.
Result<DestContent> ExamineDestContent(const std::string& path);

// fsync(2) of the directory holding `path`, so a file created there
// survives a power cut. Errors: the open or fsync error.
Status SyncParentDir(const std::string& path);

}  // namespace clonefs::clone
