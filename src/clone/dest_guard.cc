#include "clone/dest_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "base/flock_holder.h"
#include "clone/storage_probe.h"
#include "devices/posix_device.h"

namespace clonefs::clone {
namespace {

std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string PidNote(int pid) {
  return pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string();
}

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (const std::string& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

const char* kOneClone =
    ": a dest belongs to one clone at a time, whatever path leads to it; unmount that clone "
    "first (see: mount -t fuse.clonefs). A clone not listed there was detached (clonefs "
    "unmount --force) and still serves the programs that have its file open: it makes its final "
    "commit and exits once they close it";

// `path` (opened, `st`) is flocked by someone else: name the holder and, for
// a file, the loop devices over it that another clone may have reached it by.
Status InUse(const std::string& path, const struct stat& st) {
  std::string via;
  if (S_ISREG(st.st_mode)) {
    const std::vector<std::string> loops = LoopDevicesOver(st.st_dev, st.st_ino);
    if (!loops.empty()) via = ", through loop device " + Join(loops) + " over it";
  }
  return Status::Busy("dest " + path + " is in use by another clonefs daemon" +
                      PidNote(FlockHolderPid(st.st_dev, st.st_ino)) + via + kOneClone);
}

// For a dest that is a loop device, or a partition of one: flocks its
// backing file (shared for a partition: two partitions are two dests), so
// a clone of that file, or of another loop device over it, sees the lock.
// Sets *backing_fd, or leaves it -1 when no path reaches the file.
Status LockLoopBacking(const std::string& path, const LoopBackingFile& lb, bool partition,
                       int* backing_fd) {
  const std::string shown = lb.path.empty() ? "its backing file" : lb.path;
  int fd = lb.path.empty() ? -1 : open(lb.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  struct stat st;
  if (fd >= 0 && (fstat(fd, &st) != 0 || st.st_dev != lb.dev || st.st_ino != lb.ino)) {
    close(fd);  // the reported path now names another file
    fd = -1;
  }
  if (fd < 0) {
    // No path reaches the file from here (deleted, renamed, or seen from
    // another mount namespace): a clone holding it is still in /proc/locks.
    const int pid = FlockHolderPid(lb.dev, lb.ino);
    if (pid == 0) return Status::OK();
    return Status::Busy("dest " + path + " is a loop device over " + shown +
                        ", which another clonefs daemon" + PidNote(pid) + " uses as its dest" +
                        kOneClone);
  }
  if (flock(fd, (partition ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    const int err = errno;
    close(fd);
    if (err != EWOULDBLOCK) {
      return Status::FromErrno(err, "lock " + shown + ", the backing file of dest " + path);
    }
    return Status::Busy("dest " + path + " is a loop device over " + shown +
                        ", which another clonefs daemon" + PidNote(FlockHolderPid(lb.dev, lb.ino)) +
                        " uses as its dest (directly or through a loop device)" + kOneClone);
  }
  *backing_fd = fd;
  return Status::OK();
}

// A loop device over dest's storage, other than dest itself, lets anything
// write it behind the clone (and a second clone start on it).
Status CheckNoLoopAlias(const std::string& path, const struct stat& st, const LoopBackingFile* lb) {
  if (lb == nullptr) {
    const std::vector<std::string> loops = LoopDevicesOver(st.st_dev, st.st_ino);
    if (loops.empty()) return Status::OK();
    return Status::Busy(
        "dest " + path + " is the backing file of loop device " + Join(loops) +
        ": writes through it would bypass the clone and corrupt it; detach it first (losetup -d " +
        loops.front() +
        "). To use a clone through a loop device, attach one to the exposed file "
        "in the mount point once it is mounted");
  }
  const std::vector<std::string> loops = LoopDevicesOver(lb->dev, lb->ino, lb->loop);
  if (loops.empty()) return Status::OK();
  return Status::Busy("dest " + path + " is a loop device over " +
                      (lb->path.empty() ? std::string("a file") : lb->path) +
                      ", which loop device " + Join(loops) +
                      " is also over: writes through it would bypass the clone and corrupt it; "
                      "detach it first (losetup -d " +
                      loops.front() + ")");
}

Result<DestContent> ExamineFile(const std::string& path) {
  DestContent c;
  PosixDeviceOptions po;
  po.read_only = true;
  CLONEFS_ASSIGN_OR_RETURN(std::unique_ptr<Device> dev, OpenPosixDevice(path, po));
  if (dev->Size() == 0) {
    c.kind = DestContent::Kind::kEmpty;
    return c;
  }
  CLONEFS_ASSIGN_OR_RETURN(uint64_t data, dev->NextData(0));
  if (data >= dev->Size()) {
    c.kind = DestContent::Kind::kAllHoles;
  } else {
    c.kind = DestContent::Kind::kHoldsData;
    c.first_data = data;
  }
  return c;
}

}  // namespace

Result<std::unique_ptr<DestLock>> DestLock::Acquire(const std::string& path, bool create) {
  const int flags = create ? O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC : O_RDONLY | O_CLOEXEC;
  const int fd = open(path.c_str(), flags, 0644);
  if (fd < 0) {
    if (create && errno == EEXIST) {
      // O_EXCL fails on a symlink even when its target is missing.
      std::error_code ec;
      struct stat lst;
      if (lstat(path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
        const std::string target = std::filesystem::read_symlink(path, ec).string();
        return Status::NotFound("dest " + path + " is a symlink to " + target +
                                ", which does not exist; give the path of the dest itself, or " +
                                "create what the symlink points to first");
      }
      return Status::Busy("dest " + path + " appeared while this mount was creating it (another "
                          "mount of it is starting?); try again once that one has finished");
    }
    return Status::FromErrno(errno, "open dest " + path);
  }
  // Owns the descriptors from here: an early return closes them.
  std::unique_ptr<DestLock> lock(new DestLock(fd, create));
  struct stat st;
  if (fstat(fd, &st) != 0) return Status::FromErrno(errno, "examine dest " + path);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return InUse(path, st);
    return Status::FromErrno(errno, "lock dest " + path);
  }
  if (!S_ISBLK(st.st_mode)) {
    // A file this mount just created has no loop device over it.
    if (!create) CLONEFS_RETURN_IF_ERROR(CheckNoLoopAlias(path, st, nullptr));
    return lock;
  }
  lock->excl_fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_EXCL);
  if (lock->excl_fd_ < 0) {
    if (errno == EBUSY) {
      return Status::Busy("dest " + path +
                          " is in use: mounted, or held by another program "
                          "(a file system, device-mapper, another clone); unmount or release "
                          "it first");
    }
    return Status::FromErrno(errno, "open dest " + path + " exclusively");
  }
  LoopBackingFile lb;
  bool partition = false;
  if (LoopBackingOf(st.st_rdev, &lb, &partition)) {
    CLONEFS_RETURN_IF_ERROR(LockLoopBacking(path, lb, partition, &lock->backing_fd_));
    CLONEFS_RETURN_IF_ERROR(CheckNoLoopAlias(path, st, &lb));
  }
  return lock;
}

DestLock::~DestLock() {
  if (backing_fd_ >= 0) close(backing_fd_);
  if (excl_fd_ >= 0) close(excl_fd_);
  close(fd_);  // releases the flock
}

Result<DestContent> ExamineDestContent(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat dest " + path);
  if (!S_ISBLK(st.st_mode)) return ExamineFile(path);
  const std::string backing = LoopBackingPath(st.st_rdev);
  if (!backing.empty()) {
    Result<DestContent> c = ExamineFile(backing);
    if (c.ok() && c->blank()) return c;
  }
  return DestContent{};  // kUnknown
}

Status SyncParentDir(const std::string& path) {
  const std::string dir = Parent(path);
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open directory " + dir);
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  return rc == 0 ? Status::OK() : Status::FromErrno(err, "fsync directory " + dir);
}

}  // namespace clonefs::clone
