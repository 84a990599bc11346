// A source that goes away, or fails everything while claiming to be up
// (SPEC §9, Reconnect): the copier pauses or backs off as a whole, so the
// failed reads during an outage are a handful, not one per region; nothing
// is marked from a failed read; and once the source is back it resumes at
// full speed, with no region left in a per-region backoff.
//
// Time is an injected clock. The per-region retry delay is an hour, so a
// region wrongly left in per-region backoff after the outage would never be
// copied (the clock does not advance that far) and the test would not
// finish.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "base/cancel.h"
#include "copier/source_backoff.h"
#include "engine_test_util.h"
#include "fake_async_source.h"

namespace clonefs {
namespace {

using test::FakeAsyncSource;
using test::ManualClock;
using test::Rig;

constexpr uint64_t kRegion = 4096;
constexpr uint64_t kRegions = 4096;  // 16 MiB
constexpr uint64_t kMs = 1'000'000;

class OutageTest : public ::testing::Test {
 protected:
  OutageTest()
      : rig_(kRegions * kRegion, kRegion, test::RandomContent(kRegions * kRegion, 31, 0)),
        src_(std::make_shared<FakeAsyncSource>(rig_.source)) {}
  ~OutageTest() override {
    src_->SetHold(false);
    rig_.engine.reset();
  }
  void Open(uint64_t retry_ms = 3'600'000) {  // an hour: see the file comment
    EngineOptions o;
    o.clock = &clock_;
    o.commit_interval_ms = 0;
    o.retry_backoff_initial_ms = retry_ms;
    o.knobs.hydration_batch_size = 4;        // 16 KiB pieces
    o.copier_inflight_bytes = 256 << 10;     // 16 pieces in flight
    ASSERT_OK(rig_.Open(o, true, src_));
  }
  Engine* e() { return rig_.engine.get(); }
  // Lets `ms` of injected time pass in 100 ms steps, giving the copier
  // some real time to act on each.
  void Pass(uint64_t ms) {
    for (uint64_t t = 0; t < ms; t += 100) {
      clock_.Advance(100 * kMs);
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  // Holds reads until the copier has its budget in flight, then starts the
  // outage (reads in flight will fail) and releases them.
  void StartOutage(bool down) {
    src_->SetHold(true);
    Open();
    ASSERT_TRUE(Rig::WaitFor([&] { return src_->inflight_bytes() >= (256u << 10); }));
    if (down) {
      src_->SetDown(true);
    } else {
      src_->SetFailing(true);
    }
    src_->SetHold(false);
  }
  // Waits until the copier has handled every failed source read (each unit
  // here is one piece, so one failed read is one failed unit): the next
  // probe's time is set in that handling, on the copier's writer thread, so
  // the clock must not move before it.
  void Settle() {
    ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().copy_failures == src_->failed_reads(); }))
        << e()->Stats().copy_failures << " vs " << src_->failed_reads();
  }
  // Every region marked hydrated holds the source's bytes.
  void ExpectHydratedRegionsMatch() {
    std::vector<uint8_t> got(kRegion);
    for (uint64_t r = 0; r < kRegions; ++r) {
      std::vector<uint8_t> want(rig_.source_content.begin() + r * kRegion,
                                rig_.source_content.begin() + (r + 1) * kRegion);
      Status s = e()->Read(r * kRegion, got.data(), kRegion);
      if (s.ok()) {
        ASSERT_EQ(got, want) << "region " << r;
      }
    }
  }

  ManualClock clock_;
  Rig rig_;
  std::shared_ptr<FakeAsyncSource> src_;
};

// SPEC §7a: a write to a region whose background copy is stuck in a source
// read that is not answered (the copier's reads have no deadline) gets EIO
// after the source timeout, or EINTR at once when its request is
// interrupted (a killed writer), and writes nothing; once the copy is done,
// writes work. Before, the writer waited for that copy for good.
TEST_F(OutageTest, AWriteBehindAStuckCopyGivesUpAfterTheSourceTimeout) {
  src_->SetHold(true);
  EngineOptions o;
  o.clock = &clock_;
  o.commit_interval_ms = 0;
  o.knobs.hydration_batch_size = 4;
  o.copier_inflight_bytes = 256 << 10;
  o.source_timeout_ns = 200 * kMs;
  ASSERT_OK(rig_.Open(o, true, src_));
  ASSERT_TRUE(Rig::WaitFor([&] { return src_->inflight_bytes() >= (256u << 10); }));
  ASSERT_GT(e()->Stats().hydrating_regions, 0u);
  const char data[] = "NEW";
  // While the source says it is up, it is slow, not stuck: a write keeps
  // waiting past the timeout; once it is down, the write gives up.
  std::atomic<bool> done{false};
  Status slow;
  std::thread writer([&] {
    slow = e()->Write(2 * kRegion + 7, data, 3, false);  // region 2
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_FALSE(done.load()) << "gave up on a source that is up: " << slow.ToString();
  src_->SetDown(true);
  writer.join();
  EXPECT_EQ(slow.sys_errno(), ETIMEDOUT) << slow.ToString();
  const auto t0 = std::chrono::steady_clock::now();
  Status s = e()->Write(5, data, 3, false);  // region 0: the first the copier took
  EXPECT_EQ(s.sys_errno(), ETIMEDOUT) << s.ToString();
  EXPECT_NE(s.message().find("in flight has not finished within the source timeout"),
            std::string::npos)
      << s.ToString();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(200));
  CancelToken interrupted;
  interrupted.Cancel();
  {
    ScopedCancelToken scope(&interrupted);
    s = e()->Zero(kRegion, kRegion, /*punch=*/true);  // region 1, whole: also waits
  }
  EXPECT_EQ(s.sys_errno(), EINTR) << s.ToString();
  src_->SetDown(false);
  src_->SetHold(false);
  ASSERT_TRUE(Rig::WaitFor([&] { return src_->inflight_bytes() == 0; }));
  ASSERT_OK(e()->Write(5, data, 3, false));
  std::vector<uint8_t> got(kRegion);
  ASSERT_OK(e()->Read(0, got.data(), kRegion));
  std::vector<uint8_t> want(rig_.source_content.begin(), rig_.source_content.begin() + kRegion);
  std::copy(data, data + 3, want.begin() + 5);
  EXPECT_EQ(got, want);
  ASSERT_OK(e()->Read(kRegion, got.data(), kRegion));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), rig_.source_content.begin() + kRegion))
      << "the interrupted zero wrote nothing";
}

TEST_F(OutageTest, ASourceThatIsDownPausesTheCopierAsAWhole) {
  StartOutage(/*down=*/true);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().copier_pause == "source down"; }));
  ASSERT_TRUE(Rig::WaitFor([&] { return src_->inflight_bytes() == 0; }));
  const uint64_t failed_at_start = src_->failed_reads();
  EXPECT_GE(failed_at_start, 1u);
  // At most what was in flight, plus the pieces of the unit being issued.
  EXPECT_LE(failed_at_start, 16u + 4u);
  EXPECT_NE(e()->Stats().copier_pause_reason.find("reconnecting"), std::string::npos)
      << e()->Stats().copier_pause_reason;
  EXPECT_NE(e()->Stats().copier_paused_since_unix_ns, 0u);

  // Ten seconds of outage: not one more read.
  Pass(10'000);
  EXPECT_EQ(src_->failed_reads(), failed_at_start);
  EXPECT_EQ(e()->Stats().copier_pause, "source down");
  EXPECT_LT(e()->Stats().hydrated_regions, kRegions);

  // Back: resumes at once (no clock advance needed) and finishes.
  src_->SetDown(false);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydrated_regions == kRegions; }))
      << e()->Stats().hydrated_regions;
  EXPECT_EQ(e()->Stats().copier_pause, "");
  EXPECT_EQ(src_->failed_reads(), failed_at_start);
  ASSERT_OK(e()->Fsync());
  EXPECT_EQ(rig_.DestBytes(0, kRegions * kRegion), rig_.source_content);
}

TEST_F(OutageTest, ASourceFailingWhileUpBacksOffSourceWide) {
  StartOutage(/*down=*/false);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().copier_pause == "source failing"; }));
  ASSERT_TRUE(Rig::WaitFor([&] { return src_->inflight_bytes() == 0; }));
  const uint64_t failed_at_start = src_->failed_reads();
  // What was in flight, plus what was issued before kFailuresToBackOff
  // failures in a row were seen.
  EXPECT_LE(failed_at_start, 16u + SourceBackoff::kFailuresToBackOff);
  ExpectHydratedRegionsMatch();

  // Ten seconds: one probe at a time, 0.1 s doubling to 1 s between them:
  // at most 14 probes (at 0.1, 0.3, 0.7, 1.5, 2.5, ... s), never a sweep.
  // (The clock moves in 100 ms steps and a probe waits at least that long
  // after the last one failed, so this holds however slowly the copier
  // runs.)
  Pass(10'000);
  Settle();
  const uint64_t probes = src_->failed_reads() - failed_at_start;
  EXPECT_LE(probes, 14u);
  // Only now forget the largest read: the unit being issued when the
  // failures were counted in the writer may still have sent one more piece
  // (of the batch size) before the copier saw the backoff, as the bound on
  // failed_at_start allows.
  src_->ResetMaxima();
  // And it keeps probing: each second brings exactly one more probe.
  for (int i = 0; i < 3; ++i) {
    const uint64_t before = src_->failed_reads();
    clock_.Advance(1000 * kMs);
    ASSERT_TRUE(Rig::WaitFor([&] { return src_->failed_reads() == before + 1; }));
    Settle();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(src_->failed_reads(), before + 1);
  }
  EXPECT_EQ(src_->max_read_len(), kRegion);  // a probe is one region
  EXPECT_EQ(e()->Stats().copier_pause, "source failing");
  EXPECT_NE(e()->Stats().copier_pause_reason.find("connection lost"), std::string::npos);

  // Back: the next probe (at most 1 s later) succeeds and copying resumes
  // at full speed, with nothing left in per-region backoff.
  src_->SetFailing(false);
  Pass(1'000);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydrated_regions == kRegions; }))
      << e()->Stats().hydrated_regions;
  EXPECT_EQ(e()->Stats().copier_pause, "");
  EXPECT_GT(src_->max_read_len(), kRegion);  // batches again
  ASSERT_OK(e()->Fsync());
  EXPECT_EQ(rig_.DestBytes(0, kRegions * kRegion), rig_.source_content);
}

// A single bad region among good ones is an isolated failure: the copier
// does not back off source-wide, and the region stays in per-region backoff.
TEST_F(OutageTest, AnIsolatedBadRegionIsNotASourceOutage) {
  FaultRule r;
  r.op = DeviceOp::kRead;
  r.offset = 100 * kRegion;
  r.length = kRegion;
  rig_.source->AddRule(r);
  Open(/*retry_ms=*/100);
  // Its unit fails; the others in it are retried alone after 100 ms. The
  // clock stands still until everything else is copied, so that however
  // slowly that goes, region 100 has not been retried more than a few times.
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydrated_regions >= kRegions - 4; }));
  ASSERT_TRUE(Rig::WaitFor([&] {
    clock_.Advance(50 * kMs);
    return e()->Stats().hydrated_regions == kRegions - 1;
  }));
  // Region 100 keeps failing on each retry (at most ~10 in 10 s of doubling
  // delays), alone, and the source is never taken for down or failing.
  Pass(10'000);
  EXPECT_EQ(e()->Stats().copier_pause, "");
  EXPECT_EQ(e()->Stats().hydrated_regions, kRegions - 1);
  EXPECT_GE(src_->failed_reads(), 3u);
  EXPECT_LE(src_->failed_reads(), 16u);
  rig_.source->ClearRules();
  ASSERT_TRUE(Rig::WaitFor([&] {
    clock_.Advance(100 * kMs);
    return e()->Stats().hydrated_regions == kRegions;
  }));
}

}  // namespace
}  // namespace clonefs
