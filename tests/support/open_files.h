// Test support: whether a process holds a file open (one of its
// descriptors, as /proc/PID/fd shows them, names `path`).
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace clonefs::test {

// `path` must be canonical (what /proc shows: no symlinks, no "..").
inline bool FileOpenIn(pid_t pid, const std::string& path) {
  std::error_code ec;
  const std::filesystem::path fds = "/proc/" + std::to_string(pid) + "/fd";
  for (const auto& e : std::filesystem::directory_iterator(fds, ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(e.path(), link_ec).string() == path) return true;
  }
  return false;
}

}  // namespace clonefs::test
