#include "fuse/runtime_info.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/proc_info.h"
#include "fuse/mount_table.h"
#include "metadata/clone_files.h"

namespace clonefs::fuse {
namespace {

std::string Escape(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Unescape(const std::string& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) {
      ++i;
      out += v[i] == 'n' ? '\n' : v[i];
    } else {
      out += v[i];
    }
  }
  return out;
}

// A full file system (the metadata's, when the final commit failed for
// that very reason) refuses the new temporary file's data but can still
// take the record in place: the blocks of the record written at mount are
// the daemon's own. Not atomic; used only when the atomic write failed.
bool RewriteInPlace(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()) &&
                  ftruncate(fd, static_cast<off_t>(text.size())) == 0;
  close(fd);
  return ok;
}

}  // namespace

std::string DaemonRecordPath(const std::string& metadata_dir) {
  return metadata::CloneFilePath(metadata_dir, metadata::kDaemonRecordName);
}

Status WriteDaemonInfo(const DaemonInfo& info) {
  const std::string path = DaemonRecordPath(info.metadata_dir);
  const std::string tmp = metadata::CloneFilePath(info.metadata_dir, metadata::kDaemonRecordTempName);
  std::ostringstream f;
  f << "pid=" << info.pid << "\n"
    << "mountpoint=" << Escape(info.mountpoint) << "\n"
    << "source=" << Escape(info.source) << "\n"
    << "dest=" << Escape(info.dest) << "\n"
    << "metadata=" << Escape(info.metadata_dir) << "\n"
    << "name=" << Escape(info.name) << "\n"
    << "log=" << Escape(info.log_file) << "\n";
  if (!info.final_error.empty()) f << "final_error=" << Escape(info.final_error) << "\n";
  if (!info.profile_error.empty()) f << "profile_error=" << Escape(info.profile_error) << "\n";
  const std::string text = f.str();
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, "write daemon record " + tmp);
  const ssize_t n = write(fd, text.data(), text.size());
  const int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    unlink(tmp.c_str());
    if (RewriteInPlace(path, text)) return Status::OK();
    return Status::FromErrno(n < 0 ? err : ENOSPC, "write daemon record " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Status::FromErrno(errno, "rename " + tmp + " to " + path);
    unlink(tmp.c_str());
    return s;
  }
  return Status::OK();
}

Result<DaemonInfo> ReadDaemonRecord(const std::string& metadata_dir) {
  const std::string path = DaemonRecordPath(metadata_dir);
  // O_NOFOLLOW: root may read a user's record; a symlink is never one.
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::NotFound("no daemon record " + path);
    return Status::FromErrno(errno, "read daemon record " + path);
  }
  std::string text;
  char buf[4096];
  ssize_t n;
  while (text.size() < (1u << 20) && ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))) {
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  DaemonInfo info;
  std::istringstream f(text);
  std::string line;
  while (std::getline(f, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string k = line.substr(0, eq), v = Unescape(line.substr(eq + 1));
    if (k == "pid")
      info.pid = static_cast<pid_t>(std::atol(v.c_str()));
    else if (k == "mountpoint")
      info.mountpoint = v;
    else if (k == "source")
      info.source = v;
    else if (k == "dest")
      info.dest = v;
    else if (k == "metadata")
      info.metadata_dir = v;
    else if (k == "name")
      info.name = v;
    else if (k == "log")
      info.log_file = v;
    else if (k == "final_error")
      info.final_error = v;
    else if (k == "profile_error")
      info.profile_error = v;
  }
  return info;
}

void RemoveDaemonInfo(const std::string& metadata_dir) {
  unlink(DaemonRecordPath(metadata_dir).c_str());
}

Result<DaemonInfo> FindDaemonInfo(const std::string& mountpoint) {
  CLONEFS_ASSIGN_OR_RETURN(std::optional<MountEntry> entry, FindMount(mountpoint));
  if (!entry || entry->fstype != "fuse.clonefs") {
    return Status::NotFound(mountpoint + " is not a clonefs mount");
  }
  CLONEFS_ASSIGN_OR_RETURN(DaemonInfo info, ReadDaemonRecord(entry->source));
  if (info.mountpoint != mountpoint) {
    return Status::NotFound("the daemon record in " + entry->source + " is for " +
                            info.mountpoint + ", not " + mountpoint);
  }
  return info;
}

bool WaitUntilAllThreadsExited(pid_t pid, int timeout_ms) {
  if (pid <= 0) return true;
  // Only a zombie leader can have threads still exiting. A live process
  // under that id is another program that was given the id since: the
  // daemon is long gone, and waiting would only cost the whole timeout.
  if (const std::optional<ProcStat> st = ReadProcStat(pid); st && st->state != 'Z') return true;
#ifdef SYS_pidfd_open
  // A pidfd polls readable once the leader exited and no thread is left.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0 && errno == ESRCH) return true;
  if (pidfd >= 0) {
    pollfd p{pidfd, POLLIN, 0};
    int n;
    do {
      n = poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    close(pidfd);
    if (n >= 0) return n > 0;
  }
#endif
  // No pidfds: the threads left in /proc/PID/task.
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  for (int waited = 0;; waited += 10) {
    std::error_code ec;
    size_t threads = 0;
    for (auto it = std::filesystem::directory_iterator(task, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++threads;
    }
    if (ec || threads <= 1) return true;
    if (waited >= timeout_ms) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool IsClonefsProcess(pid_t pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie has exited.
  const std::optional<ProcStat> st = ReadProcStat(pid);
  if (!st || st->state == 'Z') return false;
  if (st->comm.rfind("clonefs", 0) == 0) return true;
  // A renamed copy or a differently named link of this very program (comm
  // is the name it was started under): compare the executables themselves.
  return RunsSameExecutable(pid);
}

}  // namespace clonefs::fuse
