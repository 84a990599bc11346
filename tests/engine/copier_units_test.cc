// Unit tests of the copier's pure pieces: token bucket, retry backoff,
// source-wide backoff, rate meter, region lock table, copy buffer and buffer
// pool, zero-block detection, read hints; access profiles (format, source
// check, mapping, recorder).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "copier/cache_dropper.h"
#include "copier/copy_buffer.h"
#include "copier/copy_buffer_pool.h"
#include "copier/delivery_rate.h"
#include "copier/dest_full_gate.h"
#include "copier/health_tracker.h"
#include "copier/latency_floor.h"
#include "copier/link_window.h"
#include "copier/rate_meter.h"
#include "copier/read_hints.h"
#include "copier/region_locks.h"
#include "copier/retry_backoff.h"
#include "copier/source_backoff.h"
#include "copier/source_watch.h"
#include "copier/token_bucket.h"
#include "copier/zero_blocks.h"
#include "devices/mem_device.h"
#include "profile/profile.h"
#include "profile/profile_recorder.h"

namespace clonefs {
namespace {

constexpr uint64_t kSec = 1'000'000'000;

TEST(CopyBuffer, OutOfMemoryIsEnomemAndKeepsTheBuffer) {
  CopyBuffer b;
  Result<size_t> r = b.Reserve(100);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, 4096u);
  CopyBuffer::SetAllocationLimitForTesting(64 << 10);
  r = b.Reserve(1 << 20);
  CopyBuffer::SetAllocationLimitForTesting(SIZE_MAX);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsIoError()) << r.status().ToString();
  EXPECT_EQ(r.status().ToErrno(), ENOMEM);
  EXPECT_EQ(b.capacity(), 4096u);  // what it had
  r = b.Reserve(1 << 20);          // memory is back
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, size_t{1} << 20);
}

// The floor is the shortest answer of the current and the last window: a
// faster answer lowers it at once, a slower link raises it within two
// windows, and an idle source keeps the last floor it had.
// The highest rate over spans of the given length, not the average: a link
// busy half the time is measured at its busy rate; old bytes age out.
TEST(DeliveryRate, HighestRateOverTheSpanWithinTheHistory) {
  constexpr uint64_t kMs = 1'000'000, kB = DeliveryRate::kBucketNanos;
  constexpr uint64_t t0 = 1000 * DeliveryRate::kHistoryNanos;
  DeliveryRate r;
  EXPECT_EQ(r.Max(100 * kMs, t0), 0u);
  // 1 MiB every 10 ms for 200 ms (100 MiB/s), then nothing for 200 ms.
  for (uint64_t i = 0; i < 20; ++i) r.Note(1 << 20, t0 + i * kB);
  const uint64_t busy = (1ull << 20) * 100;
  EXPECT_EQ(r.Max(100 * kMs, t0 + 400 * kMs), busy);
  // A span longer than the burst averages the burst with idleness.
  EXPECT_EQ(r.Max(400 * kMs, t0 + 400 * kMs), busy / 2);
  // Spans round up to whole buckets, and are at least one.
  EXPECT_EQ(r.Max(1, t0 + 400 * kMs), busy);
  EXPECT_EQ(r.Max(15 * kMs, t0 + 400 * kMs), busy);
  // A clock reading older than the newest bucket counts in it.
  r.Note(2 << 20, t0);
  EXPECT_EQ(r.Max(10 * kMs, t0 + 400 * kMs), 2 * busy);
  // Once the history has passed, the rate is 0 again.
  EXPECT_EQ(r.Max(100 * kMs, t0 + 400 * kMs + DeliveryRate::kHistoryNanos), 0u);
  // Spans are capped at half the history.
  r.Note(1 << 20, t0 + 10 * DeliveryRate::kHistoryNanos);
  EXPECT_EQ(r.Max(100 * DeliveryRate::kHistoryNanos, t0 + 10 * DeliveryRate::kHistoryNanos),
            (1ull << 20) * 1'000'000'000 / DeliveryRate::kMaxSpanNanos);
}

// The window follows what the link delivers: the least window until a read
// is answered, then kGain x rate x floor + one piece, within the target;
// pieces are kPieceNanos of the rate, a power of two.
TEST(LinkWindow, TwiceTheBandwidthDelayProductPlusAPiece) {
  constexpr uint64_t kMs = 1'000'000, t0 = 100 * LatencyFloor::kWindowNanos;
  constexpr uint64_t kTarget = 64ull << 20;
  LatencyFloor floor;
  LinkWindow w(&floor);
  EXPECT_EQ(w.Window(kTarget, t0), LinkWindow::kMinWindow);
  EXPECT_EQ(w.Window(256 << 10, t0), 256u << 10);  // never above the target
  EXPECT_EQ(w.PieceCap(t0), LinkWindow::kMinWindow);  // a small first piece
  // 20 ms floor; 40 MB/s delivered for 1 s (400 kB every 10 ms).
  floor.Note(20 * kMs, t0);
  for (uint64_t i = 0; i < 100; ++i) w.NoteDelivered(400'000, t0 + i * 10 * kMs);
  const uint64_t now = t0 + 1000 * kMs;
  const uint64_t rate = 40'000'000;
  EXPECT_EQ(LinkWindow::PieceCapAt(rate), 512u << 10);  // 25 ms = 1 MB -> 512 KiB
  EXPECT_EQ(w.PieceCap(now), 512u << 10);
  const uint64_t expect = 2 * rate / 50 + (512 << 10);  // 2 x 40 MB/s x 20 ms + a piece
  EXPECT_NEAR(static_cast<double>(w.Window(kTarget, now)), static_cast<double>(expect),
              0.05 * static_cast<double>(expect));
  EXPECT_EQ(w.Window(1 << 20, now), 1u << 20);  // capped by the target
  // Pieces: at least kMinPiece, at most a copy chunk, powers of two.
  EXPECT_EQ(LinkWindow::PieceCapAt(0), LinkWindow::kMinPiece);
  EXPECT_EQ(LinkWindow::PieceCapAt(10'000'000), 128u << 10);
  EXPECT_EQ(LinkWindow::PieceCapAt(1'000'000'000), kMaxCopyChunk);
}

// Every kProbeIntervalNanos the window drops to the least for three floors,
// so a read crosses an idle link: a floor inflated by queueing at the
// server does not ratchet the window up.
TEST(LinkWindow, ProbesTheFloorEveryFewSeconds) {
  constexpr uint64_t kMs = 1'000'000, t0 = 100 * LatencyFloor::kWindowNanos;
  constexpr uint64_t kTarget = 64ull << 20;
  LatencyFloor floor;
  LinkWindow w(&floor);
  w.Tick(t0);  // no floor yet: nothing scheduled
  floor.Note(50 * kMs, t0);
  w.Tick(t0);  // the first probe is due kProbeIntervalNanos from now
  auto deliver = [&](uint64_t from, uint64_t to) {
    for (uint64_t t = from; t < to; t += 10 * kMs) w.NoteDelivered(1'000'000, t);  // 100 MB/s
  };
  deliver(t0, t0 + LinkWindow::kProbeIntervalNanos);
  const uint64_t due = t0 + LinkWindow::kProbeIntervalNanos;
  w.Tick(due - 1);
  EXPECT_FALSE(w.Probing(due - 1));
  EXPECT_GT(w.Window(kTarget, due - 1), 8u << 20);
  w.Tick(due);
  EXPECT_TRUE(w.Probing(due));
  EXPECT_EQ(w.Window(kTarget, due), LinkWindow::kMinWindow);
  EXPECT_EQ(w.Window(kTarget, due + 150 * kMs - 1), LinkWindow::kMinWindow);  // 3 floors
  EXPECT_FALSE(w.Probing(due + 150 * kMs));
  EXPECT_GT(w.Window(kTarget, due + 150 * kMs), 8u << 20);
  // The next one comes kProbeIntervalNanos later, not before.
  w.Tick(due + 150 * kMs);
  w.Tick(due + LinkWindow::kProbeIntervalNanos - 1);
  EXPECT_FALSE(w.Probing(due + LinkWindow::kProbeIntervalNanos - 1));
  w.Tick(due + LinkWindow::kProbeIntervalNanos);
  EXPECT_TRUE(w.Probing(due + LinkWindow::kProbeIntervalNanos));
}

// A source so distant that three floors exceed a quarter of the interval:
// the probe lasts that quarter, so the window is not always the least.
TEST(LinkWindow, AProbeLastsAtMostAQuarterOfTheInterval) {
  constexpr uint64_t kMs = 1'000'000, t0 = 100 * LatencyFloor::kWindowNanos;
  LatencyFloor floor;
  LinkWindow w(&floor);
  floor.Note(2000 * kMs, t0);
  w.Tick(t0);
  const uint64_t due = t0 + LinkWindow::kProbeIntervalNanos;
  w.Tick(due);
  EXPECT_TRUE(w.Probing(due + LinkWindow::kProbeIntervalNanos / 4 - 1));
  EXPECT_FALSE(w.Probing(due + LinkWindow::kProbeIntervalNanos / 4));
}

TEST(LatencyFloor, MinimumOfTheLastTwoWindowsKeptWhileIdle) {
  constexpr uint64_t kMs = 1'000'000, kW = LatencyFloor::kWindowNanos, t0 = 7 * kW;
  LatencyFloor f;
  EXPECT_EQ(f.Get(t0), 0u);
  f.Note(50 * kMs, t0);
  EXPECT_EQ(f.Get(t0), 50 * kMs);
  f.Note(30 * kMs, t0 + kW / 2);
  f.Note(90 * kMs, t0 + kW / 2);
  EXPECT_EQ(f.Get(t0 + kW / 2), 30 * kMs);
  // The next window: 30 ms still counts, a slower answer does not raise it.
  f.Note(80 * kMs, t0 + kW + 1);
  EXPECT_EQ(f.Get(t0 + kW + 2), 30 * kMs);
  // Two windows on, only the 80 ms window is left: the link got slower.
  f.Note(85 * kMs, t0 + 2 * kW + 2);
  EXPECT_EQ(f.Get(t0 + 2 * kW + 3), 80 * kMs);
  // Idle for many windows: the last window with an answer still counts.
  EXPECT_EQ(f.Get(t0 + 20 * kW), 85 * kMs);
  EXPECT_EQ(f.Get(t0 + 40 * kW), 85 * kMs);
  f.Note(5 * kMs, t0 + 41 * kW);
  EXPECT_EQ(f.Get(t0 + 41 * kW), 5 * kMs);
  // A caller whose clock reading predates the window's start (another
  // thread rotated first) belongs to the current window: the last window's
  // minimum is not thrown away by a second rotation.
  f.Note(40 * kMs, t0 + 42 * kW);
  EXPECT_EQ(f.Get(t0 + 42 * kW - 1), 5 * kMs);
  f.Note(60 * kMs, t0 + 42 * kW - 2);
  EXPECT_EQ(f.Get(t0 + 42 * kW), 5 * kMs);
}

TEST(CopyBufferPool, ReusesBuffersAndReportsEnomemAsAStatus) {
  CopyBufferPool pool;
  Result<std::unique_ptr<CopyBuffer>> a = pool.Acquire(1 << 20);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  uint8_t* mem = (*a)->data();
  pool.Release(std::move(*a));
  EXPECT_EQ(pool.idle_bytes(), 1u << 20);
  Result<std::unique_ptr<CopyBuffer>> b = pool.Acquire(64 << 10);  // reused, not shrunk
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->data(), mem);
  EXPECT_EQ(pool.idle_bytes(), 0u);
  CopyBuffer::SetAllocationLimitForTesting(0);
  Result<std::unique_ptr<CopyBuffer>> c = pool.Acquire(4096);
  CopyBuffer::SetAllocationLimitForTesting(SIZE_MAX);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().ToErrno(), ENOMEM);
  pool.Release(std::move(*b));
  pool.Trim();
  EXPECT_EQ(pool.idle_bytes(), 0u);
}

TEST(CopyBufferPool, SizeClassesAreRegionMultiplesThenPowersOfTwo) {
  EXPECT_EQ(CopyBufferPool::SizeClass(1), CopyBufferPool::kMinClass);
  EXPECT_EQ(CopyBufferPool::SizeClass(64 << 10), 64u << 10);
  EXPECT_EQ(CopyBufferPool::SizeClass((64 << 10) + 1), 128u << 10);
  EXPECT_EQ(CopyBufferPool::SizeClass(3 * (64 << 10)), 3u * (64 << 10));  // not 256 KiB
  EXPECT_EQ(CopyBufferPool::SizeClass(1 << 20), 1u << 20);
  EXPECT_EQ(CopyBufferPool::SizeClass((1 << 20) + 1), 2u << 20);
  EXPECT_EQ(CopyBufferPool::SizeClass(3 << 20), 4u << 20);
  EXPECT_EQ(CopyBufferPool::SizeClass(kMaxCopyChunk + 1), kMaxCopyChunk);
}

// Fresh memory costs page faults (copy_buffer_pool.h): a buffer handed back
// is reused as it is, by the smallest request it fits, and a request no idle
// buffer fits gets a new buffer instead of growing (freeing) an idle one.
TEST(CopyBufferPool, TakesTheSmallestIdleBufferThatFitsAndNeverReallocatesOne) {
  CopyBufferPool pool;
  auto small = pool.Acquire(64 << 10);
  auto large = pool.Acquire(1 << 20);
  ASSERT_TRUE(small.ok() && large.ok());
  EXPECT_EQ((*small)->capacity(), 64u << 10);
  EXPECT_EQ((*large)->capacity(), 1u << 20);
  uint8_t* small_mem = (*small)->data();
  uint8_t* large_mem = (*large)->data();
  pool.Release(std::move(*large));
  pool.Release(std::move(*small));
  EXPECT_EQ(pool.idle_bytes(), (1u << 20) + (64u << 10));

  auto a = pool.Acquire(4096);  // the small one fits: the large one stays idle
  ASSERT_TRUE(a.ok());
  EXPECT_EQ((*a)->data(), small_mem);
  auto b = pool.Acquire(200 << 10);  // only the large one fits
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)->data(), large_mem);
  pool.Release(std::move(*a));
  auto c = pool.Acquire(2 << 20);  // nothing idle fits: a new 2 MiB buffer
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->capacity(), 2u << 20);
  EXPECT_NE((*c)->data(), small_mem);
  EXPECT_EQ(pool.idle_bytes(), 64u << 10);  // the small one is still there, unchanged
  auto d = pool.Acquire(64 << 10);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->data(), small_mem);
}

// The pool keeps at most its cap of idle buffers; one handed back beyond
// it is freed rather than kept.
TEST(CopyBufferPool, KeepsAtMostItsCapOfIdleBuffers) {
  CopyBufferPool pool(/*max_idle_bytes=*/1 << 20);
  auto a = pool.Acquire(512 << 10);
  auto b = pool.Acquire(512 << 10);
  auto c = pool.Acquire(256 << 10);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  pool.Release(std::move(*a));
  pool.Release(std::move(*b));
  EXPECT_EQ(pool.idle_bytes(), 1u << 20);
  pool.Release(std::move(*c));  // over the cap: freed
  EXPECT_EQ(pool.idle_bytes(), 1u << 20);
  auto d = pool.Acquire(256 << 10);  // served by an idle 512 KiB buffer
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)->capacity(), 512u << 10);
  EXPECT_EQ(pool.idle_bytes(), 512u << 10);
}

std::vector<std::string> ZeroRuns(uint64_t off, const std::vector<uint8_t>& data) {
  std::vector<std::string> out;
  Status s = ForEachZeroRun(off, data.data(), data.size(), [&](uint64_t o, uint64_t n, bool z) {
    out.push_back((z ? "zero " : "data ") + std::to_string(o) + "+" + std::to_string(n));
    return Status::OK();
  });
  EXPECT_TRUE(s.ok());
  return out;
}

TEST(ZeroBlocks, RunsFollowBlocksAlignedToImageOffsets) {
  std::vector<uint8_t> d(5 * 4096, 0);
  EXPECT_EQ(ZeroRuns(8192, d), (std::vector<std::string>{"zero 8192+20480"}));
  d[4096 + 4095] = 1;  // block 1 (image 12288..16383) is data
  d[3 * 4096] = 7;     // and block 3, at its first byte
  EXPECT_EQ(ZeroRuns(8192, d),
            (std::vector<std::string>{"zero 8192+4096", "data 12288+4096", "zero 16384+4096",
                                      "data 20480+4096", "zero 24576+4096"}));
  // Unaligned ends: partial blocks are judged by their own bytes.
  std::vector<uint8_t> u(100 + 4096 + 50, 0);
  u[100 + 10] = 1;  // in the first full block
  EXPECT_EQ(ZeroRuns(4096 - 100, u),
            (std::vector<std::string>{"zero 3996+100", "data 4096+4096", "zero 8192+50"}));
  EXPECT_TRUE(ZeroRuns(0, {}).empty());
  EXPECT_TRUE(AllZero(d.data(), 4096));
  EXPECT_FALSE(AllZero(d.data(), 8192));
  std::vector<uint8_t> tail(4096 + 3, 0);
  tail[4096 + 2] = 1;  // a non-zero byte after the last whole word
  EXPECT_FALSE(AllZero(tail.data() + 1, tail.size() - 1));
}

TEST(ZeroBlocks, ErrorsStopTheWalk) {
  std::vector<uint8_t> d(3 * 4096, 0);
  d[4096] = 1;
  int calls = 0;
  Status s = ForEachZeroRun(0, d.data(), d.size(), [&](uint64_t, uint64_t, bool) {
    ++calls;
    return Status::IoError("full", ENOSPC);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.ToErrno(), ENOSPC);
}

constexpr uint64_t kMsNs = 1'000'000;

TEST(SourceBackoff, ConsecutiveFailuresBackOffAndASuccessEndsIt) {
  SourceBackoff b;
  for (uint32_t i = 1; i < SourceBackoff::kFailuresToBackOff; ++i) {
    EXPECT_FALSE(b.RecordFailure(i, "EIO"));
  }
  EXPECT_FALSE(b.RecordSuccess(100));  // a success in between: start over
  EXPECT_EQ(b.consecutive_failures(), 0u);
  for (uint32_t i = 1; i < SourceBackoff::kFailuresToBackOff; ++i) {
    EXPECT_FALSE(b.RecordFailure(1000, "EIO"));
  }
  EXPECT_TRUE(b.RecordFailure(1000, "EIO: last"));
  EXPECT_EQ(b.state(), SourceBackoff::State::kFailing);
  EXPECT_EQ(b.reason(), "EIO: last");
  EXPECT_EQ(b.since_ns(), 1000u);
  EXPECT_FALSE(b.RecordFailure(1001, "more"));  // already failing
  // Probes: one at a time, 100 ms doubling to 1 s.
  uint64_t now = 1000;
  const uint64_t want[] = {100, 200, 400, 800, 1000, 1000};
  for (uint64_t d : want) {
    EXPECT_EQ(b.delay_ns(), d * kMsNs);
    EXPECT_FALSE(b.ProbeDue(now + d * kMsNs - 1));
    now += d * kMsNs;
    ASSERT_TRUE(b.ProbeDue(now));
    b.SetProbeInFlight(true);
    EXPECT_FALSE(b.ProbeDue(now + 10 * 1000 * kMsNs));  // one at a time
    b.RecordProbeFailure(now);
    b.SetProbeInFlight(false);
  }
  EXPECT_TRUE(b.RecordSuccess(now));
  EXPECT_EQ(b.state(), SourceBackoff::State::kRunning);
  EXPECT_EQ(b.reason(), "");
  EXPECT_EQ(b.since_ns(), 0u);
  EXPECT_FALSE(b.ProbeDue(now));
}

TEST(SourceBackoff, DownUntilUp) {
  SourceBackoff b;
  EXPECT_TRUE(b.RecordDown(5, "reconnecting"));
  EXPECT_FALSE(b.RecordDown(6, "still"));
  EXPECT_EQ(b.reason(), "reconnecting");
  EXPECT_EQ(b.since_ns(), 5u);
  EXPECT_FALSE(b.RecordSuccess(7));  // only the source's health ends kDown
  EXPECT_FALSE(b.RecordFailure(7, "x"));
  EXPECT_EQ(b.state(), SourceBackoff::State::kDown);
  EXPECT_FALSE(b.ProbeDue(UINT64_MAX));
  EXPECT_TRUE(b.RecordUp(9));
  EXPECT_EQ(b.state(), SourceBackoff::State::kRunning);
  EXPECT_FALSE(b.RecordUp(10));
  // Failing, then down: down wins.
  for (uint32_t i = 0; i < SourceBackoff::kFailuresToBackOff; ++i) (void)b.RecordFailure(20, "e");
  EXPECT_EQ(b.state(), SourceBackoff::State::kFailing);
  EXPECT_TRUE(b.RecordDown(30, "gone"));
  EXPECT_EQ(b.state(), SourceBackoff::State::kDown);
  EXPECT_STREQ(SourceBackoffStateName(b.state()), "source down");
}

TEST(TokenBucket, UnlimitedNeverWaits) {
  TokenBucket b(0);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(b.WaitNanos(i), 0u);
    b.Charge(1ull << 30, i);
  }
}

TEST(TokenBucket, LongRunRateIsTheCeiling) {
  // Simulate a copier that charges 64 KiB units as fast as allowed for 10 s
  // of virtual time; bytes moved must stay within burst + rate*t + one unit.
  const uint64_t rate = 10ull << 20, unit = 64 << 10;
  TokenBucket b(rate);
  uint64_t now = 5 * kSec, moved = 0;
  const uint64_t start = now;
  while (now < start + 10 * kSec) {
    uint64_t w = b.WaitNanos(now);
    if (w) {
      now += w;
      continue;
    }
    b.Charge(unit, now);
    moved += unit;
    uint64_t allowed = rate * (now - start) / kSec + rate / 10 + unit;
    ASSERT_LE(moved, allowed) << "at t=" << (now - start);
  }
  // And the ceiling is actually reached (within 2%).
  EXPECT_GE(moved, rate * 10 * 98 / 100);
}

TEST(TokenBucket, DebtIsPaidBeforeTheNextUnit) {
  TokenBucket b(1 << 20);  // 1 MiB/s, burst 100 KiB
  EXPECT_EQ(b.WaitNanos(0), 0u);
  b.Charge(1 << 20, 0);  // 1 MiB unit, ~0.9 s of debt
  uint64_t w = b.WaitNanos(0);
  EXPECT_GT(w, 850'000'000u);
  EXPECT_LT(w, 950'000'000u);
  EXPECT_EQ(b.WaitNanos(w), 0u);
}

TEST(TokenBucket, RateChangeTakesEffect) {
  TokenBucket b(1 << 20);
  b.Charge(4 << 20, 0);
  EXPECT_GT(b.WaitNanos(0), 3 * kSec);
  b.SetRate(0);
  EXPECT_EQ(b.WaitNanos(0), 0u);
  b.SetRate(64 << 20);
  EXPECT_LT(b.WaitNanos(0), kSec / 10);
}

TEST(TokenBucket, UnitsShrinkToFitTheRate) {
  EXPECT_EQ(TokenBucket::UnitBytes(0), UINT64_MAX);
  EXPECT_EQ(TokenBucket::UnitBytes(1), 4096u);        // one block, paid back in ~68 min
  EXPECT_EQ(TokenBucket::UnitBytes(100 << 10), 100u << 10);
  EXPECT_EQ(TokenBucket::UnitBytes(1000000), 999424u);  // whole blocks
  EXPECT_EQ(TokenBucket::UnitBytes(1 << 20), 1u << 20);
}

// A charger that takes one unit whenever the bucket allows, for a minute of
// virtual time: every window of a few seconds holds at most
// rate x window + burst + one unit, at 100K, 1M and 1 byte/s.
TEST(TokenBucket, AnyWindowOfAMinuteHoldsRateTimesWindowPlusOneUnit) {
  for (uint64_t rate : {uint64_t{100} << 10, uint64_t{1} << 20, uint64_t{1}}) {
    SCOPED_TRACE("rate " + std::to_string(rate));
    TokenBucket b(rate);
    const uint64_t unit = TokenBucket::UnitBytes(rate);
    const uint64_t start = 7 * kSec;
    std::vector<std::pair<uint64_t, uint64_t>> charges;  // (time, bytes)
    uint64_t now = start;
    while (now < start + 60 * kSec) {
      if (uint64_t w = b.WaitNanos(now); w != 0) {
        now += w;
        continue;
      }
      b.Charge(unit, now);
      charges.emplace_back(now, unit);
    }
    uint64_t total = 0;
    for (const auto& c : charges) total += c.second;
    if (rate >= 4096) {
      EXPECT_GE(total, rate * 60 * 98 / 100);  // and the ceiling is reached
    } else {
      EXPECT_EQ(total, 4096u);  // one block; the next after ~68 minutes
    }
    for (uint64_t w_s : {1, 2, 3, 5, 10}) {
      const double bound = static_cast<double>(rate) * (static_cast<double>(w_s) + 0.1) +
                           static_cast<double>(unit);
      for (size_t i = 0; i < charges.size(); ++i) {
        uint64_t sum = 0;
        for (size_t j = i; j < charges.size() && charges[j].first < charges[i].first + w_s * kSec;
             ++j) {
          sum += charges[j].second;
        }
        ASSERT_LE(static_cast<double>(sum), bound) << "window of " << w_s << " s at "
                                                   << (charges[i].first - start) << " ns";
      }
    }
  }
}

TEST(TokenBucket, LoweringTheRateKeepsAtMostOneUnitOfDebt) {
  TokenBucket b(100 << 20);
  b.Charge(64 << 20, 0);  // a large debt at 100 MiB/s
  b.SetRate(1);
  // At most one unit (4 KiB) at the new rate: ~68 minutes, not ~97 days.
  EXPECT_LE(b.WaitNanos(0), 4097 * kSec);
  EXPECT_GE(b.WaitNanos(0), 4000 * kSec);
}

TEST(RetryBackoff, DoublesPerFailureAndCaps) {
  RetryBackoff b(100'000'000, 60 * kSec);
  uint64_t now = 1000;
  b.RecordFailure(7, 1, now);
  EXPECT_TRUE(b.Blocked(7, now));
  EXPECT_FALSE(b.Blocked(8, now));
  EXPECT_TRUE(b.HasFailed(7));
  EXPECT_EQ(b.DelayOf(7), 100'000'000u);
  EXPECT_FALSE(b.Blocked(7, now + 100'000'000));
  uint64_t expect = 100'000'000;
  for (int i = 0; i < 20; ++i) {
    b.RecordFailure(7, 1, now);
    expect = std::min<uint64_t>(expect * 2, 60 * kSec);
    EXPECT_EQ(b.DelayOf(7), expect);
  }
  EXPECT_EQ(b.DelayOf(7), 60 * kSec);
  EXPECT_EQ(b.NextRetryNanos(), now + 60 * kSec);
  b.RecordSuccess(0, 10);
  EXPECT_FALSE(b.HasFailed(7));
  EXPECT_EQ(b.NextRetryNanos(), UINT64_MAX);
}

TEST(RetryBackoff, RunFailureBlocksEveryRegionOfIt) {
  RetryBackoff b(1000);
  b.RecordFailure(10, 4, 0);
  for (uint64_t r = 10; r < 14; ++r) EXPECT_TRUE(b.Blocked(r, 0)) << r;
  EXPECT_FALSE(b.Blocked(9, 0));
  EXPECT_FALSE(b.Blocked(14, 0));
  b.RecordSuccess(11, 1);
  EXPECT_FALSE(b.HasFailed(11));
  EXPECT_TRUE(b.HasFailed(12));
}

TEST(RetryBackoff, BoundedTableFallsBackToGlobalPause) {
  RetryBackoff b(1000, 1'000'000, /*max_entries=*/8);
  b.RecordFailure(0, 8, 0);
  EXPECT_EQ(b.size(), 8u);
  b.RecordFailure(100, 1, 5000);  // table full: global pause
  EXPECT_EQ(b.size(), 8u);
  EXPECT_TRUE(b.Blocked(500, 5000));  // any region
  EXPECT_FALSE(b.Blocked(500, 5000 + 1000));
  b.RecordFailure(101, 1, 10000);  // pause doubles
  EXPECT_TRUE(b.Blocked(500, 10000 + 1999));
  EXPECT_FALSE(b.Blocked(500, 10000 + 2000));
}

TEST(RateMeter, FollowsRecentRate) {
  RateMeter m(0);
  // 10 MiB/s for 10 s, in 100 ms steps.
  uint64_t t = 0;
  for (int i = 0; i < 100; ++i) {
    t += kSec / 10;
    m.Add(1 << 20, t);
  }
  uint64_t r = m.Rate(t);
  EXPECT_GT(r, 9u << 20);
  EXPECT_LT(r, 11u << 20);
  // Slower: 1 MiB/s for 20 s (four windows).
  for (int i = 0; i < 200; ++i) {
    t += kSec / 10;
    m.Add(100 << 10, t);
  }
  r = m.Rate(t);
  EXPECT_GT(r, 1000u << 10);
  EXPECT_LT(r, 1200u << 10);
}

TEST(RateMeter, FallsToZeroWhenNothingMoves) {
  RateMeter m(0);
  EXPECT_EQ(m.Rate(kSec), 0u);  // nothing yet
  for (uint64_t t = 1; t <= 20; ++t) m.Add(1 << 20, t * kSec);
  EXPECT_GT(m.Rate(20 * kSec), 900u << 10);
  // It decays, then reads exactly 0 after the idle limit (2 windows by default).
  EXPECT_LT(m.Rate(25 * kSec), 500u << 10);
  EXPECT_GT(m.Rate(29 * kSec), 0u);
  EXPECT_EQ(m.Rate(31 * kSec), 0u);
  EXPECT_EQ(m.Rate(21 * kSec + 1, kSec), 0u);  // a caller's shorter limit
}

// A copier that resumes after a long pause reads its rate again at once,
// not after ramping up over a window.
TEST(RateMeter, ResumingAfterAPauseStartsANewMeasurement) {
  RateMeter m(0);
  uint64_t t = 0;
  for (int i = 0; i < 100; ++i) m.Add(1 << 20, t += kSec / 10);  // 10 MiB/s
  t += 60 * kSec;
  EXPECT_EQ(m.Rate(t), 0u);
  for (int i = 0; i < 10; ++i) m.Add(1 << 20, t += kSec / 10);  // 10 MiB/s again, 1 s
  const uint64_t r = m.Rate(t);
  EXPECT_GT(r, 8u << 20);
  EXPECT_LT(r, 12u << 20);
}

// Pieces of 100 KiB once a second (a copier paced at 100 KiB/s) read as a
// steady 100 KiB/s between the pieces with an 8 s window, not as bursts.
TEST(RateMeter, SteadyBetweenPacedPieces) {
  RateMeter m(0);
  m.SetWindow(8 * kSec);
  EXPECT_EQ(m.window(), 8 * kSec);
  for (uint64_t t = 0; t < 60; ++t) m.Add(100 << 10, t * kSec);
  for (uint64_t ms = 30'000; ms < 60'000; ms += 100) {
    const uint64_t r = m.Rate(ms * 1'000'000);
    EXPECT_GT(r, 90u << 10) << ms;
    EXPECT_LT(r, 112u << 10) << ms;
  }
  // The first seconds are not read low: one piece 1 s after the start.
  RateMeter f(0);
  f.SetWindow(8 * kSec);
  f.Add(100 << 10, kSec);
  EXPECT_GT(f.Rate(kSec), 90u << 10);
}

TEST(RegionLockTable, ExclusivePerRegion) {
  RegionLockTable t;
  EXPECT_TRUE(t.TryLock(5));
  EXPECT_FALSE(t.TryLock(5));
  EXPECT_TRUE(t.TryLock(5 + 16));  // same shard, different region
  EXPECT_EQ(t.InFlight(), 2u);
  EXPECT_TRUE(t.IsLocked(5));
  t.Unlock(5);
  EXPECT_FALSE(t.IsLocked(5));
  t.Unlock(21);
  EXPECT_EQ(t.InFlight(), 0u);
}

TEST(RegionLockTable, AnyWaitingSeesBlockedLockers) {
  RegionLockTable t;
  ASSERT_TRUE(t.TryLock(3));
  ASSERT_TRUE(t.TryLock(4));
  EXPECT_FALSE(t.AnyWaiting(0, 10));
  std::thread waiter([&] {
    t.Lock(4);
    t.Unlock(4);
  });
  while (!t.AnyWaiting(4, 1)) std::this_thread::yield();
  EXPECT_TRUE(t.AnyWaiting(3, 2));
  EXPECT_FALSE(t.AnyWaiting(3, 1));
  EXPECT_FALSE(t.AnyWaiting(20, 1));  // same shard, another region
  t.Unlock(4);
  waiter.join();
  EXPECT_FALSE(t.AnyWaiting(0, 10));
  t.Unlock(3);
}

TEST(RegionLockTable, LockWaitsForHolder) {
  RegionLockTable t;
  t.Lock(3);
  std::atomic<bool> got{false};
  std::thread w([&] {
    t.Lock(3);
    got = true;
    t.Unlock(3);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(got.load());
  t.Unlock(3);
  w.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(t.InFlight(), 0u);
}

// SPEC §7a: a request waiting for a copy in flight whose source read never
// returns gives up after the timeout, or at once when interrupted, and is
// no longer counted as a waiter; once free, the region is taken as usual.
// Before, requests waited in Lock() for good (a writer killed meanwhile
// stayed unkillable).
TEST(RegionLockTable, LockForGivesUpOnTimeoutOrCancel) {
  RegionLockTable t;
  t.Lock(5);  // a copy that does not finish
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(t.LockFor(5, 120'000'000, nullptr), RegionLockTable::Wait::kTimedOut);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(120));
  EXPECT_FALSE(t.AnyWaiting(5, 1));
  CancelToken token;
  std::thread interrupter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    token.Cancel();
  });
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(t.LockFor(5, 60'000'000'000, &token), RegionLockTable::Wait::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, std::chrono::seconds(5));
  interrupter.join();
  EXPECT_FALSE(t.AnyWaiting(5, 1));
  EXPECT_EQ(t.InFlight(), 1u);
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    t.Unlock(5);
  });
  EXPECT_EQ(t.LockFor(5, 60'000'000'000, nullptr), RegionLockTable::Wait::kTaken);
  releaser.join();
  EXPECT_TRUE(t.IsLocked(5));
  EXPECT_EQ(t.LockFor(6, 0, nullptr), RegionLockTable::Wait::kTaken) << "a free region";
  t.Unlock(5);
  t.Unlock(6);
  EXPECT_EQ(t.InFlight(), 0u);
}

TEST(RegionLockTable, MutualExclusionUnderContention) {
  RegionLockTable t;
  constexpr int kThreads = 4, kIters = 2000;
  std::vector<int> owner(8, -1);
  std::atomic<int> violations{0};
  std::vector<std::thread> ths;
  for (int i = 0; i < kThreads; ++i) {
    ths.emplace_back([&, i] {
      for (int k = 0; k < kIters; ++k) {
        uint64_t r = (k * 7 + i) % 8;
        RegionLockGuard g(&t, r);
        if (owner[r] != -1) violations++;
        owner[r] = i;
        std::this_thread::yield();
        owner[r] = -1;
      }
    });
  }
  for (auto& th : ths) th.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_EQ(t.InFlight(), 0u);
}

// --- SourceWatch ---

// A source whose CheckUnchanged answers `answer` and counts the calls.
class CheckedSource final : public Device {
 public:
  uint64_t Size() const override { return 1 << 20; }
  bool ReadOnly() const override { return true; }
  const std::string& Name() const override { return name_; }
  Status Read(uint64_t, void*, size_t) override { return Status::OK(); }
  Status Write(uint64_t, const void*, size_t) override { return Status::Permission("ro"); }
  Status Flush() override { return Status::OK(); }
  Status Zero(uint64_t, uint64_t, ZeroMode) override { return Status::Permission("ro"); }
  Result<uint64_t> NextData(uint64_t off) override { return off; }
  Result<uint64_t> NextHole(uint64_t) override { return Size(); }
  Status CheckUnchanged() override {
    ++checks;
    return answer;
  }
  Status answer;
  std::atomic<int> checks{0};

 private:
  std::string name_ = "src";
};

// A read that timed out or was interrupted is not followed by a check: the
// source did not answer the read and would not answer the check either (a
// stalled source would keep the reader waiting twice). Other read errors
// are checked, and a change found then is what the caller gets.
TEST(SourceWatch, ATimedOutOrInterruptedReadIsNotChecked) {
  CheckedSource src;
  src.answer = Status::Mismatch("src shrank from 2 to 1 bytes");
  SourceWatch w(&src);
  const Status timed_out = Status::IoError("read timed out", ETIMEDOUT);
  const Status interrupted = Status::IoError("read interrupted", EINTR);
  EXPECT_EQ(w.AfterReadError(timed_out).sys_errno(), ETIMEDOUT);
  EXPECT_EQ(w.AfterReadError(interrupted).sys_errno(), EINTR);
  EXPECT_EQ(src.checks.load(), 0);
  EXPECT_FALSE(w.changed());
  Status eio = w.AfterReadError(Status::IoError("short read", EIO));
  EXPECT_EQ(src.checks.load(), 1);
  EXPECT_TRUE(w.changed());
  EXPECT_NE(eio.message().find("shrank"), std::string::npos) << eio.ToString();
  // Once changed, even a timeout answers with the change (no check needed).
  EXPECT_NE(w.AfterReadError(timed_out).message().find("shrank"), std::string::npos);
  EXPECT_EQ(src.checks.load(), 1);
}

// --- read hints (SPEC §10) ---

constexpr uint64_t kR = 64 << 10;

TEST(ReadHints, SequentialAfterAMegabyteWindowGrowsAndIsUnitAligned) {
  ReadHints h(RegionGeometry(1024 * kR, kR), 16);
  uint64_t off = 0, now = kSec;
  int seq_at = -1;
  for (int i = 0; i < 40; ++i, off += 128 << 10, now += 1000) {
    if (h.NoteRead(off, 128 << 10, true, now) && seq_at < 0) seq_at = i;
  }
  EXPECT_EQ(seq_at, 7);  // 8 reads of 128 KiB: 1 MiB forward
  EXPECT_EQ(h.sequential_streams(now), 1);
  std::vector<RegionRun> w = h.AheadWindows(now);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].first, off / kR);
  EXPECT_EQ(w[0].end() % 16, 0u);  // whole units
  EXPECT_GE(w[0].count * kR, ReadHints::kMaxWindow);
  EXPECT_LT(w[0].count * kR, ReadHints::kMaxWindow + 16 * kR);
  // Forgotten once idle.
  EXPECT_TRUE(h.AheadWindows(now + ReadHints::kStreamIdleNanos).empty());
}

// Readers take the time before the hints' lock, so two concurrent readers
// of a stream may note their reads with times out of order: the earlier
// time still continues the stream (it was once taken for 2^64 ns idle, the
// read started a new stream and the sequential one lost its window), and
// the stream's time never goes back.
TEST(ReadHints, AReadNotedWithAnEarlierTimeStillContinuesItsStream) {
  ReadHints h(RegionGeometry(1024 * kR, kR), 16);
  uint64_t off = 0, now = kSec;
  for (int i = 0; i < 16; ++i, off += 128 << 10, now += 1000) h.NoteRead(off, 128 << 10, true, now);
  ASSERT_EQ(h.sequential_streams(now), 1);
  const std::vector<RegionRun> before = h.AheadWindows(now);
  ASSERT_EQ(before.size(), 1u);
  // The next read, by a reader whose clock reading predates the last note.
  EXPECT_TRUE(h.NoteRead(off, 128 << 10, true, now - 5000));
  EXPECT_EQ(h.sequential_streams(now - 5000), 1);
  EXPECT_EQ(h.sequential_streams(now), 1);
  std::vector<RegionRun> w = h.AheadWindows(now - 5000);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].first, (off + (128 << 10)) / kR);  // it moved on, window kept
  EXPECT_GE(w[0].count, before[0].count);
  // Time counts from the latest note (now - 1000), not the earlier one.
  EXPECT_EQ(h.sequential_streams(now - 1000 + ReadHints::kMissNanos - 1), 1);
  EXPECT_EQ(h.sequential_streams(now - 1000 + ReadHints::kMissNanos), 0);
}

TEST(ReadHints, GoingRoundOrJumpingIsNotSequential) {
  ReadHints h(RegionGeometry(4096 * kR, kR), 16);
  for (int i = 0; i < 1000; ++i) h.NoteRead((i % 4) * kR, kR, true, kSec + i);
  EXPECT_EQ(h.sequential_streams(kSec + 1000), 0);
  // Jumps beyond the slack (6 MiB), forward or anywhere.
  for (int i = 0; i < 1000; ++i) h.NoteRead((i * 97 % 4000) * kR, 4096, true, kSec + 2000 + i);
  EXPECT_EQ(h.sequential_streams(kSec + 3000), 0);
  EXPECT_TRUE(h.AheadWindows(kSec + 3000).empty());
}

TEST(ReadHints, NearHintsAreBoundedNewestFirstAndConsumed) {
  ReadHints h(RegionGeometry(1ull << 40, kR), 16);
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200000; ++i) {
    h.NoteRead((rng() % ((1ull << 40) / 4096)) * 4096, 4096, true, kSec + i);
  }
  EXPECT_EQ(h.near_size(), ReadHints::kMaxNear);  // a storm keeps its memory bounded
  h.NoteRead(100 * kR + 5, 10, true, 2 * kSec);
  RegionRun f;
  ASSERT_TRUE(h.FrontNear(&f));
  EXPECT_EQ(f, (RegionRun{96, 16}));  // the unit around the read
  h.AdvanceNear(100);
  ASSERT_TRUE(h.FrontNear(&f));
  EXPECT_EQ(f, (RegionRun{100, 12}));
  h.AdvanceNear(112);
  ASSERT_TRUE(h.FrontNear(&f));
  EXPECT_NE(f.first, 100u);
  // Hydrated reads leave no near hint; off drops everything.
  const size_t n = h.near_size();
  h.NoteRead(5000 * kR, kR, false, 3 * kSec);
  EXPECT_EQ(h.near_size(), n);
  h.SetEnabled(false);
  EXPECT_EQ(h.near_size(), 0u);
  EXPECT_FALSE(h.NoteRead(0, kR, true, 4 * kSec));
  EXPECT_EQ(h.near_size(), 0u);
}

// --- access profiles (SPEC §10; docs/profile-format.md) ---

profile::Profile SampleProfile() {
  profile::Profile p;
  p.source = {100 * kR + 10, 0xdeadbeefcafef00d, 0x0123456789abcdef};
  p.region_size = kR;
  p.runs = {{40, 3}, {0, 1}, {100, 1}};
  return p;
}

TEST(ProfileFormat, RoundTripsAndIsWhatTheDocsSay) {
  const std::string text = profile::Serialize(SampleProfile());
  EXPECT_EQ(text,
            "clonefs-profile 1\nsource-size 6553610\nsource-fp1 deadbeefcafef00d\n"
            "source-fp2 0123456789abcdef\nregion-size 65536\nruns 3\n40 3\n0 1\n100 1\n");
  auto back = profile::Parse(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->runs, SampleProfile().runs);
  EXPECT_EQ(back->source, SampleProfile().source);
  EXPECT_EQ(back->regions(), 5u);
}

TEST(ProfileFormat, BadInputIsRefusedNamingTheLine) {
  const std::string good = profile::Serialize(SampleProfile());
  auto bad = [&](std::string text, const std::string& want) {
    auto p = profile::Parse(text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_NE(p.status().message().find(want), std::string::npos) << p.status().ToString();
  };
  bad("", "not a clonefs profile");
  bad("hello\n", "not a clonefs profile");
  std::string t = good;
  bad(t.replace(t.find("region-size 65536"), 17, "region-size 65535"),
      "line 5: region-size must be a power of two");
  t = good;
  bad(t.replace(t.find("runs 3"), 6, "runs 4"), "line 10: missing run 4 of 4");
  t = good;
  bad(t.replace(t.find("100 1"), 5, "101 1"), "line 9: run outside");
  t = good;
  bad(t.replace(t.find("0 1\n"), 3, "0 -1"), "line 8: expected");
  bad(good + "7 1\n", "line 10: unexpected text");
  t = good;
  bad(t.replace(t.find("source-fp1 d"), 12, "source-fp1 x"), "line 3: bad source-fp1");
  auto missing = profile::Load("/nonexistent/dir/p");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("cannot open profile /nonexistent/dir/p"),
            std::string::npos);
}

// Found by tests/fuzz/profile_fuzz: overlapping runs were accepted although
// the format says runs never overlap, and a "runs" count that the text
// cannot hold reserved memory for all of it (std::bad_alloc out of Parse).
TEST(ProfileFormat, OverlapsAndImpossibleRunCountsAreRefused) {
  const std::string head =
      "clonefs-profile 1\nsource-size 2147483648\nsource-fp1 9313d23ea6\n"
      "source-fp2 601c2ebeb616a565\nregion-size 65536\n";
  auto p = profile::Parse(head + "runs 3\n21 816\n32 4\n4096 1\n");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("line 8: run overlaps the run on line 7"), std::string::npos)
      << p.status().ToString();
  p = profile::Parse(head + "runs 2\n8 4\n4 5\n");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("line 8: run overlaps the run on line 7"), std::string::npos)
      << p.status().ToString();
  p = profile::Parse(head + "runs 2\n4 4\n0 4\n");  // adjacent is fine
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->regions(), 8u);
  p = profile::Parse(
      "clonefs-profile 1\nsource-size 18446744073709551615\nsource-fp1 0\nsource-fp2 0\n"
      "region-size 4096\nruns 1000000000000\n0 1\n");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("line 8: missing run 2 of 1000000000000"),
            std::string::npos)
      << p.status().ToString();
}

// Found while reading the parser after fuzzing it (and now a property of
// tests/fuzz/profile_fuzz): strtoull took "source-size  -1" (two spaces) as
// 2^64-1; header values must be digits only.
TEST(ProfileFormat, HeaderValuesAreDigitsOnly) {
  const std::string good = profile::Serialize(SampleProfile());
  ASSERT_TRUE(profile::Parse(good).ok());
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"source-size 6553610", "source-size  -1"},
           {"source-size 6553610", "source-size  6553610"},
           {"source-size 6553610", "source-size 6553610 "},
           {"source-fp1 deadbeefcafef00d", "source-fp1 0xdeadbeefcafef00"},
           {"source-fp2 0123456789abcdef", "source-fp2 -123456789abcdef"},
           {"region-size 65536", "region-size +65536"}}) {
    std::string t = good;
    auto p = profile::Parse(t.replace(t.find(from), from.size(), to));
    EXPECT_FALSE(p.ok()) << to;
  }
}

// A profile cut short inside its last run ("48 16\n" cut to "48 1") was
// replayed with a run that was never recorded; run lines took what sscanf
// takes ("+5 3", " 5 3"); and region sizes no clone can have (2 KiB, 2 GiB)
// were mapped onto the clone as if one had recorded them.
TEST(ProfileFormat, CutShortOddRunsAndImpossibleRegionSizesAreRefused) {
  const std::string good = profile::Serialize(SampleProfile());  // ends "\n100 1\n"
  ASSERT_TRUE(profile::Parse(good).ok());
  auto refused = [](const std::string& text, const std::string& want) {
    auto p = profile::Parse(text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_NE(p.status().message().find(want), std::string::npos) << p.status().ToString();
  };
  refused(good.substr(0, good.size() - 1), "line 9: the file ends inside this line");
  const std::string head = good.substr(0, good.find("runs "));
  ASSERT_TRUE(profile::Parse(head + "runs 2\n0 1\n40 30\n").ok());
  refused(head + "runs 2\n0 1\n40 3", "line 8: the file ends inside this line");
  std::string t = good;
  refused(t.replace(t.find("100 1"), 5, "100 1x"), "line 9: expected");
  for (const char* run : {"+100 1", " 100 1", "100  1", "100 +1", "100 1 ", "100\t1"}) {
    t = good;
    refused(t.replace(t.find("100 1"), 5, run), "line 9: expected \"FIRST COUNT\"");
  }
  for (const char* size : {"2048", "2147483648", "1"}) {
    t = good;
    refused(t.replace(t.find("region-size 65536"), 17, std::string("region-size ") + size),
            "line 5: region-size must be a power of two from 4096 to 1073741824");
  }
  t = good;
  EXPECT_TRUE(profile::Parse(t.replace(t.find("region-size 65536"), 17, "region-size 4096")).ok());
  const std::string gib = head.substr(0, head.find("region-size ")) + "region-size 1073741824\n";
  EXPECT_TRUE(profile::Parse(gib + "runs 1\n0 1\n").ok());
  EXPECT_TRUE(profile::Parse(good + "\n").ok());  // an empty line at the end is harmless
}

// `clonefs mount --profile FIFO` (and `profile show FIFO`, and a recording
// continued from a FIFO) waited forever in open() for a writer.
TEST(ProfileFormat, AFifoIsRefusedAtOnce) {
  char tmpl[] = "/tmp/clonefs-profile-fifo-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string fifo = std::string(tmpl) + "/p";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto p = profile::Load(fifo);  // hung here before
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find(fifo + ": not a regular file"), std::string::npos)
      << p.status().ToString();
  unlink(fifo.c_str());
  rmdir(tmpl);
}

TEST(ProfileFormat, AnotherSourceIsRefused) {
  const profile::Profile p = SampleProfile();
  EXPECT_TRUE(profile::CheckSource(p, p.source, "p").ok());
  profile::SourceKey other = p.source;
  other.fp2 ^= 1;
  Status s = profile::CheckSource(p, other, "/x/boot.profile");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("profile /x/boot.profile does not belong to this source"),
            std::string::npos);
  EXPECT_NE(s.message().find("--record-profile"), std::string::npos);
  other = p.source;
  other.size += 1;
  EXPECT_NE(profile::CheckSource(p, other, "p").message().find("recorded from a source of"),
            std::string::npos);
}

TEST(ProfileFormat, MapsOntoOtherRegionSizesWithoutRepeats) {
  const profile::Profile p = SampleProfile();  // image: 100 regions + 10 bytes
  const RegionGeometry same(p.source.size, kR);
  EXPECT_EQ(profile::ToRegions(p, same), p.runs);
  const RegionGeometry big(p.source.size, 4 * kR);  // 40..42 -> 10; 0 -> 0; 100 -> 25
  EXPECT_EQ(profile::ToRegions(p, big), (std::vector<RegionRun>{{10, 1}, {0, 1}, {25, 1}}));
  const RegionGeometry small(p.source.size, kR / 4);
  EXPECT_EQ(profile::ToRegions(p, small),
            (std::vector<RegionRun>{{160, 12}, {0, 4}, {400, 1}}));  // clipped to the image
}

TEST(ProfileRecorder, FirstTouchOrderInRuns) {
  profile::ProfileRecorder rec(RegionGeometry(64 * kR, kR), {64 * kR, 1, 2});
  rec.Touch(10, 2);
  rec.Touch(12, 1);  // extends the run
  rec.Touch(3, 1);
  rec.Touch(10, 4);  // 10-12 seen; 13 extends nothing (3 was last)
  rec.Touch(63, 5);  // clipped
  EXPECT_EQ(rec.regions(), 6u);
  EXPECT_EQ(rec.Snapshot().runs, (std::vector<RegionRun>{{10, 3}, {3, 1}, {13, 1}, {63, 1}}));
  // Concurrent touches: every region once.
  profile::ProfileRecorder many(RegionGeometry(4096 * kR, kR), {});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (uint64_t r = 0; r < 4096; r += 1 + t) many.Touch(r, 3);
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(many.regions(), 4096u);
  EXPECT_EQ(many.Snapshot().regions(), 4096u);
}

// Dest's condition: full on ENOSPC/EDQUOT, I/O error otherwise, and back to
// ok only on a copy that started after the last dest error (copies in
// flight when dest filled up may still land, and must not make it flap).
TEST(HealthTrackerTest, DestConditionClearsOnlyOnACopyStartedAfterTheLastError) {
  HealthTracker h("dest");
  EXPECT_EQ(h.dest(), DestCondition::kOk);
  const uint64_t before = h.DestErrors();
  h.DestFailed("copy write to dest", 4096, Status::FromErrno(ENOSPC, "pwrite"));
  EXPECT_EQ(h.dest(), DestCondition::kFull);
  h.DestHydrated(before);  // in flight when dest filled up
  EXPECT_EQ(h.dest(), DestCondition::kFull);
  h.DestWrote(/*complete=*/false, h.DestErrors());  // an overwrite proves nothing
  EXPECT_EQ(h.dest(), DestCondition::kFull);
  h.DestFailed("write to dest", 0, Status::FromErrno(EDQUOT, "pwrite"));
  EXPECT_EQ(h.dest(), DestCondition::kFull);
  EXPECT_EQ(h.last_error().count, 2u);
  EXPECT_EQ(h.last_error().err, EDQUOT);
  h.DestFailed("dest flush", 0, Status::IoError("bad", EIO));
  EXPECT_EQ(h.dest(), DestCondition::kIoError);
  EXPECT_EQ(h.last_error().kind, ErrorKind::kDestIo);
  EXPECT_EQ(h.last_error().count, 1u);
  h.DestHydrated(h.DestErrors());
  EXPECT_EQ(h.dest(), DestCondition::kOk);
  h.DestFailed("write to dest", 0, Status::NoSpace("full"));
  h.DestWrote(/*complete=*/true, h.DestErrors());
  EXPECT_EQ(h.dest(), DestCondition::kOk);
  // Refusals are not errors.
  h.DestFailed("write to dest", 0, Status::ReadOnly("ro"));
  h.SourceFailed("read from source", 0, Status::IoError("interrupted", EINTR));
  EXPECT_EQ(h.dest(), DestCondition::kOk);
  EXPECT_EQ(h.last_error().kind, ErrorKind::kDestFull);
  EXPECT_EQ(h.last_error().count, 3u);
}

// A page-cached device that records the copier's cache hint.
class CacheRecorder : public Device {
 public:
  explicit CacheRecorder(bool cached) : base_(NewMemDevice(1 << 30)), cached_(cached) {}
  uint64_t Size() const override { return base_->Size(); }
  bool ReadOnly() const override { return false; }
  const std::string& Name() const override { return base_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override { return base_->Read(off, buf, len); }
  Status Write(uint64_t off, const void* buf, size_t len) override {
    return base_->Write(off, buf, len);
  }
  Status Flush() override { return Status::OK(); }
  Status Zero(uint64_t off, uint64_t len, ZeroMode m) override { return base_->Zero(off, len, m); }
  Result<uint64_t> NextData(uint64_t off) override { return base_->NextData(off); }
  Result<uint64_t> NextHole(uint64_t off) override { return base_->NextHole(off); }
  bool PageCached() const override { return cached_; }
  void DropCached(uint64_t off, uint64_t len) override {
    std::lock_guard<std::mutex> l(mu);
    dropped.emplace_back(off, len);
  }
  std::mutex mu;
  std::vector<std::pair<uint64_t, uint64_t>> dropped;

 private:
  std::unique_ptr<Device> base_;
  const bool cached_;
};

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

// Polls pred for up to 10 s.
bool Eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 5000 && !pred(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return pred();
}

// The dropper's thread evicts the oldest ranges once more than the lag is
// pending (adjacent pieces as one range); DropAll evicts the rest and
// returns when that is done.
TEST(CacheDropper, EvictsWhatIsBeyondTheLag) {
  CacheRecorder dev(/*cached=*/true);
  CacheDropper d(&dev, /*lag_bytes=*/3 << 20);
  ASSERT_TRUE(d.active());
  d.Written(0, 1 << 20);
  d.Written(1 << 20, 1 << 20);  // adjacent: joins the first range
  d.Written(8 << 20, 1 << 20);
  EXPECT_EQ(d.pending_bytes(), 3u << 20);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  {
    std::lock_guard<std::mutex> l(dev.mu);
    EXPECT_TRUE(dev.dropped.empty());  // within the lag: nothing evicted
  }
  d.Written(20 << 20, 1 << 20);  // 4 MiB pending > 3 MiB: the oldest goes
  ASSERT_TRUE(Eventually([&] { return d.pending_bytes() == (2u << 20); }));
  {
    std::lock_guard<std::mutex> l(dev.mu);
    EXPECT_EQ(dev.dropped, (Ranges{{0, 2 << 20}}));
  }
  d.DropAll();
  EXPECT_EQ(d.pending_bytes(), 0u);
  std::lock_guard<std::mutex> l(dev.mu);
  EXPECT_EQ(dev.dropped, (Ranges{{0, 2 << 20}, {8 << 20, 1 << 20}, {20 << 20, 1 << 20}}));
}

// A dest without a page cache (O_DIRECT, memory) gets no hints at all.
TEST(CacheDropper, DoesNothingForADestWithoutPageCache) {
  CacheRecorder dev(/*cached=*/false);
  CacheDropper d(&dev, 0);
  EXPECT_FALSE(d.active());
  d.Written(0, 1 << 20);
  d.DropAll();
  EXPECT_TRUE(dev.dropped.empty());
}

// A writer waits only once the disk is far behind: more than
// kPendingCapFactor x the lag pending. It goes on as soon as evictions make
// room.
TEST(CacheDropper, WritersWaitOnlyWhenTheDiskFallsFarBehind) {
  struct SlowDisk : CacheRecorder {
    SlowDisk() : CacheRecorder(true) {}
    void DropCached(uint64_t off, uint64_t len) override {
      std::unique_lock<std::mutex> l(gate_mu);
      gate_cv.wait(l, [&] { return open; });
      CacheRecorder::DropCached(off, len);
    }
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool open = false;
  } dev;
  const uint64_t lag = 1 << 20, cap = lag * CacheDropper::kPendingCapFactor;
  CacheDropper d(&dev, lag);
  for (uint64_t off = 0; off < cap; off += 2 * 65536) d.Written(off * 4, 65536 * 2);
  EXPECT_EQ(d.pending_bytes(), cap);  // at the cap, no one waited: the disk is stuck
  std::atomic<bool> returned{false};
  std::thread over([&] {
    d.Written(1ull << 30, 65536);  // beyond the cap: waits for room
    returned = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(returned.load()) << "a writer went on with the disk more than the cap behind";
  {
    std::lock_guard<std::mutex> l(dev.gate_mu);
    dev.open = true;
  }
  dev.gate_cv.notify_all();
  over.join();
  EXPECT_TRUE(returned.load());
  EXPECT_LE(d.pending_bytes(), cap);
  d.DropAll();
  EXPECT_EQ(d.pending_bytes(), 0u);
}

// Writers on many threads: every byte written is evicted exactly once.
TEST(CacheDropper, ConcurrentWritersEvictEveryRangeOnce) {
  CacheRecorder dev(/*cached=*/true);
  CacheDropper d(&dev, 1 << 20);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (uint64_t i = 0; i < 200; ++i) d.Written((t * 1000 + i) * 2 * 65536, 65536);
    });
  }
  for (auto& t : ts) t.join();
  d.DropAll();
  std::lock_guard<std::mutex> l(dev.mu);
  uint64_t total = 0;
  for (const auto& r : dev.dropped) total += r.second;
  EXPECT_EQ(total, 4u * 200 * 65536);
}

}  // namespace
}  // namespace clonefs

namespace clonefs {
namespace {

// While dest is full the copier gets one unit per probe interval, 1 s
// doubling up to a minute; not full, always; full again starts over.
TEST(DestFullGateTest, ProbesAtGrowingIntervals) {
  constexpr uint64_t kS = 1'000'000'000;
  DestFullGate g;
  EXPECT_TRUE(g.MayCopy(DestCondition::kOk, 0));
  EXPECT_TRUE(g.MayCopy(DestCondition::kIoError, 0));  // region errors: per-region backoff
  EXPECT_EQ(g.NextProbeIn(0), 0u);
  uint64_t t = 10 * kS;
  EXPECT_FALSE(g.MayCopy(DestCondition::kFull, t));  // the failure was the first probe
  EXPECT_EQ(g.NextProbeIn(t), kS);
  EXPECT_FALSE(g.MayCopy(DestCondition::kFull, t + kS - 1));
  std::vector<uint64_t> probes;
  for (uint64_t now = t; now < t + 200 * kS; now += kS / 10) {
    if (g.MayCopy(DestCondition::kFull, now)) probes.push_back((now - t) / (kS / 10));
  }
  // At 1, 3, 7, 15, 31, 63, 123, 183 s (the interval stops at 60 s).
  EXPECT_EQ(probes, (std::vector<uint64_t>{10, 30, 70, 150, 310, 630, 1230, 1830}));
  // Space again: copying at once, and a new fill starts at 1 s.
  EXPECT_TRUE(g.MayCopy(DestCondition::kOk, t + 201 * kS));
  EXPECT_EQ(g.NextProbeIn(t + 201 * kS), 0u);
  EXPECT_FALSE(g.MayCopy(DestCondition::kFull, t + 202 * kS));
  EXPECT_EQ(g.NextProbeIn(t + 202 * kS), kS);
}

}  // namespace
}  // namespace clonefs
