#include "fuse/requester.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>

namespace clonefs::fuse {
namespace {

// The hexadecimal mask after "NAME:\t" on a line of its own; false if absent.
bool MaskOf(std::string_view status, std::string_view name, uint64_t* mask) {
  size_t at = 0;
  while (at < status.size()) {
    size_t end = status.find('\n', at);
    if (end == std::string_view::npos) end = status.size();
    std::string_view line = status.substr(at, end - at);
    at = end + 1;
    if (line.size() <= name.size() || line.substr(0, name.size()) != name ||
        line[name.size()] != ':') {
      continue;
    }
    uint64_t v = 0;
    bool any = false;
    for (char c : line.substr(name.size() + 1)) {
      if (c == ' ' || c == '\t') {
        if (any) break;
        continue;
      }
      int d = c >= '0' && c <= '9'   ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) return false;
      v = v << 4 | static_cast<uint64_t>(d);
      any = true;
    }
    if (!any) return false;
    *mask = v;
    return true;
  }
  return false;
}

}  // namespace

bool StatusShowsKillPending(std::string_view proc_status) {
  const uint64_t kill_bit = uint64_t{1} << (SIGKILL - 1);
  uint64_t mask = 0;
  if (MaskOf(proc_status, "SigPnd", &mask) && (mask & kill_bit)) return true;
  return MaskOf(proc_status, "ShdPnd", &mask) && (mask & kill_bit);
}

bool RequesterAbandoned(pid_t tid) {
  if (tid <= 0) return true;
  const std::string path = "/proc/" + std::to_string(tid) + "/status";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;  // exited, or /proc is not there to ask
  char buf[4096];
  std::string text;
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (n < 0 || text.empty()) return true;
  // A thread that is exiting (zombie, dead) is gone whatever is pending.
  if (text.find("\nState:\tZ") != std::string::npos ||
      text.find("\nState:\tX") != std::string::npos) {
    return true;
  }
  return StatusShowsKillPending(text);
}

}  // namespace clonefs::fuse
