#include "fuse/mount_table.h"

#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "base/mountinfo.h"

extern char** environ;

namespace clonefs::fuse {
namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

// Runs argv (searched in PATH) and waits; *output gets stdout+stderr.
int RunAndWait(const std::vector<std::string>& argv, std::string* output) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  close(pipefd[1]);
  if (rc != 0) {
    close(pipefd[0]);
    *output = std::string(argv[0]) + ": " + std::strerror(rc);
    return -1;
  }
  char buf[512];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) output->append(buf, static_cast<size_t>(n));
  }
  close(pipefd[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

std::vector<MountEntry> ParseMountInfo(const std::string& text) {
  std::vector<MountEntry> out;
  for (MountInfoLine& m : clonefs::ParseMountInfo(text)) {
    const std::optional<uint32_t> owner = FuseUserId(m.super_options);
    out.push_back({std::move(m.mount_point), std::move(m.fstype), std::move(m.source), owner});
  }
  return out;
}

Result<std::optional<MountEntry>> FindMount(const std::string& path) {
  Result<std::string> text = ReadSelfMountInfo();
  if (!text.ok()) return text.status();
  std::optional<MountEntry> found;
  for (auto& e : ParseMountInfo(*text)) {
    if (e.mountpoint == path) found = e;  // later lines are mounted on top
  }
  return found;
}

Status UnmountPath(const std::string& path, bool lazy) {
  if (umount2(path.c_str(), lazy ? MNT_DETACH : 0) == 0) return Status::OK();
  int err = errno;
  if (err == EBUSY) return Status::Busy("unmount " + path + ": the mount is in use");
  if (err == EINVAL) return Status::NotFound(path + " is not a mount point");
  if (err != EPERM) return Status::FromErrno(err, "unmount " + path);
  // Not root: the setuid helper unmounts FUSE mounts of the calling user.
  std::string output;
  std::vector<std::string> argv = {"fusermount3", lazy ? "-uz" : "-u", path};
  int rc = RunAndWait(argv, &output);
  if (rc == 0) return Status::OK();
  while (!output.empty() && output.back() == '\n') output.pop_back();
  if (output.find("busy") != std::string::npos) {
    return Status::Busy("unmount " + path + ": the mount is in use");
  }
  return Status::Permission("unmount " + path + ": " + (output.empty() ? "fusermount3 failed" : output));
}

namespace {

// Loop devices whose backing file `match` accepts.
template <typename Match>
std::vector<std::string> LoopDevicesWhere(Match match) {
  std::vector<std::string> out;
  DIR* d = opendir("/sys/block");
  if (!d) return out;
  while (struct dirent* e = readdir(d)) {
    if (std::strncmp(e->d_name, "loop", 4) != 0) continue;
    std::string backing;
    if (!ReadFile(std::string("/sys/block/") + e->d_name + "/loop/backing_file", &backing)) continue;
    while (!backing.empty() && backing.back() == '\n') backing.pop_back();
    // The kernel appends " (deleted)" when the file was removed.
    if (match(backing)) out.push_back(std::string("/dev/") + e->d_name);
  }
  closedir(d);
  return out;
}

}  // namespace

std::vector<std::string> LoopDevicesBackedBy(const std::string& file) {
  return LoopDevicesWhere([&](const std::string& backing) { return backing == file; });
}

std::vector<std::string> LoopDevicesBackedByFilesIn(const std::string& dir) {
  const std::string prefix = dir == "/" ? dir : dir + "/";
  return LoopDevicesWhere([&](const std::string& backing) {
    return backing.size() > prefix.size() && backing.compare(0, prefix.size(), prefix) == 0 &&
           backing.find('/', prefix.size()) == std::string::npos;
  });
}

std::string CanonicalPath(const std::string& path) {
  // Without a trailing slash realpath(3) only reads links: behind one it
  // must stat the last component, a mount whose daemon may not answer.
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  char buf[PATH_MAX];
  if (realpath(p.c_str(), buf) != nullptr) return buf;
  const std::string n = NormalizePath(path);
  // A dead daemon's mount: ENOTCONN, or ECONNABORTED while the kernel tears
  // down its io_uring queues.
  if ((errno != ENOTCONN && errno != ECONNABORTED) || n == "/") return n;
  Result<std::string> beside = CanonicalBesideMount(n);
  return beside.ok() ? *beside : n;
}

std::string NormalizePath(const std::string& path) {
  std::string abs = path;
  if (abs.empty() || abs[0] != '/') {
    char cwd[4096];
    abs = std::string(getcwd(cwd, sizeof(cwd)) ? cwd : "/") + "/" + path;
  }
  std::vector<std::string> parts;
  std::istringstream in(abs);
  std::string p;
  while (std::getline(in, p, '/')) {
    if (p.empty() || p == ".") continue;
    if (p == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(p);
  }
  std::string out;
  for (auto& x : parts) out += "/" + x;
  return out.empty() ? "/" : out;
}

}  // namespace clonefs::fuse
