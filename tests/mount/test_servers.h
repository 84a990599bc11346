// Servers the mount tier starts for remote sources (SPEC §9): nbdkit on a
// Unix socket and nginx on 127.0.0.1. Each is a child of the test process
// (nbdkit with --exit-with-parent), stopped by pid in the destructor.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace clonefs::testing {

// nbdkit -f -U SOCKET [--filter=...] PLUGIN ARGS, restartable on the same
// socket (the clone must reconnect to it on its own); its output goes to
// SOCKET.log.
class NbdkitServer {
 public:
  // `args`: everything after the socket: filters, plugin, plugin args.
  NbdkitServer(std::string socket, std::vector<std::string> args);
  ~NbdkitServer();  // Stop()

  // Starts nbdkit and waits (up to 10 s) until the socket accepts. False
  // (with a test failure) if it did not come up.
  bool Start();
  // SIGKILL (a crash: the socket file stays) and reap.
  void Kill9();
  // SIGTERM and reap (nbdkit then writes its stats file).
  void Stop();
  // SIGTERM, and true if nbdkit exits within `seconds` (it waits for its
  // clients to disconnect first); else SIGKILL. Reaped either way.
  bool StopWithin(int seconds);
  void Pause();   // SIGSTOP, and waits until every thread has stopped
  void Resume();  // SIGCONT
  pid_t pid() const { return pid_; }
  // nbd+unix:///?socket=SOCKET
  std::string Uri() const { return "nbd+unix:///?socket=" + socket_; }

 private:
  std::string socket_;
  std::vector<std::string> args_;
  pid_t pid_ = -1;
};

// nginx serving `root` on 127.0.0.1:<free port>, in the foreground, with its
// config, pid file and logs in `dir` (workers run as root when the test
// does, so they can read a private temporary directory).
class NginxServer {
 public:
  NginxServer(std::string dir, std::string root);
  ~NginxServer();
  // False (with a test failure) if nginx is missing or did not come up.
  bool Start();
  void Stop();
  int port() const { return port_; }
  std::string Url(const std::string& file) const;

 private:
  std::string dir_, root_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Bytes read from the server according to nbdkit's stats filter file
// (`--filter=stats statsfile=F`, written when nbdkit exits; the figure has
// two decimals of its unit); 0 if nothing was read, -1 if there is no file.
int64_t StatsBytesRead(const std::string& statsfile);

}  // namespace clonefs::testing
