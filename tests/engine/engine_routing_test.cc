// Component tests of the request path (SPEC §3), the commit protocol basics
// (SPEC §5) and the Engine's control surface, over in-memory devices.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <mutex>
#include <thread>

#include "base/test_hooks.h"
#include "engine_test_util.h"

namespace clonefs {
namespace {

using test::OpCounter;
using test::Rig;

constexpr uint64_t kRegion = 64 << 10;
constexpr uint64_t kImage = 16 * kRegion;  // 16 full regions

EngineOptions Quiet() {
  EngineOptions o;
  o.knobs.hydration_enabled = false;  // no background copies unless asked
  o.commit_interval_ms = 0;           // commits only on demand
  return o;
}

std::vector<uint8_t> Pattern(uint64_t len, uint8_t seed) {
  std::vector<uint8_t> v(len);
  for (uint64_t i = 0; i < len; ++i) v[i] = static_cast<uint8_t>(seed + i * 131 + (i >> 9));
  return v;
}

class RoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rig_ = std::make_unique<Rig>(image_, kRegion, test::RandomContent(image_, 42, 0.2));
    src_.Install(rig_->source);
    dst_.Install(rig_->dest);
  }
  void TearDown() override { rig_.reset(); }  // before the counters go
  void Open(EngineOptions o = Quiet()) { ASSERT_OK(rig_->Open(o)); }
  Engine* e() { return rig_->engine.get(); }
  std::vector<uint8_t> Expected(uint64_t off, uint64_t len) {
    return {rig_->source_content.begin() + off, rig_->source_content.begin() + off + len};
  }
  std::vector<uint8_t> ReadBack(uint64_t off, uint64_t len) {
    std::vector<uint8_t> v(len);
    EXPECT_OK(e()->Read(off, v.data(), len));
    return v;
  }
  uint64_t Hydrated() { return e()->Stats().hydrated_regions; }

  uint64_t image_ = kImage;
  OpCounter src_, dst_;
  std::unique_ptr<Rig> rig_;
};

TEST_F(RoutingTest, ReadOfUnhydratedRegionGoesToSourceAndCopiesNothing) {
  Open();
  EXPECT_EQ(ReadBack(3 * kRegion + 100, 5000), Expected(3 * kRegion + 100, 5000));
  EXPECT_EQ(src_.reads.load(), 1u);
  EXPECT_EQ(dst_.reads.load(), 0u);
  EXPECT_EQ(dst_.writes.load(), 0u);
  EXPECT_EQ(Hydrated(), 0u);
}

TEST_F(RoutingTest, ReadSpanningStatesSplitsByState) {
  Open();
  auto data = Pattern(kRegion, 1);
  ASSERT_OK(e()->Write(2 * kRegion, data.data(), kRegion, false));
  auto got = ReadBack(kRegion, 3 * kRegion);
  auto want = Expected(kRegion, 3 * kRegion);
  std::copy(data.begin(), data.end(), want.begin() + kRegion);
  EXPECT_EQ(got, want);
  EXPECT_EQ(src_.reads.load(), 2u);  // region 1, region 3
  EXPECT_EQ(dst_.reads.load(), 1u);  // region 2
}

TEST_F(RoutingTest, WholeRegionWriteSkipsTheCopy) {
  Open();
  auto data = Pattern(kRegion, 7);
  ASSERT_OK(e()->Write(5 * kRegion, data.data(), kRegion, false));
  EXPECT_EQ(src_.reads.load(), 0u);
  EXPECT_EQ(dst_.writes.load(), 1u);
  EXPECT_EQ(Hydrated(), 1u);
  EXPECT_EQ(ReadBack(5 * kRegion, kRegion), data);
  EXPECT_EQ(e()->Stats().bytes_copied, 0u);
}

TEST_F(RoutingTest, PartialWriteHydratesOnceWithTheNewBytesMerged) {
  Open();
  auto data = Pattern(300, 9);
  const uint64_t off = 4 * kRegion + 1000;
  ASSERT_OK(e()->Write(off, data.data(), data.size(), false));
  EXPECT_EQ(src_.reads.load(), 1u);
  EXPECT_EQ(src_.read_bytes.load(), kRegion);
  EXPECT_EQ(dst_.writes.load(), 1u);  // the region is written once
  EXPECT_EQ(dst_.write_bytes.load(), kRegion);
  EXPECT_EQ(Hydrated(), 1u);
  auto want = Expected(4 * kRegion, kRegion);
  std::copy(data.begin(), data.end(), want.begin() + 1000);
  EXPECT_EQ(rig_->DestBytes(4 * kRegion, kRegion), want);
  EXPECT_EQ(ReadBack(4 * kRegion, kRegion), want);
  EXPECT_EQ(e()->Stats().bytes_copied, kRegion);
}

TEST_F(RoutingTest, WriteAcrossRegionsCopiesOnlyThePartialEnds) {
  Open();
  const uint64_t off = kRegion + 500, len = 4 * kRegion;  // 1 partial, 3 whole, 1 partial
  auto data = Pattern(len, 3);
  ASSERT_OK(e()->Write(off, data.data(), len, false));
  EXPECT_EQ(src_.reads.load(), 2u);
  EXPECT_EQ(src_.read_bytes.load(), 2 * kRegion);
  EXPECT_EQ(Hydrated(), 5u);
  auto want = Expected(0, kImage);
  std::copy(data.begin(), data.end(), want.begin() + off);
  EXPECT_EQ(ReadBack(0, kImage), want);
}

// Status splits what was read from the source between users and the
// copier; the copies users' partial writes and zeros need are the users'.
// They were counted nowhere: 0 B for users and 0 B by the copier after a
// partial write had read a whole region from the source.
TEST_F(RoutingTest, SourceReadsOfPartialWritesAndZerosAreTheUsers) {
  Open();
  auto data = Pattern(300, 5);
  ASSERT_OK(e()->Write(2 * kRegion + 10, data.data(), data.size(), false));
  ASSERT_OK(e()->Zero(5 * kRegion + 4096, 4096, /*punch=*/true));
  ASSERT_OK(e()->Zero(7 * kRegion + 100, 1000, /*punch=*/false));
  ASSERT_OK(e()->Write(9 * kRegion, Pattern(kRegion, 6).data(), kRegion, false));  // no copy
  std::vector<uint8_t> buf(500);
  ASSERT_OK(e()->Read(12 * kRegion, buf.data(), buf.size()));
  const EngineStats s = e()->Stats();
  EXPECT_EQ(src_.read_bytes.load(), 3 * kRegion + 500);
  EXPECT_EQ(s.user_source_bytes, 3 * kRegion + 500);
  EXPECT_EQ(s.user_source_bytes + s.copier_source_bytes, src_.read_bytes.load());
}

TEST_F(RoutingTest, WritesToHydratedRegionsAreDirect) {
  Open();
  auto a = Pattern(kRegion, 1), b = Pattern(10, 2);
  ASSERT_OK(e()->Write(0, a.data(), kRegion, false));
  ASSERT_OK(e()->Write(77, b.data(), b.size(), false));
  EXPECT_EQ(src_.reads.load(), 0u);
  EXPECT_EQ(dst_.writes.load(), 2u);
  std::copy(b.begin(), b.end(), a.begin() + 77);
  EXPECT_EQ(ReadBack(0, kRegion), a);
}

// A dest that offers descriptor kFd for direct I/O of whole 4 KiB blocks
// (as an O_DIRECT PosixDevice does), over the rig's dest.
class FdDest final : public test::SharedDevice {
 public:
  static constexpr int kFd = 99;
  using SharedDevice::SharedDevice;
  int DirectReadFd(uint64_t off, size_t len) const override {
    return off % 4096 == 0 && len % 4096 == 0 && off + len <= Size() ? kFd : -1;
  }
  int DirectWriteFd(uint64_t off, size_t len) const override { return DirectReadFd(off, len); }
};

// The rig's engine, started, with its dest behind an FdDest.
void OpenOverFdDest(test::Rig* rig) {
  auto md = metadata::Metadata::Open(rig->MdOptions());
  ASSERT_OK(md.status());
  auto opened = Engine::Open(test::Share(rig->source), std::make_unique<FdDest>(rig->dest),
                             std::move(*md), Quiet());
  ASSERT_OK(opened.status());
  rig->engine = std::move(*opened);
  ASSERT_OK(rig->engine->Start());
}

// What a transport may read or write in dest itself (Engine::DirectReadFd /
// DirectWriteFd): only hydrated ranges dest can serve; writes only in
// read-write mode, with dest healthy and no kill hook.
TEST_F(RoutingTest, DirectIoIsOfferedOnlyForHydratedRangesDestCanServe) {
  ASSERT_NO_FATAL_FAILURE(OpenOverFdDest(rig_.get()));
  constexpr int kFd = FdDest::kFd;
  EXPECT_EQ(e()->DirectReadFd(0, 4096), -1) << "unhydrated: the source's";
  EXPECT_EQ(e()->DirectWriteFd(0, 4096), -1) << "unhydrated: a write may need a copy";
  auto a = Pattern(2 * kRegion, 3);
  ASSERT_OK(e()->Write(kRegion, a.data(), a.size(), false));  // regions 1 and 2
  EXPECT_EQ(e()->DirectReadFd(kRegion, 2 * kRegion), kFd);
  EXPECT_EQ(e()->DirectWriteFd(kRegion + 4096, 8192), kFd);
  EXPECT_EQ(e()->DirectReadFd(kRegion + 4096, 100), -1) << "dest cannot serve it";
  EXPECT_EQ(e()->DirectReadFd(kRegion, 3 * kRegion), -1) << "region 3 is not hydrated";
  EXPECT_EQ(e()->DirectReadFd(0, 2 * kRegion), -1) << "neither is region 0";
  EXPECT_EQ(e()->DirectReadFd(kImage, 4096), -1) << "outside the image";
  EXPECT_EQ(e()->DirectReadFd(kRegion, 0), -1);
  {
    test::KillHookGuard hook([](std::string_view) { return false; });
    EXPECT_EQ(e()->DirectWriteFd(kRegion, 4096), -1) << "kill points are on the engine's path";
    EXPECT_EQ(e()->DirectReadFd(kRegion, 4096), kFd);
  }
  EXPECT_EQ(e()->DirectWriteFd(kRegion, 4096), kFd);
  ASSERT_OK(e()->Fsync());
  // A failed commit: read-only mode keeps reads, not writes.
  rig_->fs->SetFailWrites(true);
  auto b = Pattern(kRegion, 4);
  ASSERT_OK(e()->Write(4 * kRegion, b.data(), b.size(), false));
  EXPECT_FALSE(e()->Fsync().ok());
  rig_->fs->SetFailWrites(false);
  ASSERT_EQ(e()->mode(), EngineMode::kReadOnly);
  EXPECT_EQ(e()->DirectReadFd(kRegion, 4096), kFd);
  EXPECT_EQ(e()->DirectWriteFd(kRegion, 4096), -1) << "read-only mode";
  EXPECT_EQ(e()->DirectReadFd(4 * kRegion, 4096), -1) << "rolled back: unhydrated again";
}

// A dest whose allocation the test sets (a file's st_blocks x 512), over
// the rig's dest.
class AllocationDest final : public test::SharedDevice {
 public:
  AllocationDest(std::shared_ptr<Device> d, std::atomic<int64_t>* bytes)
      : SharedDevice(std::move(d)), bytes_(bytes) {}
  std::optional<uint64_t> AllocatedBytes() const override {
    const int64_t b = bytes_->load();
    if (b < 0) return std::nullopt;
    return static_cast<uint64_t>(b);
  }

 private:
  std::atomic<int64_t>* const bytes_;  // < 0: unknown (a block device)
};

// What the exposed file reports as allocated (its st_blocks): dest's
// allocation plus whatever is not hydrated, at most the image; the image
// where dest's allocation is unknown. Before, always the whole image, so
// du and cp --sparse=auto never saw the holes of a sparse clone.
TEST_F(RoutingTest, AllocatedBytesAreDestsPlusWhatIsNotHydrated) {
  std::atomic<int64_t> dest_bytes{0};
  {
    auto md = metadata::Metadata::Open(rig_->MdOptions());
    ASSERT_OK(md.status());
    auto opened = Engine::Open(test::Share(rig_->source),
                               std::make_unique<AllocationDest>(rig_->dest, &dest_bytes),
                               std::move(*md), Quiet());
    ASSERT_OK(opened.status());
    rig_->engine = std::move(*opened);
    ASSERT_OK(rig_->engine->Start());
  }
  EXPECT_EQ(e()->AllocatedBytes(), kImage) << "nothing hydrated: all may be data";
  auto a = Pattern(2 * kRegion, 6);
  ASSERT_OK(e()->Write(kRegion, a.data(), a.size(), false));       // regions 1 and 2
  ASSERT_OK(e()->Zero(5 * kRegion, 3 * kRegion, /*punch=*/true));  // 5..7: holes
  ASSERT_EQ(Hydrated(), 5u);
  dest_bytes = 2 * kRegion;
  EXPECT_EQ(e()->AllocatedBytes(), kImage - 3 * kRegion);
  dest_bytes = 4096;  // dest found zeros in the written data and left holes
  EXPECT_EQ(e()->AllocatedBytes(), kImage - 5 * kRegion + 4096);
  dest_bytes = 2 * kImage;  // preallocated, or data beyond what was hydrated
  EXPECT_EQ(e()->AllocatedBytes(), kImage);
  dest_bytes = -1;
  EXPECT_EQ(e()->AllocatedBytes(), kImage) << "unknown allocation: all may be data";
}

// With dest in a bad condition, writes go the engine's way (which reports
// a recovery), reads still may go direct.
TEST_F(RoutingTest, NoDirectWritesWhileDestIsUnhealthy) {
  ASSERT_NO_FATAL_FAILURE(OpenOverFdDest(rig_.get()));
  auto a = Pattern(kRegion, 5);
  ASSERT_OK(e()->Write(0, a.data(), a.size(), false));
  ASSERT_EQ(e()->DirectWriteFd(0, 4096), FdDest::kFd);
  FaultRule r;
  r.op = DeviceOp::kWrite;
  r.error = Status::IoError("no space", ENOSPC);
  r.count = 1;
  rig_->dest->AddRule(r);
  EXPECT_FALSE(e()->Write(0, a.data(), 4096, false).ok());
  EXPECT_EQ(e()->DirectWriteFd(0, 4096), -1) << "dest is full";
  EXPECT_EQ(e()->DirectReadFd(0, 4096), FdDest::kFd);
}

TEST_F(RoutingTest, PunchOfWholeRegionZeroesWithoutReadingTheSource) {
  Open();
  ASSERT_OK(e()->Zero(2 * kRegion, 3 * kRegion, /*punch=*/true));
  EXPECT_EQ(src_.reads.load(), 0u);
  EXPECT_EQ(Hydrated(), 3u);
  EXPECT_EQ(ReadBack(2 * kRegion, 3 * kRegion), std::vector<uint8_t>(3 * kRegion, 0));
  EXPECT_EQ(e()->Stats().bytes_zeroed, 3 * kRegion);
  // Passdown: dest space is deallocated (commit so the volatile wrapper
  // hands allocation questions to the base).
  ASSERT_OK(e()->Fsync());
  auto d = rig_->dest->NextData(2 * kRegion);
  ASSERT_TRUE(d.ok());
  EXPECT_GE(*d, 5 * kRegion);
}

TEST_F(RoutingTest, PartialPunchHydratesThenZeroesThatPart) {
  Open();
  const uint64_t off = 6 * kRegion + 4096, len = 8192;
  ASSERT_OK(e()->Zero(off, len, true));
  EXPECT_EQ(src_.reads.load(), 1u);
  EXPECT_EQ(Hydrated(), 1u);
  auto want = Expected(6 * kRegion, kRegion);
  std::fill(want.begin() + 4096, want.begin() + 4096 + len, 0);
  EXPECT_EQ(ReadBack(6 * kRegion, kRegion), want);
  EXPECT_EQ(rig_->DestBytes(6 * kRegion, kRegion), want);
}

TEST_F(RoutingTest, NoDiscardPassdownWritesZerosAndKeepsSpace) {
  EngineOptions o = Quiet();
  o.discard_passdown = false;
  Open(o);
  ASSERT_OK(e()->Zero(2 * kRegion, kRegion, true));
  EXPECT_EQ(ReadBack(2 * kRegion, kRegion), std::vector<uint8_t>(kRegion, 0));
  ASSERT_OK(e()->Fsync());
  auto d = rig_->dest->NextData(2 * kRegion);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 2 * kRegion);  // allocated zeros
  EXPECT_FALSE(e()->Stats().discard_passdown);
}

TEST_F(RoutingTest, ZeroRangeKeepsSpaceEvenWithPassdown) {
  Open();
  ASSERT_OK(e()->Zero(3 * kRegion, kRegion, /*punch=*/false));
  EXPECT_EQ(ReadBack(3 * kRegion, kRegion), std::vector<uint8_t>(kRegion, 0));
  ASSERT_OK(e()->Fsync());
  auto d = rig_->dest->NextData(3 * kRegion);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 3 * kRegion);
}

TEST_F(RoutingTest, ZeroOfHydratedRegionIsDirect) {
  Open();
  auto a = Pattern(kRegion, 5);
  ASSERT_OK(e()->Write(0, a.data(), kRegion, false));
  ASSERT_OK(e()->Zero(100, 200, true));
  EXPECT_EQ(src_.reads.load(), 0u);
  std::fill(a.begin() + 100, a.begin() + 300, 0);
  EXPECT_EQ(ReadBack(0, kRegion), a);
}

TEST_F(RoutingTest, OutOfRangeRequestsAreRejected) {
  Open();
  uint8_t b[16];
  EXPECT_TRUE(e()->Read(kImage - 8, b, 16).IsInvalidArgument());
  EXPECT_TRUE(e()->Write(kImage, b, 1, false).IsInvalidArgument());
  EXPECT_TRUE(e()->Zero(UINT64_MAX - 4, 8, true).IsInvalidArgument());
  EXPECT_OK(e()->Read(kImage, b, 0));
}

TEST_F(RoutingTest, SyncWriteIsCommittedBeforeItReturns) {
  Open();
  auto d = Pattern(10, 1);
  ASSERT_OK(e()->Write(kRegion + 5, d.data(), d.size(), /*sync=*/true));
  EngineStats s = e()->Stats();
  EXPECT_EQ(s.committed_hydrated_regions, 1u);
  EXPECT_EQ(s.commits, 1u);
  EXPECT_GE(dst_.flushes.load(), 1u);
}

TEST_F(RoutingTest, FsyncCommitsAndANoChangeFsyncOnlyFlushes) {
  Open();
  auto d = Pattern(10, 1);
  ASSERT_OK(e()->Write(5, d.data(), d.size(), false));
  EXPECT_EQ(e()->Stats().committed_hydrated_regions, 0u);
  ASSERT_OK(e()->Fsync());
  EXPECT_EQ(e()->Stats().committed_hydrated_regions, 1u);
  EXPECT_EQ(e()->Stats().commits, 1u);
  uint64_t flushes = dst_.flushes.load();
  ASSERT_OK(e()->Fsync());
  EXPECT_EQ(dst_.flushes.load(), flushes + 1);  // fsync still flushes dest
  EXPECT_EQ(e()->Stats().commits, 1u);          // but persists nothing
  // A status query with nothing changed does not even flush.
  ASSERT_TRUE(e()->CommitAndStats().ok());
  EXPECT_EQ(dst_.flushes.load(), flushes + 1);
}

TEST_F(RoutingTest, ConcurrentFsyncsShareOneCommit) {
  // The first commit's dest flush is held until every caller has arrived;
  // those callers must then all share the single next commit.
  constexpr int kCallers = 8;
  std::atomic<int> arrived{0};
  std::atomic<bool> first{true};
  dst_.also = [&](DeviceOp op, uint64_t, uint64_t) {
    if (op != DeviceOp::kFlush || !first.exchange(false)) return;
    while (arrived.load() < kCallers) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    // Time for the last callers to get from `arrived++` into Fsync (there is
    // no signal for that); longer where sanitizers slow every thread down.
    std::this_thread::sleep_for(std::chrono::milliseconds(test::Scaled(200, 2000)));
  };
  dst_.Install(rig_->dest);
  Open();
  test::Cleanup stop([&] { rig_->engine.reset(); });  // before the hook's captures go
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < kCallers; ++i) {
    ts.emplace_back([&, i] {
      auto d = Pattern(10, i);
      Status w = e()->Write(i * kRegion + 3, d.data(), d.size(), false);
      EXPECT_TRUE(w.ok()) << w.ToString();
      arrived++;
      Status f = e()->Fsync();
      EXPECT_TRUE(f.ok()) << f.ToString();
      if (f.ok()) ok++;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), kCallers);
  // Callers that arrived before the first commit started share it; all the
  // others arrived while it was held, so they share the second one.
  EXPECT_LE(dst_.flushes.load(), 2u);
  EXPECT_EQ(e()->Stats().committed_hydrated_regions, uint64_t{kCallers});
}

TEST_F(RoutingTest, KillPointsAreReachedWithTheirNames) {
  std::mutex mu;
  std::set<std::string> seen;
  test::KillHookGuard hook([&](std::string_view p) {
    std::lock_guard<std::mutex> l(mu);
    seen.insert(std::string(p));
    return false;
  });
  EngineOptions o = Quiet();
  o.knobs.hydration_enabled = true;
  Open(o);
  auto d = Pattern(10, 1);
  ASSERT_OK(e()->Write(5, d.data(), d.size(), false));
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydrated_regions == 16; }));
  ASSERT_OK(e()->Fsync());
  rig_->engine.reset();  // before the hook's captures go
  for (const char* p : {"write.after_dest_write", "commit.after_freeze", "commit.after_dest_flush",
                        "commit.after_metadata_write", "copier.after_copy"}) {
    EXPECT_TRUE(seen.count(p)) << p;
  }
  EXPECT_EQ(seen.size(), 5u);
}

TEST_F(RoutingTest, CompletionIsReportedOnceAfterTheCommit) {
  std::atomic<int> calls{0};
  std::atomic<uint64_t> committed_at_call{0};
  EngineOptions o;
  o.commit_interval_ms = 60'000;  // the copier's request must trigger the commit
  o.on_complete = [&] {
    committed_at_call = rig_->engine->Stats().committed_hydrated_regions;
    calls++;  // after the figure: the test reads it once it sees the call
  };
  Open(o);
  test::Cleanup stop([&] { rig_->engine.reset(); });
  ASSERT_TRUE(Rig::WaitFor([&] { return calls.load() == 1; }));
  EXPECT_TRUE(e()->Stats().hydration_done);
  EXPECT_EQ(committed_at_call.load(), 16u);
  EngineStats s = e()->Stats();
  EXPECT_EQ(s.committed_hydrated_regions, 16u);
  EXPECT_EQ(s.hydrated_bytes, kImage);
  EXPECT_EQ(rig_->DestBytes(0, kImage), rig_->source_content);
  ASSERT_OK(e()->Fsync());
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(RoutingTest, RestartKeepsCommittedRegionsAndNeverCopiesThemAgain) {
  Open();
  auto d = Pattern(kRegion, 4);
  ASSERT_OK(e()->Write(3 * kRegion, d.data(), kRegion, false));
  ASSERT_OK(e()->Write(9 * kRegion + 7, d.data(), 100, false));
  ASSERT_OK(e()->Fsync());
  ASSERT_OK(e()->Shutdown());
  rig_->engine.reset();
  // Reopen with copying on; count source reads of regions 3 and 9.
  std::atomic<int> bad{0};
  src_.also = [&](DeviceOp op, uint64_t off, uint64_t len) {
    if (op != DeviceOp::kRead) return;
    for (uint64_t r : {3, 9}) {
      if (off < (r + 1) * kRegion && r * kRegion < off + len) bad++;
    }
  };
  src_.Install(rig_->source);
  Open();  // copier off until the reloaded state has been checked
  test::Cleanup stop([&] { rig_->engine.reset(); });
  EXPECT_EQ(e()->Stats().committed_hydrated_regions, 2u);
  e()->EnableHydration(true);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydration_done; }));
  EXPECT_EQ(bad.load(), 0);
  auto want = rig_->source_content;
  std::copy(d.begin(), d.end(), want.begin() + 3 * kRegion);
  std::copy(d.begin(), d.begin() + 100, want.begin() + 9 * kRegion + 7);
  EXPECT_EQ(rig_->ReadAll(), want);
}

TEST_F(RoutingTest, StatsAndKnobs) {
  Open();
  e()->SetHydrationThreshold(5);
  e()->SetHydrationBatchSize(3);
  e()->SetRate(12345);
  e()->EnableHydration(false);
  EngineStats s = e()->Stats();
  EXPECT_EQ(s.image_size, kImage);
  EXPECT_EQ(s.region_size, kRegion);
  EXPECT_EQ(s.nr_regions, 16u);
  EXPECT_EQ(s.knobs.hydration_threshold, 5u);
  EXPECT_EQ(s.knobs.hydration_batch_size, 3u);
  EXPECT_EQ(s.knobs.rate_bytes_per_s, 12345u);
  EXPECT_FALSE(s.knobs.hydration_enabled);
  EXPECT_EQ(s.mode, EngineMode::kReadWrite);
  EXPECT_STREQ(EngineModeName(s.mode), "rw");
  auto r = e()->CommitAndStats();
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->metadata_space.total_blocks, 0u);
  EXPECT_GT(r->metadata_space.used_blocks, 0u);
}

class PartialImageTest : public RoutingTest {
 protected:
  PartialImageTest() { image_ = 4 * kRegion + 12288; }  // last region: 12 KiB
};

TEST_F(PartialImageTest, LastPartialRegionIsAlwaysCopied) {
  Open();
  const uint64_t last = 4 * kRegion;
  auto d = Pattern(12288, 8);
  ASSERT_OK(e()->Write(last, d.data(), d.size(), false));  // covers it entirely
  EXPECT_EQ(src_.reads.load(), 1u);
  EXPECT_EQ(ReadBack(last, 12288), d);
  ASSERT_OK(e()->Zero(last, 12288, true));
  EXPECT_EQ(ReadBack(last, 12288), std::vector<uint8_t>(12288, 0));
  EngineStats s = e()->Stats();
  EXPECT_EQ(s.nr_regions, 5u);
  EXPECT_EQ(s.hydrated_bytes, 12288u);
}

TEST_F(PartialImageTest, WholeImageZeroHydratesEverything) {
  Open();
  ASSERT_OK(e()->Zero(0, image_, true));
  EXPECT_EQ(Hydrated(), 5u);
  EXPECT_EQ(src_.reads.load(), 1u);  // only the partial last region is copied
  EXPECT_EQ(ReadBack(0, image_), std::vector<uint8_t>(image_, 0));
  EXPECT_EQ(e()->Stats().hydrated_bytes, image_);
}

TEST_F(RoutingTest, SeekDataAndHoleDescribeTheImage) {
  // Source: regions 0-3 data, 4-7 hole, 8-15 data (rebuild the rig).
  std::vector<uint8_t> c = test::RandomContent(kImage, 3, 0);
  std::fill(c.begin() + 4 * kRegion, c.begin() + 8 * kRegion, 0);
  rig_ = std::make_unique<Rig>(kImage, kRegion, c);
  Open();
  auto data = [&](uint64_t off) { return *e()->SeekData(off); };
  auto hole = [&](uint64_t off) { return *e()->SeekHole(off); };
  EXPECT_EQ(data(0), 0u);
  EXPECT_EQ(hole(0), 4 * kRegion);
  EXPECT_EQ(data(4 * kRegion + 10), 8 * kRegion);
  EXPECT_EQ(hole(8 * kRegion), kImage);
  // Punch region 9 (hydrated, a hole in dest) and write region 5.
  ASSERT_OK(e()->Zero(9 * kRegion, kRegion, true));
  auto d = Pattern(kRegion, 1);
  ASSERT_OK(e()->Write(5 * kRegion, d.data(), kRegion, false));
  ASSERT_OK(e()->Fsync());  // let the volatile dest answer allocation truthfully
  EXPECT_EQ(data(4 * kRegion), 5 * kRegion);
  EXPECT_EQ(hole(5 * kRegion), 6 * kRegion);
  EXPECT_EQ(hole(8 * kRegion), 9 * kRegion);
  EXPECT_EQ(data(9 * kRegion), 10 * kRegion);
  EXPECT_EQ(data(kImage), kImage);  // none: the FUSE layer answers ENXIO
}

// Runs `hook(call, arg)` after the queries a request makes of the
// hydration state, so a test can hydrate a region between two of them, as a
// copier finishing at that moment would.
class InterposedMetadata final : public test::ForwardingMetadata {
 public:
  using Hook = std::function<void(std::string_view call, uint64_t arg)>;
  InterposedMetadata(std::unique_ptr<metadata::Metadata> m, Hook hook)
      : ForwardingMetadata(std::move(m)), hook_(std::move(hook)) {}
  bool IsRegionHydrated(uint64_t r) const override {
    bool h = inner()->IsRegionHydrated(r);
    hook_("IsRegionHydrated", r);
    return h;
  }
  uint64_t NrHydratedRegions() const override {
    uint64_t n = inner()->NrHydratedRegions();
    hook_("NrHydratedRegions", 0);
    return n;
  }

 private:
  Hook hook_;
};

// A rig whose metadata hydrates region `region` (dest written first, then
// marked, as the copier does) right after the first `call` once armed.
struct RaceRig {
  RaceRig(uint64_t image, std::string_view call, uint64_t region)
      : rig(image, kRegion, test::RandomContent(image, 5, 0)) {
    rig.wrap_md = [this, call, region](std::unique_ptr<metadata::Metadata> m) {
      auto w = std::make_unique<InterposedMetadata>(
          std::move(m), [this, call, region](std::string_view c, uint64_t arg) {
            if (c != call || (c == "IsRegionHydrated" && arg != region)) return;
            if (!armed.exchange(false)) return;
            const uint64_t off = region * kRegion;
            const uint64_t len = std::min(kRegion, rig.image_size - off);
            ASSERT_OK(rig.dest->Write(off, rig.source_content.data() + off, len));
            ASSERT_OK(md->SetRegionHydrated(region));
          });
      md = w.get();
      return w;
    };
  }
  Rig rig;
  metadata::Metadata* md = nullptr;
  std::atomic<bool> armed{false};
};

TEST(SeekRace, RegionHydratedDuringASeekNeverMovesTheAnswerBelowTheOffset) {
  RaceRig race(kImage, "IsRegionHydrated", 5);
  ASSERT_OK(race.rig.Open(Quiet()));
  const uint64_t off = 5 * kRegion + 3 * 4096;  // data everywhere in the source
  race.armed = true;
  Result<uint64_t> got = race.rig.engine->SeekData(off);
  ASSERT_FALSE(race.armed.load());  // the region was hydrated mid-seek
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, off);
  EXPECT_TRUE(race.rig.engine->Stats().hydrated_regions == 1);
  // And in the other direction: no hole before the end, whatever the state.
  race.armed = false;
  got = race.rig.engine->SeekHole(off);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, kImage);
}

TEST(StatsRace, LastPartialRegionHydratedBetweenTheCountAndItsCheckKeepsBytesInRange) {
  const uint64_t image = 8 * kRegion + 4096;  // the last region is 4 KiB
  RaceRig race(image, "NrHydratedRegions", 8);
  ASSERT_OK(race.rig.Open(Quiet()));
  race.armed = true;
  EngineStats s = race.rig.engine->Stats();
  ASSERT_FALSE(race.armed.load());
  EXPECT_EQ(s.hydrated_regions, 0u);
  // Either snapshot is true (0 before the hydration, 4 KiB after); never a
  // figure wrapped below zero.
  EXPECT_TRUE(s.hydrated_bytes == 0 || s.hydrated_bytes == 4096) << s.hydrated_bytes;
  EXPECT_EQ(race.rig.engine->Stats().hydrated_bytes, 4096u);
}

TEST(EngineOpen, RejectsMismatchedDevices) {
  Rig rig(kImage, kRegion, test::RandomContent(kImage, 1, 0));
  auto md = metadata::Metadata::Open(rig.MdOptions());
  ASSERT_TRUE(md.ok()) << md.status().ToString();
  // Source writable.
  auto e = Engine::Open(NewMemDevice(kImage, false), NewMemDevice(kImage), std::move(*md), {});
  EXPECT_TRUE(!e.ok() && e.status().IsInvalidArgument()) << e.status().ToString();
  md = metadata::Metadata::Open(rig.MdOptions());
  ASSERT_TRUE(md.ok());
  e = Engine::Open(NewMemDevice(kImage, true), NewMemDevice(kImage - 1), std::move(*md), {});
  EXPECT_TRUE(!e.ok() && e.status().IsInvalidArgument());
  EXPECT_NE(e.status().message().find("smaller"), std::string::npos);
  md = metadata::Metadata::Open(rig.MdOptions());
  ASSERT_TRUE(md.ok());
  e = Engine::Open(NewMemDevice(kImage + 1, true), NewMemDevice(kImage + 1), std::move(*md), {});
  EXPECT_TRUE(!e.ok() && e.status().IsInvalidArgument());
}

}  // namespace
}  // namespace clonefs
