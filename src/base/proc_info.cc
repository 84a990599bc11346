#include "base/proc_info.h"

#include <sys/stat.h>

#include <fstream>

namespace clonefs {

std::optional<ProcStat> ReadProcStat(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(f, line);
  // comm may hold spaces and parentheses: it ends at the last ')'.
  const size_t open = line.find('('), close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close < open ||
      close + 2 >= line.size()) {
    return std::nullopt;
  }
  return ProcStat{line[close + 2], line.substr(open + 1, close - open - 1)};
}

bool RunsSameExecutable(pid_t pid) {
  struct stat theirs, ours;
  return ::stat(("/proc/" + std::to_string(pid) + "/exe").c_str(), &theirs) == 0 &&
         ::stat("/proc/self/exe", &ours) == 0 && theirs.st_dev == ours.st_dev &&
         theirs.st_ino == ours.st_ino;
}

}  // namespace clonefs
