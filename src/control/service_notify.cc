#include "control/service_notify.h"

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/log.h"
#include "base/printable.h"
#include "control/status_format.h"
#include "control/units.h"

namespace clonefs::control {

std::string ServiceStatusText(const StatusReport& r) {
  const std::string pct = FormatPercent(r.hydrated_bytes, r.image_size, 1);
  const std::string state = r.State();
  if (state == "complete") return "complete: " + FormatBytes(r.image_size) + " hydrated";
  if (state == "source-changed") return "source changed: " + r.source_change;
  if (state == "dest-changed") return "dest changed: " + r.dest_change;
  if (state == "read-only") {
    return "read-only at " + pct + ": a metadata commit failed (see the log); the clone "
           "keeps serving, unmount and mount again once fixed";
  }
  if (state == "failed") return "failed at " + pct + ": a metadata rollback failed (see the log)";
  if (state == "paused") {
    return "paused at " + pct +
           (r.knobs.hydration_enabled ? " (hydration_threshold 0)" : " (hydration disabled)");
  }
  std::string out =
      "hydrating " + pct + " at " + FormatRate(r.copy_rate_bytes_per_s) + ", " + FormatEta(r);
  if (!HealthOk(r.health)) out += "; " + Printable(r.health);
  return out;
}

ServiceNotifier::ServiceNotifier(std::chrono::milliseconds period) : period_(period) {}

ServiceNotifier::~ServiceNotifier() { Stopping(); }

bool ServiceNotifier::Wanted() { return getenv("NOTIFY_SOCKET") != nullptr; }

void ServiceNotifier::Send(const std::string& state) {
  int rc = sd_notify(0, state.c_str());
  if (rc < 0) CLONEFS_LOG_DEBUG("sd_notify: %s", std::strerror(-rc));
}

void ServiceNotifier::Refresh() {
  const auto up = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::steady_clock::now() - started_)
                      .count();
  StatusReport r = BuildLiveReport(engine_->Stats(), info_, static_cast<uint64_t>(getpid()),
                                   static_cast<uint64_t>(up));
  Send("STATUS=" + ServiceStatusText(r));
}

void ServiceNotifier::Ready(const Engine* engine, const ControlInfo& info) {
  if (!Wanted() || thread_.joinable()) return;
  engine_ = engine;
  info_ = info;
  started_ = std::chrono::steady_clock::now();
  Send("READY=1\nMAINPID=" + std::to_string(getpid()));
  Refresh();
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> l(mu_);
    while (!cv_.wait_for(l, period_, [this] { return stop_; })) {
      l.unlock();
      Refresh();
      l.lock();
    }
  });
}

void ServiceNotifier::Stopping(const std::string& status) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  Send("STOPPING=1\nSTATUS=" + status);
}

}  // namespace clonefs::control
