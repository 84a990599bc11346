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
  return FlockHolderPid(st.st_dev, st.st_ino);
}

int FlockHolderPid(dev_t dev, ino_t ino) {
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
    unsigned long long file_ino = 0;
    if (sscanf(dev_ino.c_str(), "%x:%x:%llu", &maj, &min, &file_ino) != 3) continue;
    if (maj == major(dev) && min == minor(dev) && file_ino == ino) return pid;
  }
  return 0;
}

}  // namespace clonefs
