#include "control/socket_io.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace clonefs::control {
namespace {

// Waits for `events` on fd. OK when ready; Aborted on deadline or stop.
Status WaitFor(int fd, short events, Deadline deadline, int stop_fd) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return Status::Aborted("control socket: timed out");
    pollfd fds[2] = {{fd, events, 0}, {stop_fd, POLLIN, 0}};
    int n = poll(fds, stop_fd >= 0 ? 2 : 1, static_cast<int>(left.count()));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "poll on control socket");
    }
    if (stop_fd >= 0 && fds[1].revents != 0) return Status::Aborted("control server stopping");
    if (fds[0].revents != 0) return Status::OK();
  }
}

}  // namespace

Result<sockaddr_un> UnixAddress(const std::string& path, int* dir_fd) {
  *dir_fd = -1;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name = path;
  if (path.size() >= sizeof(addr.sun_path)) {
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    const std::string last = slash == std::string::npos ? path : path.substr(slash + 1);
    int fd = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return Status::FromErrno(errno, "open socket directory " + dir);
    name = "/proc/self/fd/" + std::to_string(fd) + "/" + last;
    if (name.size() >= sizeof(addr.sun_path)) {
      close(fd);
      return Status::InvalidArgument("socket name too long: " + last);
    }
    *dir_fd = fd;
  }
  std::memcpy(addr.sun_path, name.c_str(), name.size() + 1);
  return addr;
}

Result<int> ConnectUnix(const std::string& path) {
  int dir_fd = -1;
  Result<sockaddr_un> a = UnixAddress(path, &dir_fd);
  if (!a.ok()) return a.status();
  sockaddr_un addr = *a;
  struct DirCloser {
    int fd;
    ~DirCloser() {
      if (fd >= 0) close(fd);
    }
  } closer{dir_fd};
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  int r;
  do {
    r = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  } while (r != 0 && errno == EINTR);
  if (r != 0) {
    int err = errno;
    close(fd);
    if (err == ECONNREFUSED) {
      return Status::IoError("connect " + path + ": nobody is listening (daemon gone?)", err);
    }
    return Status::FromErrno(err, "connect " + path);
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    Status s = Status::FromErrno(errno, "fcntl O_NONBLOCK");
    close(fd);
    return s;
  }
  return fd;
}

Result<std::string> ReadLine(int fd, size_t max_bytes, Deadline deadline, int stop_fd) {
  std::string out;
  char buf[512];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      size_t nl = out.find('\n');
      if (nl != std::string::npos) {
        if (nl + 1 > max_bytes) break;
        out.resize(nl);
        return out;
      }
      if (out.size() >= max_bytes) break;
      continue;
    }
    if (n == 0) return Status::IoError("control socket: peer closed before a full line");
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, "recv");
    CLONEFS_RETURN_IF_ERROR(WaitFor(fd, POLLIN, deadline, stop_fd));
  }
  return Status::InvalidArgument("request longer than " + std::to_string(max_bytes - 1) + " bytes");
}

Result<std::string> ReadAll(int fd, size_t max_bytes, Deadline deadline) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
      if (out.size() > max_bytes) {
        return Status::InvalidArgument("control response larger than " +
                                       std::to_string(max_bytes) + " bytes");
      }
      continue;
    }
    if (n == 0) return out;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, "recv");
    CLONEFS_RETURN_IF_ERROR(WaitFor(fd, POLLIN, deadline, -1));
  }
}

Status WriteAll(int fd, std::string_view data, Deadline deadline, int stop_fd) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return Status::FromErrno(errno, "send");
    CLONEFS_RETURN_IF_ERROR(WaitFor(fd, POLLOUT, deadline, stop_fd));
  }
  return Status::OK();
}

}  // namespace clonefs::control
