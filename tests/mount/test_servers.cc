#include "mount/test_servers.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

extern char** environ;

namespace clonefs::testing {
namespace {

// Starts argv[0] (looked up in PATH) with stdout and stderr appended to
// `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  std::vector<char*> a;
  for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
  a.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, a[0], &fa, nullptr, a.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

bool UnixAccepts(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::strncpy(sa.sun_path, path.c_str(), sizeof(sa.sun_path) - 1);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  close(fd);
  return ok;
}

bool TcpAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  close(fd);
  return ok;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
    port = ntohs(sa.sin_port);
  }
  close(fd);
  return port;
}

void SignalAndReap(pid_t* pid, int sig) {
  if (*pid <= 0) return;
  kill(*pid, SIGCONT);  // a stopped process would never act on SIGTERM
  kill(*pid, sig);
  int st = 0;
  waitpid(*pid, &st, 0);
  *pid = -1;
}

template <typename Pred>
bool WaitFor(Pred pred, int seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

}  // namespace

NbdkitServer::NbdkitServer(std::string socket, std::vector<std::string> args)
    : socket_(std::move(socket)), args_(std::move(args)) {}

NbdkitServer::~NbdkitServer() { Stop(); }

bool NbdkitServer::Start() {
  std::vector<std::string> argv = {"nbdkit", "-f", "--exit-with-parent", "-U", socket_};
  argv.insert(argv.end(), args_.begin(), args_.end());
  unlink(socket_.c_str());
  pid_ = Spawn(argv, socket_ + ".log");
  if (pid_ <= 0) {
    ADD_FAILURE() << "cannot start nbdkit (is it installed? tests/debian-packages.txt)";
    return false;
  }
  if (!WaitFor([&] { return UnixAccepts(socket_); }, 10)) {
    ADD_FAILURE() << "nbdkit did not come up on " << socket_;
    SignalAndReap(&pid_, SIGKILL);
    return false;
  }
  return true;
}

void NbdkitServer::Kill9() { SignalAndReap(&pid_, SIGKILL); }
void NbdkitServer::Stop() { SignalAndReap(&pid_, SIGTERM); }
bool NbdkitServer::StopWithin(int seconds) {
  if (pid_ <= 0) return true;
  kill(pid_, SIGTERM);
  int st = 0;
  const bool exited = WaitFor([&] { return waitpid(pid_, &st, WNOHANG) == pid_; }, seconds);
  if (!exited) SignalAndReap(&pid_, SIGKILL);
  pid_ = -1;
  return exited;
}
void NbdkitServer::Pause() {
  if (pid_ <= 0) return;
  kill(pid_, SIGSTOP);
  // kill() returns before every thread has stopped: one still running could
  // answer a request sent just after. The stop is reported to the parent
  // once the whole group has stopped.
  int st = 0;
  while (waitpid(pid_, &st, WUNTRACED) < 0 && errno == EINTR) {
  }
}
void NbdkitServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

NginxServer::NginxServer(std::string dir, std::string root)
    : dir_(std::move(dir)), root_(std::move(root)) {}

NginxServer::~NginxServer() { Stop(); }

bool NginxServer::Start() {
  const std::string nginx = "/usr/sbin/nginx";
  if (access(nginx.c_str(), X_OK) != 0) {
    ADD_FAILURE() << "nginx is not installed (nginx-light, tests/debian-packages.txt)";
    return false;
  }
  port_ = FreePort();
  const std::string conf = dir_ + "/nginx.conf";
  std::ofstream f(conf);
  f << "worker_processes 1;\n"
    << (geteuid() == 0 ? "user root;\n" : "")
    << "pid " << dir_ << "/nginx.pid;\n"
    << "error_log " << dir_ << "/nginx-error.log;\n"
    << "events { worker_connections 64; }\n"
    << "http {\n"
    << "  access_log off;\n"
    << "  client_body_temp_path " << dir_ << ";\n"
    << "  proxy_temp_path " << dir_ << ";\n"
    << "  fastcgi_temp_path " << dir_ << ";\n"
    << "  uwsgi_temp_path " << dir_ << ";\n"
    << "  scgi_temp_path " << dir_ << ";\n"
    << "  server { listen 127.0.0.1:" << port_ << "; root " << root_ << "; }\n"
    << "}\n";
  f.close();
  pid_ = Spawn({nginx, "-c", conf, "-p", dir_, "-g", "daemon off;"}, dir_ + "/nginx.out");
  if (pid_ <= 0 || !WaitFor([&] { return TcpAccepts(port_); }, 10)) {
    ADD_FAILURE() << "nginx did not come up on 127.0.0.1:" << port_;
    Stop();
    return false;
  }
  return true;
}

void NginxServer::Stop() { SignalAndReap(&pid_, SIGQUIT); }

std::string NginxServer::Url(const std::string& file) const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/" + file;
}

int64_t StatsBytesRead(const std::string& statsfile) {
  std::ifstream f(statsfile);
  if (!f) return -1;
  std::stringstream ss;
  ss << f.rdbuf();
  // "read: 12 ops, 0.003544 s, 2.86 MiB, 807.29 MiB/s op, ..." (2 decimals)
  std::smatch m;
  const std::string text = ss.str();
  static const std::regex kRead(R"(\nread: \d+ ops, [0-9.]+ s, ([0-9.]+) (bytes|KiB|MiB|GiB|TiB),)");
  if (!std::regex_search(text, m, kRead)) return 0;  // no read at all
  double v = std::stod(m[1].str());
  const std::string unit = m[2].str();
  const double mult = unit == "KiB" ? 1024.0
                      : unit == "MiB" ? 1048576.0
                      : unit == "GiB" ? 1073741824.0
                      : unit == "TiB" ? 1099511627776.0
                                      : 1.0;
  return static_cast<int64_t>(v * mult);
}

}  // namespace clonefs::testing
