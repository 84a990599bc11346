// The service manager's view of a running clone (systemd, Type=notify, see
// docs/integration.md): READY=1 once the exposed file is usable, STATUS=
// with live progress while it runs, STOPPING=1 when the final commit starts.
// Through libsystemd's sd_notify(3); nothing is sent unless $NOTIFY_SOCKET
// is set (the daemon was not started by a service manager).
//
// THREAD SAFETY: Ready/Stopping are called by the daemon's main thread;
// the refresh thread they start and stop only reads the engine's stats
// (thread-safe). The destructor stops the thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "control/status_report.h"
#include "engine/engine.h"

namespace clonefs::control {

// The STATUS= line for a live report: "hydrating 43.2% at 120.00 MiB/s, ETA
// 3m12s" (or "no ETA: measuring", and "; degraded: dest full" while the
// health is not ok), "complete: ...", "paused at 43.2% (hydration
// disabled)", "read-only at ...", "failed at ...", "source changed: ...".
std::string ServiceStatusText(const StatusReport& r);

class ServiceNotifier {
 public:
  // `period`: how often STATUS= is refreshed while the clone runs.
  explicit ServiceNotifier(std::chrono::milliseconds period = std::chrono::seconds(5));
  ~ServiceNotifier();
  ServiceNotifier(const ServiceNotifier&) = delete;
  ServiceNotifier& operator=(const ServiceNotifier&) = delete;

  // True if a service manager listens ($NOTIFY_SOCKET is set).
  static bool Wanted();

  // The file is usable: sends READY=1, MAINPID and a first STATUS=, then
  // refreshes STATUS= every period from `engine` (which must outlive
  // Stopping()) until Stopping(). `info` names the clone in the status.
  void Ready(const Engine* engine, const ControlInfo& info);
  // Serving is over: stops the refresh thread and sends STOPPING=1 with
  // STATUS=`status`. No-op if Ready() sent nothing.
  void Stopping(const std::string& status = "stopping");

 private:
  void Refresh();
  void Send(const std::string& state);

  const std::chrono::milliseconds period_;
  const Engine* engine_ = nullptr;
  ControlInfo info_;
  std::chrono::steady_clock::time_point started_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // GUARDED_BY(mu_)
  std::thread thread_;
};

}  // namespace clonefs::control
