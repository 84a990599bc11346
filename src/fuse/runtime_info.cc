#include "fuse/runtime_info.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace clonefs::fuse {

std::string RuntimeDir() {
  if (const char* d = std::getenv("CLONEFS_RUNTIME_DIR"); d && *d) return d;
  if (geteuid() == 0) return "/run/clonefs";
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x) return std::string(x) + "/clonefs";
  return "/tmp/clonefs-" + std::to_string(geteuid());
}

std::string RuntimeInfoPath(const std::string& mountpoint) {
  std::string name;
  for (unsigned char c : mountpoint) {
    if (c == '/') {
      name += '-';
    } else if (isalnum(c) || c == '.' || c == '_') {
      name += static_cast<char>(c);
    } else {
      char hex[4];
      snprintf(hex, sizeof(hex), "%%%02X", c);
      name += hex;
    }
  }
  return RuntimeDir() + "/" + name + ".info";
}

Status WriteDaemonInfo(const DaemonInfo& info) {
  const std::string dir = RuntimeDir();
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::FromErrno(errno, "create runtime directory " + dir);
  }
  const std::string path = RuntimeInfoPath(info.mountpoint);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) return Status::IoError("cannot write " + tmp);
    f << "pid=" << info.pid << "\n"
      << "mountpoint=" << info.mountpoint << "\n"
      << "source=" << info.source << "\n"
      << "dest=" << info.dest << "\n"
      << "metadata=" << info.metadata_dir << "\n"
      << "name=" << info.name << "\n";
    if (!info.final_error.empty()) f << "final_error=" << info.final_error << "\n";
    if (!f.flush()) return Status::IoError("cannot write " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "rename " + tmp);
  return Status::OK();
}

Result<DaemonInfo> ReadDaemonInfo(const std::string& mountpoint) {
  const std::string path = RuntimeInfoPath(mountpoint);
  std::ifstream f(path);
  if (!f) return Status::NotFound("no daemon record " + path);
  DaemonInfo info;
  std::string line;
  while (std::getline(f, line)) {
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string k = line.substr(0, eq), v = line.substr(eq + 1);
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
    else if (k == "final_error")
      info.final_error = v;
  }
  return info;
}

void RemoveDaemonInfo(const std::string& mountpoint) {
  unlink(RuntimeInfoPath(mountpoint).c_str());
}

bool IsClonefsProcess(pid_t pid) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  // /proc/PID/stat: "pid (comm) state ..."; a zombie has exited.
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(f, stat);
  size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) {
    return false;
  }
  if (stat[close + 2] == 'Z') return false;
  const std::string comm = stat.substr(open + 1, close - open - 1);
  if (comm.rfind("clonefs", 0) == 0) return true;
  // A renamed copy or a differently named link of this very program (comm
  // is the name it was started under): compare the executables themselves.
  struct stat theirs, ours;
  return ::stat(("/proc/" + std::to_string(pid) + "/exe").c_str(), &theirs) == 0 &&
         ::stat("/proc/self/exe", &ours) == 0 && theirs.st_dev == ours.st_dev &&
         theirs.st_ino == ours.st_ino;
}

}  // namespace clonefs::fuse
