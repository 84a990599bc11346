// NbdDevice's reconnect backoff against a server that completes the NBD
// handshake and drops every connection at once (FakeNbdServer): the delay
// between attempts keeps doubling up to its cap, rather than restarting at
// 100 ms after each successful handshake; and it restarts at 100 ms once a
// connection has stayed up long enough to count as healthy (3 s).
#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "devices/device_test_util.h"
#include "sources/fake_nbd_server.h"
#include "sources/nbd_device.h"
#include "sources/test_server.h"

namespace clonefs {
namespace {

using std::chrono::milliseconds;
using testing::FakeNbdServer;
using testing::TempDir;
using testing::WaitFor;

int64_t GapMs(const std::vector<FakeNbdServer::Time>& t, size_t i) {
  return std::chrono::duration_cast<milliseconds>(t[i + 1] - t[i]).count();
}

std::string Gaps(const std::vector<FakeNbdServer::Time>& t) {
  std::string out;
  for (size_t i = 0; i + 1 < t.size(); ++i) out += std::to_string(GapMs(t, i)) + " ms, ";
  return out;
}

TEST(NbdBackoffTest, AServerThatDropsEveryConnectionSeesTheDelayGrowToTheCap) {
  TempDir dir;
  ASSERT_TRUE(dir.ok());
  FakeNbdServer server(dir.File("fake.sock"), 1 << 20);
  ASSERT_TRUE(server.Start());
  NbdSourceOptions options;
  options.max_connections = 1;
  std::unique_ptr<Device> dev = testing::OpenNbdUri(server.Uri(), options);
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->Size(), 1u << 20);

  // The open's connection, then one per delay: 100, 200, 400, 800, 1600 and
  // 2000 ms (the cap) after each drop.
  ASSERT_TRUE(WaitFor([&] { return server.accepts() >= 8; }, std::chrono::seconds(30)));
  std::vector<FakeNbdServer::Time> t = server.accept_times();
  const int64_t want_ms[] = {100, 200, 400, 800, 1600, 2000, 2000};
  for (size_t i = 0; i < 7; ++i) {
    // A little less than the delay: the clock is read at the drop, before
    // the next accept (never after it).
    EXPECT_GE(GapMs(t, i), want_ms[i] * 9 / 10) << "attempt " << i + 1 << "; gaps: " << Gaps(t);
  }
  // Never beyond the cap (plus scheduling slack: a sanitizer build on a
  // loaded machine takes a while to connect).
  EXPECT_LT(GapMs(t, 6), 3900) << Gaps(t);
  // The eighth accept may be seen before its handshake ends and the device
  // counts the reconnect.
  EXPECT_TRUE(WaitFor([&] { return dev->Health().reconnects >= 7u; }, std::chrono::seconds(10)))
      << dev->Health().reconnects << " reconnects";

  // A connection that stays up past 3 s proves the server healthy: the
  // reconnect after its drop comes after 100 ms again, not 2 s.
  constexpr int kHoldMs = 3500;
  server.set_hold_ms(kHoldMs);
  const size_t k = server.accepts();
  ASSERT_TRUE(WaitFor([&] { return server.accepts() >= k + 2; }, std::chrono::seconds(30)));
  t = server.accept_times();
  // Connection k was accepted after the hold was set: it was held.
  EXPECT_GE(GapMs(t, k), kHoldMs) << Gaps(t);
  // Not restarted, it would be 2000 ms (the cap) after the hold.
  EXPECT_LT(GapMs(t, k), kHoldMs + 1500) << "the backoff did not restart; gaps: " << Gaps(t);
}

}  // namespace
}  // namespace clonefs
