// Background copier tests (SPEC §4): threshold, batch and rate honoured,
// enable/disable, foreground first with a minimum pace, sparse sources
// hydrated without reads, and no recopy after a restart.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "copier/background_copier.h"
#include "engine_test_util.h"

namespace clonefs {
namespace {

using test::ConcurrencyProbe;
using test::ManualClock;
using test::Rig;

constexpr uint64_t kRegion = 64 << 10;
constexpr uint64_t kMs = 1'000'000;

struct CopierRig {
  explicit CopierRig(uint64_t regions, double holes = 0, uint64_t hold_us = 0)
      : rig(regions * kRegion, kRegion, test::RandomContent(regions * kRegion, 11, holes)),
        probe(std::make_shared<ConcurrencyProbe>(rig.source, hold_us)) {}
  Status Open(const EngineOptions& o) { return rig.Open(o, true, probe); }
  Engine* e() { return rig.engine.get(); }
  // Disables copying and waits until nothing is in flight.
  void Quiesce() {
    e()->EnableHydration(false);
    auto drained = [&] {
      return e()->Stats().hydrating_regions == 0 && probe->reads_in_flight() == 0;
    };
    ASSERT_TRUE(Rig::WaitFor(drained));
    // Once more after a pause: an issuer that passed its enabled check just
    // before the disable may lock and read one more unit.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ASSERT_TRUE(Rig::WaitFor(drained));
  }
  Rig rig;
  std::shared_ptr<ConcurrencyProbe> probe;
};

TEST(Copier, ThresholdAndBatchBoundWhatIsInFlight) {
  // Each read is held 10 ms, so that the second unit's read is issued while
  // the first one's is still held even when the machine is loaded (TSan
  // with other jobs once saw no overlap at 2 ms).
  CopierRig c(256, 0, /*hold_us=*/10000);
  EngineOptions o;
  o.knobs.hydration_threshold = 6;
  o.knobs.hydration_batch_size = 4;
  o.copier_threads = 4;
  ASSERT_OK(c.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydrated_regions >= 60; }));
  EXPECT_LE(c.probe->max_bytes(), 6 * kRegion);
  EXPECT_LE(c.probe->max_read_len(), 4 * kRegion);
  EXPECT_EQ(c.probe->max_read_len(), 4 * kRegion);  // contiguous runs are batched
  EXPECT_GE(c.probe->max_reads(), 2u);                // and units overlap

  // The new limits first, then the drain: a unit the copier picked with the
  // old ones is locked before they change, so Quiesce waits for its read.
  c.e()->SetHydrationThreshold(2);
  c.e()->SetHydrationBatchSize(1);
  c.Quiesce();
  c.probe->ResetMaxima();
  uint64_t before = c.e()->Stats().hydrated_regions;
  c.e()->EnableHydration(true);
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydrated_regions >= before + 30; }));
  EXPECT_LE(c.probe->max_bytes(), 2 * kRegion);
  EXPECT_EQ(c.probe->max_read_len(), kRegion);

  // Threshold 0 stops background copying.
  c.e()->SetHydrationThreshold(0);
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydrating_regions == 0; }));
  uint64_t reads = c.probe->reads();
  before = c.e()->Stats().hydrated_regions;
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(c.probe->reads(), reads);
  EXPECT_EQ(c.e()->Stats().hydrated_regions, before);
  EXPECT_LT(before, 256u);
  c.probe->SetHoldMicros(0);
  c.e()->SetHydrationThreshold(64);
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydration_done; }));
  EXPECT_EQ(c.rig.DestBytes(0, 256 * kRegion), c.rig.source_content);
}

TEST(Copier, DisabledCopiesNothingUntilEnabled) {
  CopierRig c(64);
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  ASSERT_OK(c.Open(o));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(c.probe->reads(), 0u);
  EXPECT_EQ(c.e()->Stats().hydrated_regions, 0u);
  c.e()->EnableHydration(true);
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydration_done; }));
  EXPECT_TRUE(c.e()->Stats().knobs.hydration_enabled);
}

TEST(Copier, RateCeilingUnderAnInjectedClock) {
  ManualClock clock;
  CopierRig c(128);
  EngineOptions o;
  o.clock = &clock;
  o.commit_interval_ms = 0;
  o.knobs.rate_bytes_per_s = 1 << 20;
  o.knobs.hydration_batch_size = 1;
  o.copier_threads = 2;
  ASSERT_OK(c.Open(o));
  const uint64_t rate = 1 << 20, burst = rate / 10, slack = burst + 2 * kRegion;
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(c.probe->read_bytes(), slack);
  uint64_t t_ms = 0;
  for (int step = 0; step < 20; ++step) {
    clock.Advance(100 * kMs);
    t_ms += 100;
    const uint64_t floor = rate * t_ms / 1000;
    // Never starved: the copier catches up with the clock...
    ASSERT_TRUE(Rig::WaitFor([&] { return c.probe->read_bytes() >= floor; }))
        << "t=" << t_ms << "ms copied " << c.probe->read_bytes();
    // ...and never passes the ceiling.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_LE(c.probe->read_bytes(), floor + slack) << "t=" << t_ms << "ms";
  }
  // Lifting the ceiling takes effect at once, clock or no clock.
  c.e()->SetRate(0);
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydrated_regions == 128; }));
}

// The copy buffers outlive short pauses (fresh memory is dear:
// copy_buffer_pool.h) and are freed once the copier has been idle for
// kPoolTrimIdleNanos.
TEST(Copier, KeepsItsBuffersUntilItHasBeenIdleForAWhile) {
  ManualClock clock;
  CopierRig c(64);
  EngineOptions o;
  o.clock = &clock;
  o.commit_interval_ms = 0;
  ASSERT_OK(c.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydrated_regions == 64; }));
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().copier_inflight_bytes == 0; }));
  // Idle, but not for long: the buffers stay.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GT(c.e()->Stats().copier_pooled_bytes, 0u);
  clock.Advance(BackgroundCopier::kPoolTrimIdleNanos - kMs);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GT(c.e()->Stats().copier_pooled_bytes, 0u);
  clock.Advance(2 * kMs);
  EXPECT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().copier_pooled_bytes == 0; }));
}

TEST(Copier, ForegroundFirstOneUnitAtTheMinimumPace) {
  ManualClock clock;
  CopierRig c(256);
  EngineOptions o;
  o.clock = &clock;
  o.commit_interval_ms = 0;
  o.knobs.hydration_enabled = false;
  o.knobs.hydration_threshold = 64;
  o.knobs.hydration_batch_size = 4;
  o.copier_threads = 4;
  o.min_background_pace_bytes_per_s = 1 << 20;
  o.foreground_idle_ms = 20;
  ASSERT_OK(c.Open(o));
  std::vector<uint8_t> buf(4 * kRegion, 1);
  ASSERT_OK(c.e()->Write(0, buf.data(), buf.size(), false));  // regions 0-3, no source read

  // Continuous user I/O (reads of hydrated regions: dest only).
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> user_ops{0};
  std::thread user([&] {
    std::vector<uint8_t> b(kRegion);
    while (!stop) {
      EXPECT_OK(c.e()->Read((user_ops % 4) * kRegion, b.data(), b.size()));
      user_ops++;
    }
  });
  ASSERT_TRUE(Rig::WaitFor([&] { return user_ops.load() > 10; }));
  ASSERT_EQ(c.probe->reads(), 0u);
  c.e()->EnableHydration(true);
  // The bucket's burst (100 ms of pace) and one unit of debt, rounded up
  // (floored, 28 regions at 1.4 s came one byte over the bound).
  const uint64_t pace = 1 << 20, slack = (pace + 9) / 10 + 4 * kRegion + 1;
  uint64_t t_ms = 0;
  for (int step = 0; step < 150; ++step) {
    // Steps shorter than the idle window, with user I/O in each: busy throughout.
    uint64_t ops = user_ops.load();
    clock.Advance(10 * kMs);
    t_ms += 10;
    ASSERT_TRUE(Rig::WaitFor([&] { return user_ops.load() > ops + 1; }));
    ASSERT_LE(c.probe->read_bytes(), (pace * t_ms + 999) / 1000 + slack) << "t=" << t_ms << "ms";
  }
  // Never starved: the minimum pace is kept.
  ASSERT_TRUE(Rig::WaitFor([&] { return c.probe->read_bytes() >= pace * t_ms / 1000; }))
      << c.probe->read_bytes();
  EXPECT_EQ(c.probe->max_reads(), 1u);  // one unit at a time while busy
  EXPECT_LT(c.e()->Stats().hydrated_regions, 200u);
  // User I/O stops: full speed again.
  stop = true;
  user.join();
  clock.Advance(100 * kMs);
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydrated_regions == 256; }));
}

TEST(Copier, SparseSourceRunsAreHydratedWithoutReads) {
  const uint64_t n = 64;
  std::vector<uint8_t> content = test::RandomContent(n * kRegion, 5, 0);
  std::fill(content.begin() + 10 * kRegion, content.begin() + 30 * kRegion, 0);
  std::fill(content.begin() + 40 * kRegion, content.begin() + 40 * kRegion + 32768, 0);
  Rig rig(n * kRegion, kRegion, content);
  std::atomic<uint64_t> hole_reads{0};
  test::OpCounter src;
  src.also = [&](DeviceOp op, uint64_t off, uint64_t len) {
    auto overlaps = [&](uint64_t a, uint64_t b) { return off < b && a < off + len; };
    if (op == DeviceOp::kRead &&
        (overlaps(10 * kRegion, 30 * kRegion) || overlaps(40 * kRegion, 40 * kRegion + 32768))) {
      hole_reads++;
    }
  };
  src.Install(rig.source);
  EngineOptions o;
  ASSERT_OK(rig.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return rig.engine->Stats().hydration_done; }));
  EXPECT_EQ(hole_reads.load(), 0u);
  EngineStats s = rig.engine->Stats();
  EXPECT_GE(s.bytes_zeroed, 20 * kRegion + 32768);
  EXPECT_EQ(s.bytes_copied + s.bytes_zeroed, n * kRegion);
  EXPECT_EQ(rig.ReadAll(), content);
  // dest space follows the data: the holes are holes in dest.
  auto d = rig.dest->NextData(10 * kRegion);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 30 * kRegion);
  rig.engine.reset();
}

TEST(Copier, RestartCopiesNothingAlreadyCommitted) {
  CopierRig c(128);
  EngineOptions o;
  o.knobs.rate_bytes_per_s = 4 << 20;
  o.knobs.hydration_batch_size = 2;
  ASSERT_OK(c.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydrated_regions >= 16; }));
  ASSERT_OK(c.e()->Shutdown());
  c.rig.engine.reset();
  std::set<uint64_t> committed;
  {
    auto md = metadata::Metadata::Open(c.rig.MdOptions());
    ASSERT_TRUE(md.ok()) << md.status().ToString();
    for (uint64_t r = 0; r < 128; ++r) {
      if ((*md)->IsRegionHydrated(r)) committed.insert(r);
    }
  }
  ASSERT_GE(committed.size(), 16u);
  ASSERT_LT(committed.size(), 128u);
  std::atomic<uint64_t> recopied{0};
  test::OpCounter src;
  src.also = [&](DeviceOp op, uint64_t off, uint64_t len) {
    if (op != DeviceOp::kRead) return;
    for (uint64_t r = off / kRegion; r * kRegion < off + len; ++r) recopied += committed.count(r);
  };
  src.Install(c.rig.source);
  o.knobs.rate_bytes_per_s = 0;
  ASSERT_OK(c.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return c.e()->Stats().hydration_done; }));
  EXPECT_EQ(recopied.load(), 0u);
  EXPECT_EQ(c.e()->Stats().bytes_copied, (128 - committed.size()) * kRegion);
  EXPECT_EQ(c.rig.ReadAll(), c.rig.source_content);
  c.rig.engine.reset();
}

}  // namespace
}  // namespace clonefs
