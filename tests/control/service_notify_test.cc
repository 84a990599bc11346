// The systemd side of the daemon (control/service_notify.h): the STATUS=
// text for each state, and the READY=1 / STATUS= / STOPPING=1 datagrams a
// service manager receives on $NOTIFY_SOCKET.
#include "control/service_notify.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "control/fake_engine.h"
#include "control/notify_socket.h"

namespace clonefs::control {
namespace {

StatusReport Hydrating() {
  StatusReport r;
  r.health = "ok";
  r.image_size = 1000ull << 20;
  r.region_size = 64 << 10;
  r.nr_regions = 16000;
  r.hydrated_bytes = 432ull << 20;
  r.copy_rate_bytes_per_s = 120ull << 20;
  r.eta_s = 192;
  r.knobs.hydration_enabled = true;
  r.knobs.hydration_threshold = 1024;
  return r;
}

TEST(ServiceStatusText, SaysWhatTheCloneIsDoing) {
  StatusReport r = Hydrating();
  EXPECT_EQ(ServiceStatusText(r), "hydrating 43.2% at 120.00 MiB/s, ETA 3m12s");
  r.eta_s.reset();
  r.eta_reason = "measuring";
  EXPECT_EQ(ServiceStatusText(r), "hydrating 43.2% at 120.00 MiB/s, no ETA: measuring");
  r.health = "degraded: dest full";
  EXPECT_EQ(ServiceStatusText(r),
            "hydrating 43.2% at 120.00 MiB/s, no ETA: measuring; degraded: dest full");
  r = Hydrating();
  r.knobs.hydration_enabled = false;
  EXPECT_EQ(ServiceStatusText(r), "paused at 43.2% (hydration disabled)");
  r.knobs.hydration_enabled = true;
  r.knobs.hydration_threshold = 0;
  EXPECT_EQ(ServiceStatusText(r), "paused at 43.2% (hydration_threshold 0)");
  r = Hydrating();
  r.mode = EngineMode::kReadOnly;
  EXPECT_EQ(ServiceStatusText(r).rfind("read-only at 43.2%: a metadata commit failed", 0), 0u)
      << ServiceStatusText(r);
  r.mode = EngineMode::kFail;
  EXPECT_EQ(ServiceStatusText(r).rfind("failed at 43.2%", 0), 0u) << ServiceStatusText(r);
  r = Hydrating();
  r.source_change = "source size changed from 1048576000 to 4096 bytes";
  EXPECT_EQ(ServiceStatusText(r), "source changed: " + r.source_change);
  r = Hydrating();
  r.hydrated_bytes = r.image_size;
  r.hydration_done = true;
  EXPECT_EQ(ServiceStatusText(r), "complete: 1000.00 MiB hydrated");
}

TEST(ServiceNotifier, SendsNothingWithoutANotifySocket) {
  unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(ServiceNotifier::Wanted());
  testing::FakeEngineForControlTests engine;
  ServiceNotifier n(std::chrono::milliseconds(10));
  n.Ready(&engine, ControlInfo{});
  n.Stopping();  // no thread was started: returns at once
}

TEST(ServiceNotifier, ReadyThenLiveStatusThenStopping) {
  clonefs::testing::NotifySocket sock;
  setenv("NOTIFY_SOCKET", sock.path().c_str(), 1);
  testing::FakeEngineForControlTests engine;
  EngineStats s = engine.Stats();
  s.knobs.hydration_enabled = true;
  s.knobs.hydration_threshold = 1024;
  s.hydrated_bytes = 1ull << 20;  // 10% of the fake's 10 MiB
  engine.SetStats(s);
  {
    ServiceNotifier n(std::chrono::milliseconds(20));
    n.Ready(&engine, ControlInfo{});
    EXPECT_EQ(sock.Next(), "READY=1\nMAINPID=" + std::to_string(getpid()));
    EXPECT_EQ(sock.Next().rfind("STATUS=hydrating 10.0% at ", 0), 0u);
    // The refresh follows the engine.
    s.knobs.hydration_enabled = false;
    engine.SetStats(s);
    std::string m;
    do {
      m = sock.Next();
    } while (!m.empty() && m.find("paused") == std::string::npos);
    EXPECT_EQ(m, "STATUS=paused at 10.0% (hydration disabled)");
    n.Stopping("unmounted");
    std::string last;
    for (std::string x = sock.Next(200); !x.empty(); x = sock.Next(200)) last = x;
    EXPECT_EQ(last, "STOPPING=1\nSTATUS=unmounted");
  }
  unsetenv("NOTIFY_SOCKET");
}

}  // namespace
}  // namespace clonefs::control
