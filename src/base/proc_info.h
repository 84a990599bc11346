// Facts about another process, read from /proc: its state and command name
// (/proc/PID/stat), and whether it runs the same executable as this one.
//
// THREAD SAFETY: stateless functions.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace clonefs {

struct ProcStat {
  char state = 0;    // 'R', 'S', 'D', 'Z' (a zombie: it has exited), ...
  std::string comm;  // the command name, as the kernel keeps it
};

// From /proc/PID/stat ("pid (comm) state ..."); nullopt if there is no such
// process or the line cannot be read.
std::optional<ProcStat> ReadProcStat(pid_t pid);

// Whether `pid` runs the executable this process runs (/proc/PID/exe and
// /proc/self/exe are the same file): a renamed copy or another link of it
// too. False if either cannot be examined.
bool RunsSameExecutable(pid_t pid);

}  // namespace clonefs
