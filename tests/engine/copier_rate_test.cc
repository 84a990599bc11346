// The rate ceiling at low rates (SPEC §4, `rate`), under an injected clock:
// the bytes the copier reads in any window stay within rate x window + one
// unit, units shrink to fit the rate (down to one region, then pieces of a
// region), and a region paced in pieces yields to a user write and to
// disable/stop at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "engine_test_util.h"
#include "fake_async_source.h"

namespace clonefs {
namespace {

using test::ManualClock;
using test::Rig;

constexpr uint64_t kRegion = 64 << 10;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kSec = 1'000'000'000;

// The copier's source reads, stamped with the injected clock.
class ReadLog {
 public:
  ReadLog(Rig* rig, Clock* clock) : clock_(clock) {
    counter_.also = [this](DeviceOp op, uint64_t, uint64_t len) {
      if (op != DeviceOp::kRead) return;
      std::lock_guard<std::mutex> l(mu_);
      reads_.emplace_back(clock_->NowNanos(), len);
      total_ += len;
    };
    counter_.Install(rig->source);
  }
  uint64_t total() {
    std::lock_guard<std::mutex> l(mu_);
    return total_;
  }
  uint64_t largest_read() {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t m = 0;
    for (const auto& r : reads_) m = std::max(m, r.second);
    return m;
  }
  // The most bytes read in any window [t, t + w).
  uint64_t MaxInWindow(uint64_t w) {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t best = 0;
    for (size_t i = 0; i < reads_.size(); ++i) {
      uint64_t sum = 0;
      for (size_t j = i; j < reads_.size() && reads_[j].first < reads_[i].first + w; ++j) {
        sum += reads_[j].second;
      }
      best = std::max(best, sum);
    }
    return best;
  }

 private:
  Clock* clock_;
  test::OpCounter counter_;
  std::mutex mu_;
  std::vector<std::pair<uint64_t, uint64_t>> reads_;  // (clock ns, bytes)
  uint64_t total_ = 0;
};

// One unit of the rate as docs/design.md states it: ~1 s of rate in whole
// 4 KiB blocks, at least one block.
uint64_t Unit(uint64_t rate) { return std::max<uint64_t>(rate / 4096 * 4096, 4096); }

// Copies at `rate` over a minute of injected time in steps of a second and
// checks every window of 1, 2 and 5 s against rate x window + 100 ms of rate
// + one unit. (The lower bound is loose: a clock that jumps a second at a
// time wastes what the bucket cannot hold; the token bucket's own test
// checks the ceiling is reached.)
void CheckWindows(uint64_t rate, uint64_t regions) {
  SCOPED_TRACE("rate " + std::to_string(rate));
  ManualClock clock;
  Rig rig(regions * kRegion, kRegion, test::RandomContent(regions * kRegion, 3, 0));
  ReadLog log(&rig, &clock);
  EngineOptions o;
  o.clock = &clock;
  o.commit_interval_ms = 0;
  o.knobs.rate_bytes_per_s = rate;  // batch 16: 1 MiB units when unpaced
  ASSERT_OK(rig.Open(o));
  const uint64_t unit = Unit(rate), burst = rate / 10;
  ASSERT_TRUE(Rig::WaitFor([&] { return log.total() != 0; }));
  for (uint64_t t = 1; t <= 60; ++t) {
    clock.Advance(kSec);
    const uint64_t floor = rate * t / 2 > unit ? rate * t / 2 - unit : 0;
    ASSERT_TRUE(Rig::WaitFor([&] { return log.total() >= floor; }))
        << "t=" << t << " s: " << log.total() << " bytes read, expected " << floor;
  }
  EXPECT_LE(log.largest_read(), unit);
  for (uint64_t w : {1 * kSec, 2 * kSec, 5 * kSec}) {
    const uint64_t bound = rate * (w / kSec) + burst + unit;
    EXPECT_LE(log.MaxInWindow(w), bound) << "window " << w / kSec << " s";
  }
  EXPECT_OK(rig.engine->Shutdown());
}

TEST(CopierRate, AnyWindowHoldsRateTimesWindowPlusOneUnitAt100K) {
  CheckWindows(100 << 10, 128);
}

TEST(CopierRate, AnyWindowHoldsRateTimesWindowPlusOneUnitAt1M) {
  CheckWindows(1 << 20, 1024);
}

// A source that stops answering (an NBD server stopped, a stalled link)
// while the ceiling keeps granting: what the copier issues to it meanwhile
// stays within two seconds of the rate, so that when it answers again the
// copier does not get the whole window (64 MiB) at once. Before, 12 s of
// a silent source at 1 MiB/s left about 12 MiB in flight (and an NBD
// server stopped for 20 s at --rate 4M had 55 MiB to answer at once).
TEST(CopierRate, ASilentSourceGetsAtMostTwoSecondsOfTheRateInFlight) {
  constexpr uint64_t kRate = 1 << 20, kRegions = 1024;
  ManualClock clock;
  Rig rig(kRegions * kRegion, kRegion, test::RandomContent(kRegions * kRegion, 4, 0));
  auto src = std::make_shared<test::FakeAsyncSource>(rig.source);
  EngineOptions o;
  o.clock = &clock;
  o.commit_interval_ms = 0;
  o.knobs.rate_bytes_per_s = kRate;
  src->SetHold(true);
  ASSERT_OK(rig.Open(o, /*start=*/true, src));
  ASSERT_TRUE(Rig::WaitFor([&] { return src->inflight_bytes() != 0; }));
  // Each second of the ceiling lets the issuer issue about one more unit
  // (its sleeps are of the injected clock, slept in real time: it is given
  // up to 300 ms to do so).
  for (int t = 1; t <= 12; ++t) {
    const uint64_t before = src->reads();
    clock.Advance(kSec);
    (void)Rig::WaitFor([&] { return src->reads() > before; }, 300);
  }
  EXPECT_LE(src->max_inflight_bytes(), 2 * kRate + Unit(kRate))
      << "issued to a source that answers nothing";
  EXPECT_GE(src->max_inflight_bytes(), kRate) << "the window still holds a second of the rate";
  src->SetHold(false);
  EXPECT_OK(rig.engine->Shutdown());
}

// At 1 byte/s one 64 KiB region takes ~18 hours: it is read in 4 KiB pieces
// under its lock, and a user write to it, disable and shutdown do not wait.
TEST(CopierRate, OneBytePerSecondCopiesBlocksAndYields) {
  ManualClock clock;
  const uint64_t n = 8;
  Rig rig(n * kRegion, kRegion, test::RandomContent(n * kRegion, 4, 0));
  ReadLog log(&rig, &clock);
  EngineOptions o;
  o.clock = &clock;
  o.commit_interval_ms = 0;
  o.knobs.rate_bytes_per_s = 1;
  ASSERT_OK(rig.Open(o));
  Engine* e = rig.engine.get();
  // One block, the first unit's first piece; then its debt (~4096 s).
  ASSERT_TRUE(Rig::WaitFor([&] { return log.total() >= 4096; }));
  ASSERT_TRUE(Rig::WaitFor([&] { return e->Stats().hydrating_regions == 1; }));
  for (int i = 0; i < 60; ++i) clock.Advance(kSec);
  EXPECT_EQ(log.total(), 4096u);
  EXPECT_EQ(e->Stats().hydrated_regions, 0u);  // a region is marked only when whole

  // A partial write to the region being paced: the copier gives the region
  // up, the write hydrates it (unthrottled) and is answered, clock or no clock.
  std::vector<uint8_t> data(1000, 0xab);
  std::atomic<bool> written{false};
  std::thread writer([&] {
    EXPECT_OK(e->Write(5000, data.data(), data.size(), false));
    written = true;
  });
  ASSERT_TRUE(Rig::WaitFor([&] { return written.load(); }))
      << "a write to a region paced at 1 byte/s waited for the pace";
  writer.join();
  std::vector<uint8_t> expect(rig.source_content.begin(), rig.source_content.begin() + kRegion);
  std::copy(data.begin(), data.end(), expect.begin() + 5000);
  std::vector<uint8_t> got(kRegion);
  ASSERT_OK(e->Read(0, got.data(), got.size()));
  EXPECT_EQ(got, expect);
  EXPECT_EQ(e->Stats().hydrated_regions, 1u);

  // The debt is paid: the next region's first block, and nothing more.
  const uint64_t before = log.total();
  clock.Advance(4100 * kSec);
  ASSERT_TRUE(Rig::WaitFor([&] { return log.total() >= before + 4096; }));
  ASSERT_TRUE(Rig::WaitFor([&] { return e->Stats().hydrating_regions == 1; }));
  EXPECT_EQ(log.total(), before + 4096);

  // Disable gives the paced region up at once, unmarked.
  e->EnableHydration(false);
  ASSERT_TRUE(Rig::WaitFor([&] { return e->Stats().hydrating_regions == 0; }));
  EXPECT_EQ(e->Stats().hydrated_regions, 1u);
  // And so does shutdown, with the region in the middle of its pieces.
  e->EnableHydration(true);
  clock.Advance(4100 * kSec);
  ASSERT_TRUE(Rig::WaitFor([&] { return e->Stats().hydrating_regions == 1; }));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    EXPECT_OK(e->Shutdown());
    stopped = true;
  });
  ASSERT_TRUE(Rig::WaitFor([&] { return stopped.load(); })) << "shutdown waited for the pace";
  stopper.join();
}

}  // namespace
}  // namespace clonefs
