#include "clone/dest_guard.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

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

Status InUse(const std::string& path) {
  const int pid = FlockHolderPid(path);
  return Status::Busy("dest " + path + " is in use by another clonefs daemon" +
                      (pid > 0 ? " (pid " + std::to_string(pid) + ")" : std::string()) +
                      ": a dest belongs to one clone at a time; unmount that clone first "
                      "(see: mount -t fuse.clonefs)");
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
      return Status::Busy("dest " + path + " appeared while this mount was creating it (another "
                          "mount of it is starting?); try again once that one has finished");
    }
    return Status::FromErrno(errno, "open dest " + path);
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) return InUse(path);
    return Status::FromErrno(err, "lock dest " + path);
  }
  int excl = -1;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode)) {
    excl = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_EXCL);
    if (excl < 0) {
      const int err = errno;
      close(fd);
      if (err == EBUSY) {
        return Status::Busy("dest " + path + " is in use: mounted, or held by another program "
                            "(a file system, device-mapper, another clone); unmount or release "
                            "it first");
      }
      return Status::FromErrno(err, "open dest " + path + " exclusively");
    }
  }
  return std::unique_ptr<DestLock>(new DestLock(fd, excl, create));
}

DestLock::~DestLock() {
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
