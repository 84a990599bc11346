// ControlServer: the daemon's end of the control channel, a Unix stream
// socket answering `clonefs status`, `message` and `wait` (docs/control.md).
//
// STRUCTURE
//   One thread polls the listening socket and a stop eventfd. Each accepted
//   connection is served on that thread: check the peer (SO_PEERCRED), read
//   one request line (bounded size, bounded time), HandleRequest, write the
//   response, close. Requests are therefore serialized; a slow client delays
//   others by at most the I/O timeout, and never the FUSE threads (they share
//   nothing with this thread but the thread-safe Engine).
//
// SECURITY
//   The socket lives in the clone's metadata directory (created by the
//   metadata store; this server creates no directory) and is 0600.
//   Independently of file modes, only peers whose SO_PEERCRED uid is the
//   daemon's effective uid or root are answered; others get "error
//   permission denied" and are logged.
//
// THREAD SAFETY: Start and Stop must not be called concurrently with each
// other; socket_path() is safe after Start returned.
//
// LIFECYCLE: Start() -> ... -> Stop() (idempotent; the destructor calls it).
// Stop wakes the thread, joins it and removes the socket file if it is still
// the one this server bound. REQUIRES: the engine outlives Stop(). Start must
// be called in the process that will serve (after any daemonizing fork).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "base/status.h"
#include "control/status_report.h"

namespace clonefs {
class Engine;
namespace clone {
class SettingsStore;
}
}  // namespace clonefs

namespace clonefs::control {

struct ControlServerOptions {
  // Socket path (any length: socket_io.h). Default: "" =
  // ControlSocketPath(info.metadata_dir), i.e. METADATA/control.sock.
  std::string socket_path;
  // Longest a client may take to send its request or take the response.
  // Default: 5000 ms.
  int io_timeout_ms = 5000;
  // The clone's stored settings: shown in status and updated by messages.
  // Not owned; must outlive Stop(). Default: nullptr (messages are not
  // stored).
  clone::SettingsStore* settings = nullptr;
  // The FUSE layer's passthrough state and counters, for status; called on
  // the server's thread. Default: none (status then has no "passthrough").
  std::function<FuseReport()> fuse;
};

class ControlServer {
 public:
  ControlServer() = default;
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds the socket (its directory must exist) and starts the thread. A
  // leftover socket file from a dead daemon is replaced. Errors:
  //   Busy: a live server answers on the socket path (another daemon serves
  //     this clone);
  //   Permission: a non-socket file sits at the socket path;
  //   InvalidArgument: no metadata_dir and no socket_path;
  //   IoError: socket/bind/listen/thread creation failed.
  // REQUIRES: engine != nullptr; not started.
  Status Start(Engine* engine, const ControlInfo& info, const ControlServerOptions& options = {});

  // Stops serving (an in-progress request is finished or cut at its I/O
  // timeout). Idempotent.
  void Stop();

  const std::string& socket_path() const { return socket_path_; }
  // Requests answered so far (for tests and logs).
  uint64_t requests_served() const { return served_.load(std::memory_order_relaxed); }

 private:
  void Run();
  void Serve(int fd);

  // Set by Start, read-only while the thread runs.
  Engine* engine_ = nullptr;
  ControlInfo info_;
  ControlServerOptions options_;
  std::string socket_path_;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
  uid_t owner_uid_ = 0;
  std::chrono::steady_clock::time_point started_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd; written by Stop
  std::thread thread_;
  std::atomic<uint64_t> served_{0};
};

}  // namespace clonefs::control
