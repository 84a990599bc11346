// Test servers for the source tests: an nbdkit on a Unix socket in the
// test's temp dir (or on 127.0.0.1) (ready once its -P pid file exists), and helpers to wait for a
// condition and to list this process's nbdkit children. Each server is started with
// --exit-with-parent and -f (so the spawned pid is nbdkit's) and stopped by pid (kill + waitpid)
// when the test ends.
//
// posix_spawnp (not fork): the test process has threads.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sources/nbd_device.h"
#include "sources/source_spec.h"

extern char** environ;

namespace clonefs::testing {

// Polls `cond` every 5 ms until it is true or `limit` passes (a bound for
// hangs, not a speed assertion). Returns cond()'s last value.
inline bool WaitFor(const std::function<bool()>& cond,
                    std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= end) return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline std::string NbdkitBinaryForTests() {
  const char* env = std::getenv("CLONEFS_NBDKIT");
  return env != nullptr && *env != '\0' ? env : "nbdkit";
}

// A TCP socket bound to a free port on 127.0.0.1, its port in *port; -1
// (and *port -1) if that failed.
inline int BindLoopback(int* port) {
  *port = -1;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

// A TCP port on 127.0.0.1 that was free a moment ago, or -1.
// Whether a Unix socket listens at `path`, without connecting to it (a
// connection would take one of a server's client slots, as qemu-nbd
// --shared=N counts them): /proc/net/unix lists it with __SO_ACCEPTCON
// (flags 00010000). The socket file exists from bind(), before listen():
// a client connecting then is refused.
inline bool UnixListening(const std::string& path) {
  std::ifstream in("/proc/net/unix");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() <= path.size() ||
        line.compare(line.size() - path.size(), path.size(), path) != 0 ||
        line[line.size() - path.size() - 1] != ' ') {
      continue;
    }
    // "Num: RefCount Protocol Flags Type St Inode Path"
    char num[32];
    unsigned long refs = 0, proto = 0, flags = 0;
    if (std::sscanf(line.c_str(), "%31s %lx %lx %lx", num, &refs, &proto, &flags) == 4 &&
        (flags & 0x10000) != 0) {
      return true;
    }
  }
  return false;
}

inline int FreeLoopbackPort() {
  int port = -1;
  const int fd = BindLoopback(&port);
  if (fd >= 0) ::close(fd);
  return port;
}

// Spawns argv (argv[0] looked up in PATH); returns the pid or -1.
// A listening socket nobody accepts on: the kernel completes the TCP
// handshake and queues the request, which is never answered.
class SilentServer {
 public:
  SilentServer() : fd_(testing::BindLoopback(&port_)) {
    if (fd_ >= 0 && ::listen(fd_, 4) != 0) port_ = -1;
  }
  ~SilentServer() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int port_ = -1;  // before fd_: BindLoopback sets it
  int fd_;
};

inline pid_t Spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

// Pids of this process's live children whose command name is `comm`.
inline std::vector<pid_t> ChildrenNamed(const std::string& comm) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  const std::string me = std::to_string(::getpid());
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
    std::string line;
    std::getline(stat, line);
    // pid (comm) state ppid ...
    size_t open = line.find('('), close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::string name = line.substr(open + 1, close - open - 1);
    char state = 0;
    long ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %ld", &state, &ppid) != 2) continue;
    if (name == comm && std::to_string(ppid) == me && state != 'Z') {
      out.push_back(static_cast<pid_t>(std::atol(e->d_name)));
    }
  }
  ::closedir(d);
  return out;
}

// Thread ids of process `pid`.
inline std::vector<pid_t> TasksOf(pid_t pid) {
  std::vector<pid_t> out;
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') out.push_back(static_cast<pid_t>(std::atol(e->d_name)));
  }
  ::closedir(d);
  return out;
}

class NbdkitServer {
 public:
  // `args`: filters, plugin and its parameters, e.g. {"--filter=delay",
  // "file", "/tmp/x", "rdelay=1"}. The socket is `socket_path`.
  NbdkitServer(std::string socket_path, std::vector<std::string> args)
      : socket_(std::move(socket_path)), args_(std::move(args)) {}
  // The same on 127.0.0.1:`port` (TCP); `files` names the pid file
  // (`files`.pid).
  NbdkitServer(int port, std::string files, std::vector<std::string> args)
      : socket_(std::move(files)), args_(std::move(args)), port_(port) {}
  ~NbdkitServer() { Kill(); }
  NbdkitServer(const NbdkitServer&) = delete;
  NbdkitServer& operator=(const NbdkitServer&) = delete;

  // Starts nbdkit (removing a socket left by a killed one) and waits until
  // the socket accepts connections.
  ::testing::AssertionResult Start() {
    ::unlink(socket_.c_str());
    const std::string pidfile = socket_ + ".pid";
    ::unlink(pidfile.c_str());
    // nbdkit writes the pid file once it accepts connections.
    std::vector<std::string> argv = {NbdkitBinaryForTests(), "-f", "--exit-with-parent", "-P",
                                     pidfile};
    if (port_ > 0) {
      argv.insert(argv.end(), {"-i", "127.0.0.1", "-p", std::to_string(port_)});
    } else {
      argv.insert(argv.end(), {"-U", socket_});
    }
    argv.insert(argv.end(), args_.begin(), args_.end());
    pid_ = Spawn(argv);
    if (pid_ < 0) return ::testing::AssertionFailure() << "cannot start nbdkit";
    bool up = WaitFor([&] {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      return ::access(pidfile.c_str(), F_OK) == 0;
    });
    if (pid_ < 0) return ::testing::AssertionFailure() << "nbdkit exited at start";
    if (!up) return ::testing::AssertionFailure() << "nbdkit did not listen on " << socket_;
    return ::testing::AssertionSuccess();
  }

  void Signal(int sig) {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  // SIGSTOP, and waits until every nbdkit thread has stopped (kill returns
  // before the group stop completes; a request could be served meanwhile).
  ::testing::AssertionResult Pause() {
    Signal(SIGSTOP);
    if (WaitFor([&] { return AllTasksStopped(); })) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "nbdkit " << pid_ << " did not stop";
  }
  void Resume() { Signal(SIGCONT); }

  // Waits up to `limit` for nbdkit to exit (after a Signal(SIGTERM), say:
  // nbdkit then shuts down cleanly, answering ESHUTDOWN to requests while
  // its connections stay open); past that, SIGKILL. Reaped either way. True
  // if it exited by itself.
  bool WaitExit(std::chrono::milliseconds limit) {
    if (pid_ <= 0) return true;
    int st;
    bool exited = WaitFor([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, limit);
    if (!exited) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
    }
    pid_ = -1;
    return exited;
  }

  // SIGKILL and reap.
  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  std::string Uri(const std::string& export_name = "") const {
    if (port_ > 0) return "nbd://127.0.0.1:" + std::to_string(port_) + "/" + export_name;
    return "nbd+unix:///" + export_name + "?socket=" + socket_;
  }

 private:
  bool AllTasksStopped() const {
    const std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
    DIR* d = ::opendir(tasks.c_str());
    if (d == nullptr) return false;
    bool all = true, any = false;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream stat(tasks + "/" + e->d_name + "/stat");
      std::string line;
      std::getline(stat, line);
      size_t close = line.rfind(')');
      if (close == std::string::npos || close + 2 >= line.size()) continue;
      any = true;
      char state = line[close + 2];
      if (state != 'T' && state != 't') all = false;
    }
    ::closedir(d);
    return any && all;
  }

  const std::string socket_;
  const std::vector<std::string> args_;
  const int port_ = 0;  // > 0: TCP on 127.0.0.1, else the Unix socket
  pid_t pid_ = -1;
};

// Opens the NBD source at `uri` (a test server's Uri()) with `options`, or
// nullptr with a test failure saying why.
inline std::unique_ptr<Device> OpenNbdUri(const std::string& uri, const NbdSourceOptions& options) {
  Result<SourceSpec> spec = ParseSource(uri);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  if (!spec.ok()) return nullptr;
  Result<std::unique_ptr<Device>> dev = OpenNbdSource(*spec, options);
  EXPECT_TRUE(dev.ok()) << dev.status().ToString();
  return dev.ok() ? std::move(*dev) : nullptr;
}

}  // namespace clonefs::testing
