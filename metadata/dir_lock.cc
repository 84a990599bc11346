#include "metadata/dir_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>

#include "base/flock_holder.h"
#include "base/log.h"

namespace clonefs::metadata {
namespace {

std::mutex g_mu;
std::set<std::string>* g_held = nullptr;  // GUARDED_BY(g_mu); leaked on purpose

std::string BusyMessage(const std::string& dir, int pid, bool same_process) {
  std::string m = "metadata " + dir + " is in use by another clonefs ";
  m += same_process ? "instance in this process" : "process";
  if (pid > 0) m += " (pid " + std::to_string(pid) + ")";
  return m;
}

}  // namespace

int DirLock::HolderPid(const std::string& dir) { return FlockHolderPid(dir); }

Result<std::unique_ptr<DirLock>> DirLock::Acquire(const std::string& dir) {
  char buf[PATH_MAX];
  if (realpath(dir.c_str(), buf) == nullptr) {
    return Status::FromErrno(errno, "resolve metadata directory " + dir);
  }
  std::string real(buf);
  std::lock_guard<std::mutex> l(g_mu);
  if (!g_held) g_held = new std::set<std::string>;
  if (g_held->count(real)) return Status::Busy(BusyMessage(dir, getpid(), true));

  int fd = open(real.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open metadata directory " + dir);
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      close(fd);
      return Status::Busy(BusyMessage(dir, HolderPid(real), false));
    }
    CLONEFS_LOG_WARN("cannot flock metadata directory %s (%s); relying on RocksDB's lock only",
                     dir.c_str(), strerror(err));
  }
  g_held->insert(real);
  return std::unique_ptr<DirLock>(new DirLock(std::move(real), fd));
}

DirLock::~DirLock() {
  std::lock_guard<std::mutex> l(g_mu);
  close(fd_);  // releases the flock
  g_held->erase(real_dir_);
}

Status DirLock::CheckPresent(const char* marker) const {
  struct stat st;
  if (fstat(fd_, &st) != 0) return Status::FromErrno(errno, "stat metadata directory " + real_dir_);
  if (st.st_nlink == 0) {
    return Status::IoError("metadata directory " + real_dir_ +
                               " was removed while the clone was open: nothing written to it "
                               "survives a restart",
                           ENOENT);
  }
  if (faccessat(fd_, marker, F_OK, 0) != 0) {
    const int err = errno;
    if (err == ENOENT) {
      return Status::IoError(std::string("metadata directory ") + real_dir_ + " lost its " +
                                 marker + " file while the clone was open: the store is gone",
                             ENOENT);
    }
    return Status::FromErrno(err, "look up " + real_dir_ + "/" + marker);
  }
  return Status::OK();
}

}  // namespace clonefs::metadata
