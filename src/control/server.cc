#include "control/server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "control/discovery.h"
#include "control/request_handler.h"
#include "control/socket_io.h"

namespace clonefs::control {
namespace {

// Removes a leftover socket from a dead daemon; Busy if a live one answers.
Status ClearStaleSocket(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::OK();
    return Status::FromErrno(errno, "lstat " + path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return Status::Permission(path + " exists and is not a socket; refusing to replace it");
  }
  Result<int> fd = ConnectUnix(path);
  if (fd.ok()) {
    close(*fd);
    return Status::Busy("another clonefs daemon is serving " + path);
  }
  if (unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno(errno, "unlink stale socket " + path);
  }
  return Status::OK();
}

// Closing a Unix socket with unread input resets the connection, and the
// peer may then lose the response it has not read yet (an oversized request
// is answered before it was read in full). Take what is already there.
void DrainUnread(int fd) {
  char buf[4096];
  size_t total = 0;
  while (total < (1u << 20)) {
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
}

}  // namespace

ControlServer::~ControlServer() { Stop(); }

Status ControlServer::Start(Engine* engine, const ControlInfo& info,
                            const ControlServerOptions& options) {
  engine_ = engine;
  info_ = info;
  options_ = options;
  owner_uid_ = geteuid();
  started_ = std::chrono::steady_clock::now();
  if (!options.socket_path.empty()) {
    socket_path_ = options.socket_path;
  } else {
    if (info.metadata_dir.empty()) {
      return Status::InvalidArgument("control server: no metadata directory and no socket path");
    }
    socket_path_ = ControlSocketPath(info.metadata_dir);
  }
  CLONEFS_RETURN_IF_ERROR(ClearStaleSocket(socket_path_));

  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  int dir_fd = -1;
  Result<sockaddr_un> addr = UnixAddress(socket_path_, &dir_fd);
  if (!addr.ok()) {
    close(fd);
    return addr.status();
  }
  const int rc = bind(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr));
  const int bind_err = errno;
  if (dir_fd >= 0) close(dir_fd);
  if (rc != 0) {
    close(fd);
    return Status::FromErrno(bind_err, "bind " + socket_path_);
  }
  // Until the chmod, the socket has the umask's mode; a peer that connects
  // meanwhile is still checked by SO_PEERCRED.
  struct stat st;
  if (chmod(socket_path_.c_str(), 0600) != 0 || lstat(socket_path_.c_str(), &st) != 0 ||
      listen(fd, 16) != 0) {
    Status s = Status::FromErrno(errno, "chmod/listen " + socket_path_);
    close(fd);
    unlink(socket_path_.c_str());
    return s;
  }
  socket_dev_ = st.st_dev;
  socket_ino_ = st.st_ino;
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    Status s = Status::FromErrno(errno, "eventfd");
    close(fd);
    unlink(socket_path_.c_str());
    return s;
  }
  listen_fd_ = fd;
  try {
    thread_ = std::thread([this] { Run(); });
  } catch (const std::system_error& e) {
    Stop();
    return Status::IoError(std::string("control server thread: ") + e.what());
  }
  CLONEFS_LOG_INFO("control: listening on %s", socket_path_.c_str());
  return Status::OK();
}

void ControlServer::Stop() {
  if (stop_fd_ >= 0) {
    uint64_t one = 1;
    ssize_t n = write(stop_fd_, &one, sizeof(one));
    (void)n;
  }
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    struct stat st;
    if (lstat(socket_path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
        st.st_ino == socket_ino_) {
      unlink(socket_path_.c_str());
    }
  }
  if (stop_fd_ >= 0) {
    close(stop_fd_);
    stop_fd_ = -1;
  }
}

void ControlServer::Run() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      CLONEFS_LOG_ERROR("control: poll failed: %s; control channel stopped", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int c = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (c < 0) {
      if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
        CLONEFS_LOG_WARN("control: accept failed: %s", std::strerror(errno));
      }
      continue;
    }
    Serve(c);
    close(c);
  }
}

void ControlServer::Serve(int fd) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    CLONEFS_LOG_WARN("control: SO_PEERCRED failed: %s", std::strerror(errno));
    return;
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.io_timeout_ms);
  if (cred.uid != owner_uid_ && cred.uid != 0) {
    // Take the request off the socket first: closing with unread data would
    // reset the connection before the peer reads the refusal.
    (void)ReadLine(fd, kMaxRequestBytes, deadline, stop_fd_);
    CLONEFS_LOG_WARN("control: refused request from uid %u (pid %d): not uid %u or root",
                     cred.uid, cred.pid, owner_uid_);
    Response r{false, "permission denied: uid " + std::to_string(cred.uid) +
                          " may not control this clone (only uid " + std::to_string(owner_uid_) +
                          " and root may)"};
    (void)WriteAll(fd, EncodeResponse(r), deadline, stop_fd_);
    DrainUnread(fd);
    return;
  }
  Result<std::string> line = ReadLine(fd, kMaxRequestBytes, deadline, stop_fd_);
  Response resp;
  if (!line.ok()) {
    if (line.status().IsInvalidArgument()) {
      resp = Response{false, line.status().message()};
    } else {
      return;  // timed out, stopped or peer gone: nobody to answer
    }
  } else {
    Result<std::vector<std::string>> words = SplitRequest(*line);
    if (!words.ok()) {
      resp = Response{false, words.status().message()};
    } else {
      RequestContext ctx;
      ctx.engine = engine_;
      ctx.info = &info_;
      ctx.pid = static_cast<uint64_t>(getpid());
      ctx.uptime_s = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                               std::chrono::steady_clock::now() - started_)
                                               .count());
      ctx.peer_uid = cred.uid;
      ctx.settings = options_.settings;
      ctx.fuse = options_.fuse;
      resp = HandleRequest(ctx, *words);
    }
  }
  // The request may have taken a while (a commit); give the write its own time.
  const auto wdeadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.io_timeout_ms);
  Status s = WriteAll(fd, EncodeResponse(resp), wdeadline, stop_fd_);
  if (!s.ok()) CLONEFS_LOG_DEBUG("control: response not delivered: %s", s.ToString().c_str());
  DrainUnread(fd);
  served_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace clonefs::control
