#include "base/flock_holder.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace clonefs {

int FlockHolderPid(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  std::ifstream in("/proc/locks");
  std::string line;
  while (std::getline(in, line)) {
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; waiters have "->".
    std::istringstream fields(line);
    std::string id, type, advisory, mode, dev_ino;
    int pid = 0;
    if (!(fields >> id >> type) || type != "FLOCK") continue;
    if (!(fields >> advisory >> mode >> pid >> dev_ino)) continue;
    unsigned maj = 0, min = 0;
    unsigned long long ino = 0;
    if (sscanf(dev_ino.c_str(), "%x:%x:%llu", &maj, &min, &ino) != 3) continue;
    if (maj == major(st.st_dev) && min == minor(st.st_dev) && ino == st.st_ino) return pid;
  }
  return 0;
}

}  // namespace clonefs
