// Unit tests of the in-core bitmap: marks, queries, the freeze protocol and
// its concurrency property, without RocksDB.
#include "metadata/hydration_bitmap.h"

#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <set>
#include <chrono>
#include <thread>

#include "md_test_util.h"

namespace clonefs::metadata {
namespace {

using testing::Scaled;
using testing::TestSeed;

std::unique_ptr<HydrationBitmap> Make(uint64_t n) {
  auto r = HydrationBitmap::Create(n);
  EXPECT_TRUE(r.ok());
  return std::move(r).value();
}

// What a commit writes: every frozen chunk is replaced by its PersistValue,
// as PersistFrozen replaces the chunk's key in the store.
void ApplyCommit(const HydrationBitmap& b, std::vector<bool>* store) {
  std::vector<uint64_t> w(kWordsPerChunk);
  for (uint64_t c : b.FrozenChunks()) {
    b.PersistValue(c, w.data());
    for (uint64_t i = 0; i < b.ValidRegionsInChunk(c); ++i) {
      (*store)[c * kRegionsPerChunk + i] = (w[i / 64] >> (i % 64)) & 1;
    }
  }
}

// The persisted image of every frozen chunk, as a set of regions.
std::set<uint64_t> PersistedRegions(const HydrationBitmap& b) {
  std::set<uint64_t> out;
  std::vector<uint64_t> w(kWordsPerChunk);
  for (uint64_t c : b.FrozenChunks()) {
    b.PersistValue(c, w.data());
    for (uint64_t i = 0; i < kRegionsPerChunk; ++i) {
      if ((w[i / 64] >> (i % 64)) & 1) out.insert(c * kRegionsPerChunk + i);
    }
  }
  return out;
}

TEST(HydrationBitmap, MarksAndQueries) {
  const uint64_t n = 3 * kRegionsPerChunk + 77;
  auto b = Make(n);
  EXPECT_EQ(b->nr_chunks(), 4u);
  EXPECT_EQ(b->ValidRegionsInChunk(3), 77u);
  EXPECT_EQ(b->FindNext(0, true), n);
  EXPECT_EQ(b->FindNext(0, false), 0u);
  EXPECT_TRUE(b->Mark(0));
  EXPECT_TRUE(b->Mark(n - 1));
  EXPECT_TRUE(b->Mark(0));  // idempotent
  EXPECT_EQ(b->Count(), 2u);
  EXPECT_TRUE(b->Test(0));
  EXPECT_TRUE(b->Test(n - 1));
  EXPECT_FALSE(b->Test(1));
  EXPECT_EQ(b->FindNext(1, true), n - 1);
  EXPECT_EQ(b->FindNext(0, false), 1u);
  EXPECT_TRUE(b->MarkRange(60, 200));
  EXPECT_EQ(b->Count(), 202u);
  EXPECT_TRUE(b->TestRange(60, 200));
  EXPECT_FALSE(b->TestRange(59, 201));
  EXPECT_FALSE(b->TestRange(60, 201));
  EXPECT_EQ(b->FindNext(60, false), 260u);
  // A range over chunk boundaries, overlapping already-marked regions.
  EXPECT_TRUE(b->MarkRange(100, 2 * kRegionsPerChunk));
  EXPECT_EQ(b->Count(), 2 + (100 + 2 * kRegionsPerChunk - 60));
  EXPECT_TRUE(b->MarkRange(0, n));
  EXPECT_EQ(b->Count(), n);
  EXPECT_EQ(b->FindNext(0, false), n);
}

TEST(HydrationBitmap, FreezeSeparatesTransactions) {
  auto b = Make(2 * kRegionsPerChunk);
  EXPECT_FALSE(b->Changed());
  EXPECT_EQ(b->Freeze(), 0u);
  EXPECT_TRUE(b->FrozenChunks().empty());
  b->Mark(5);
  b->Mark(kRegionsPerChunk + 9);
  EXPECT_TRUE(b->Changed());
  EXPECT_EQ(b->Freeze(), 2u);
  EXPECT_EQ(b->FrozenChunks(), (std::vector<uint64_t>{0, 1}));
  b->Mark(6);  // after the freeze: next transaction
  EXPECT_EQ(PersistedRegions(*b), (std::set<uint64_t>{5, kRegionsPerChunk + 9}));
  b->ClearFrozen();
  EXPECT_TRUE(b->Changed());  // region 6 is pending
  EXPECT_EQ(b->Freeze(), 1u);
  EXPECT_EQ(PersistedRegions(*b), (std::set<uint64_t>{5, 6}));  // chunk 0 keeps 5
  b->ClearFrozen();
  EXPECT_FALSE(b->Changed());
}

TEST(HydrationBitmap, UnpersistedFrozenSetMergesIntoNextFreeze) {
  auto b = Make(kRegionsPerChunk * 3);
  b->Mark(1);
  EXPECT_EQ(b->Freeze(), 1u);
  b->Mark(2 * kRegionsPerChunk);  // frozen set not cleared: merged at next freeze
  EXPECT_EQ(b->Freeze(), 2u);
  EXPECT_EQ(PersistedRegions(*b), (std::set<uint64_t>{1, 2 * kRegionsPerChunk}));
  b->ClearFrozen();
  EXPECT_FALSE(b->Changed());
}

TEST(HydrationBitmap, GateRefusesMarks) {
  auto b = Make(100);
  b->Mark(1);
  b->CloseGate();
  EXPECT_TRUE(b->GateClosed());
  EXPECT_FALSE(b->Mark(2));
  EXPECT_FALSE(b->Mark(1));  // even an already-hydrated region
  EXPECT_FALSE(b->MarkRange(0, 10));
  EXPECT_FALSE(b->Test(2));
  b->OpenGate();
  EXPECT_TRUE(b->Mark(2));
  EXPECT_EQ(b->Count(), 2u);
}

TEST(HydrationBitmap, ReloadNeverFlickersStableBits) {
  auto b = Make(kRegionsPerChunk);
  b->MarkRange(0, 128);
  std::vector<uint64_t> w(kWordsPerChunk, 0);
  w[0] = ~0ull;  // the "store" has regions 0..63 only
  b->ClearAllDirty();
  b->LoadChunk(0, w.data());
  b->SetCount(64);
  EXPECT_TRUE(b->TestRange(0, 64));
  EXPECT_FALSE(b->Test(64));
  EXPECT_FALSE(b->Changed());
  b->ZeroChunk(0);
  EXPECT_EQ(b->FindNext(0, true), kRegionsPerChunk);
}

// Marker threads mark regions while a committer freezes and "persists"
// (computes PersistValue) in a loop. An epoch counter brackets each Freeze
// (odd while freezing). For each commit we check, against the marks' epochs:
//   - every mark that returned before the freeze began is persisted;
//   - no region whose every mark began after the freeze ended is persisted,
//     unless an earlier commit persisted it;
//   - the persisted set only grows.
class ConcurrentMarks : public ::testing::TestWithParam<bool> {
 protected:
  // With the hook, marks sometimes pause at each step of the protocol, which
  // makes the races with Freeze (hydration_bitmap.h) likely.
  void SetUp() override {
    if (GetParam()) HydrationBitmap::SetMarkHookForTesting(&Pause);
  }
  void TearDown() override { HydrationBitmap::SetMarkHookForTesting(nullptr); }
  static void Pause(HydrationBitmap::HookPoint) {
    thread_local uint32_t x = 12345;
    x = x * 1103515245 + 12345;
    if ((x >> 16) % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds((x >> 8) % 200));
  }
};

INSTANTIATE_TEST_SUITE_P(HydrationBitmap, ConcurrentMarks, ::testing::Bool());

TEST_P(ConcurrentMarks, VersusFreeze) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const uint64_t n = 2 * kRegionsPerChunk;
  auto b = Make(n);
  const int kThreads = 3;
  const uint64_t per_thread = Scaled(GetParam() ? 4000 : 20000, 4);
  // Every other mark is the same region in every thread, at about the same
  // time: duplicate marks racing each other and the committer.
  std::vector<std::vector<uint64_t>> todo(kThreads);
  std::mt19937_64 rng(seed);
  for (uint64_t i = 0; i < per_thread; ++i) {
    const uint64_t shared = rng() % n;
    for (auto& t : todo) t.push_back(i % 2 ? rng() % n : shared);
  }
  struct MarkRecord {
    uint64_t region, epoch_before, epoch_after;
  };
  std::vector<std::vector<MarkRecord>> logs(kThreads);
  std::atomic<uint64_t> epoch{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (uint64_t r : todo[t]) {
        if (logs[t].size() % 32 == 0) std::this_thread::yield();  // spread marks over commits
        const uint64_t before = epoch.load();
        if (r % 7 == 0) {
          b->MarkRange(r, std::min<uint64_t>(3, n - r));
        } else {
          b->Mark(r);
        }
        logs[t].push_back({r, before, epoch.load()});
      }
      done.fetch_add(1);
    });
  }
  std::vector<bool> persisted(n, false);
  struct Commit {
    uint64_t epoch_start;  // epoch value while freezing (odd)
    std::vector<bool> state;
  };
  std::vector<Commit> commits;
  while (done.load() < kThreads) {
    const uint64_t e = epoch.fetch_add(1) + 1;  // odd
    b->Freeze();
    epoch.fetch_add(1);
    ApplyCommit(*b, &persisted);
    b->ClearFrozen();
    commits.push_back({e, persisted});
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  for (auto& t : threads) t.join();
  RecordProperty("commits_during_marking", static_cast<int>(commits.size()));
  b->Freeze();
  ApplyCommit(*b, &persisted);
  b->ClearFrozen();
  commits.push_back({epoch.fetch_add(2) + 1, persisted});

  // Earliest epoch at which each region may legitimately be persisted.
  std::vector<uint64_t> first_mark_start(n, UINT64_MAX), first_mark_end(n, UINT64_MAX);
  for (const auto& log : logs) {
    for (const auto& m : log) {
      const uint64_t len = m.region % 7 == 0 ? std::min<uint64_t>(3, n - m.region) : 1;
      for (uint64_t r = m.region; r < m.region + len; ++r) {
        first_mark_start[r] = std::min(first_mark_start[r], m.epoch_before);
        first_mark_end[r] = std::min(first_mark_end[r], m.epoch_after);
      }
    }
  }
  std::vector<bool> prev(n, false);
  for (const auto& c : commits) {
    for (uint64_t r = 0; r < n; ++r) {
      if (prev[r]) {
        ASSERT_TRUE(c.state[r]) << "region " << r << " lost";
      }
      // A mark that completed before this freeze began (its epoch_after <
      // freeze epoch) must be in.
      if (first_mark_end[r] < c.epoch_start) {
        ASSERT_TRUE(c.state[r]) << "region " << r << " missing";
      }
      // Every mark started after this freeze completed: must be out.
      if (first_mark_start[r] > c.epoch_start) {
        ASSERT_FALSE(c.state[r]) << "region " << r << " early";
      }
    }
    prev = c.state;
  }
  // Finally everything marked is persisted and nothing else.
  for (uint64_t r = 0; r < n; ++r) {
    ASSERT_EQ(persisted[r], first_mark_start[r] != UINT64_MAX) << r;
    ASSERT_EQ(b->Test(r), persisted[r]) << r;
  }
  EXPECT_EQ(b->Count(), testing::CountTrue(persisted));
}

// CloseGate waits for marks in flight: after it returns, nothing changes.
TEST(HydrationBitmap, CloseGateQuiescesMarkers) {
  auto b = Make(kRegionsPerChunk * 2);
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      uint64_t r = t;
      while (!stop.load()) {
        b->Mark(r % b->nr_regions());
        r += 2;
      }
    });
  }
  for (int i = 0; i < Scaled(50); ++i) {
    b->CloseGate();
    const uint64_t count = b->Count();
    std::this_thread::yield();
    ASSERT_EQ(b->Count(), count);
    b->OpenGate();
  }
  stop = true;
  for (auto& t : threads) t.join();
}

}  // namespace
}  // namespace clonefs::metadata
