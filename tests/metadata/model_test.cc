// Model-based randomized tests: Metadata against a plain std::vector<bool>
// model (marks, ranges, freeze/persist/commit, abort, reload, read-only,
// reopen, injected commit failures), and concurrent marking while commits
// run, checked against the durable state after reopening.
#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "md_test_util.h"
#include "metadata/chunk_codec.h"
#include "metadata/fault_fs.h"
#include "metadata/metadata.h"

namespace clonefs::metadata {
namespace {

using testing::CountTrue;
using testing::FirstDiff;
using testing::MustOpen;
using testing::Options;
using testing::Scaled;
using testing::Snapshot;
using testing::TempDir;
using testing::TestSeed;

struct Model {
  std::vector<bool> incore, committed;
  std::set<uint64_t> frozen, current;
  bool read_only = false;
  bool needs_abort = false;
  // After a failed PersistFrozen the store holds the last commit, or the
  // failed one if its write reached the disk anyway (RocksDB replays it when
  // the store is reopened). `maybe` is that second candidate until a reopen
  // settles it.
  std::optional<std::vector<bool>> maybe;

  explicit Model(uint64_t n) : incore(n, false), committed(n, false) {}
  // Checks the state read back from the store; `settled`: the store was
  // reopened, so the failed commit's fate is now known.
  ::testing::AssertionResult Check(const std::vector<bool>& got, bool settled) {
    if (maybe && got == *maybe) committed = *maybe;
    if (settled) maybe.reset();
    const int64_t d = FirstDiff(got, committed);
    if (d == -1) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "store differs from the model at region " << d;
  }
  void Mark(uint64_t r) {
    if (!incore[r]) current.insert(r);
    incore[r] = true;
  }
  void Rollback() {
    incore = committed;
    frozen.clear();
    current.clear();
  }
};

class ModelTest : public ::testing::TestWithParam<uint64_t> {};

INSTANTIATE_TEST_SUITE_P(Sizes, ModelTest,
                         ::testing::Values(1000, 3 * kRegionsPerChunk + 17));

TEST_P(ModelTest, RandomOperations) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (set CLONEFS_TEST_SEED to replay)");
  std::mt19937_64 rng(seed);
  const uint64_t n = GetParam();
  TempDir t(TempDir::kMemory);
  MetadataOptions o = Options(t.path(), n);
  o.write_buffer_bytes = 64 << 10;  // flushes and compactions along the way
  o.fault_fs = std::make_shared<FaultInjectionFs>();
  auto md = MustOpen(o);
  ASSERT_TRUE(md);
  Model m(n);
  auto pick = [&] { return rng() % 4 == 0 ? (rng() % 2 ? 0 : n - 1) : rng() % n; };

  const int steps = Scaled(3000);
  for (int step = 0; step < steps; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    const int op = static_cast<int>(rng() % 100);
    if (op < 40) {
      const uint64_t r = pick();
      Status s = md->SetRegionHydrated(r);
      if (m.read_only) {
        ASSERT_TRUE(s.IsReadOnly()) << s.ToString();
      } else {
        ASSERT_TRUE(s.ok()) << s.ToString();
        m.Mark(r);
      }
    } else if (op < 55) {
      const uint64_t start = rng() % 20 == 0 ? n - rng() % 3 : pick();
      uint64_t count = rng() % 3 == 0 ? rng() % 40000 : rng() % 100;
      if (rng() % 30 == 0) count = UINT64_MAX - rng() % 5;
      Status s = md->CondSetRange(start, count);
      if (start >= n || count > n - start) {
        ASSERT_TRUE(s.IsInvalidArgument()) << s.ToString();
      } else if (m.read_only) {
        ASSERT_TRUE(s.IsReadOnly()) << s.ToString();
      } else {
        ASSERT_TRUE(s.ok()) << s.ToString();
        for (uint64_t r = start; r < start + count; ++r) m.Mark(r);
      }
    } else if (op < 63) {
      auto f = md->Freeze();
      if (m.needs_abort) {
        ASSERT_TRUE(f.status().IsFailed()) << f.status().ToString();
      } else if (m.read_only) {
        ASSERT_TRUE(f.status().IsReadOnly()) << f.status().ToString();
      } else {
        ASSERT_TRUE(f.ok()) << f.status().ToString();
        m.frozen.insert(m.current.begin(), m.current.end());
        m.current.clear();
        ASSERT_EQ(*f, m.frozen.size());
      }
    } else if (op < 73) {
      const bool inject = !m.read_only && !m.needs_abort && !m.frozen.empty() && rng() % 6 == 0;
      if (inject) o.fault_fs->SetFailSyncs(true);
      Status s = md->PersistFrozen();
      o.fault_fs->SetFailSyncs(false);
      if (m.needs_abort) {
        ASSERT_TRUE(s.IsFailed()) << s.ToString();
      } else if (m.read_only) {
        ASSERT_TRUE(s.IsReadOnly()) << s.ToString();
      } else if (inject) {
        ASSERT_TRUE(s.IsIoError()) << s.ToString();
        m.needs_abort = true;
        m.maybe = m.committed;
        for (uint64_t r : m.frozen) (*m.maybe)[r] = true;
      } else {
        ASSERT_TRUE(s.ok()) << s.ToString();
        for (uint64_t r : m.frozen) m.committed[r] = true;
        m.frozen.clear();
      }
    } else if (op < 80) {
      Status s = md->Commit();
      if (m.needs_abort) {
        ASSERT_TRUE(s.IsFailed()) << s.ToString();
      } else if (m.read_only) {
        ASSERT_TRUE(s.IsReadOnly()) << s.ToString();
      } else {
        ASSERT_TRUE(s.ok()) << s.ToString();
        m.frozen.insert(m.current.begin(), m.current.end());
        for (uint64_t r : m.frozen) m.committed[r] = true;
        m.frozen.clear();
        m.current.clear();
      }
    } else if (op < 85) {
      md->SetReadOnly();
      const bool abort = rng() % 2;
      Status s = abort ? md->Abort() : md->ReloadInCoreBitset();
      ASSERT_TRUE(s.ok()) << s.ToString();
      // Abort reopens the store after a failed commit; a reload does not.
      ASSERT_TRUE(m.Check(Snapshot(*md), abort && m.needs_abort));
      m.Rollback();
      if (abort) m.needs_abort = false;
      if (!m.read_only) md->SetReadWrite();
    } else if (op < 92) {
      m.read_only = !m.read_only;
      m.read_only ? md->SetReadOnly() : md->SetReadWrite();
    } else {
      // Reopen without committing: only the last commit survives.
      md.reset();
      MetadataOptions reopen = o;
      reopen.read_only = rng() % 4 == 0;
      md = MustOpen(reopen);
      ASSERT_TRUE(md);
      ASSERT_TRUE(m.Check(Snapshot(*md), true));
      m.Rollback();
      m.read_only = reopen.read_only;
      m.needs_abort = false;
      if (reopen.read_only) {  // and back to read-write for the next steps
        md.reset();
        md = MustOpen(o);
        ASSERT_TRUE(md);
        m.read_only = false;
      }
    }
    ASSERT_EQ(md->IsReadOnly(), m.read_only);
    ASSERT_EQ(md->NrHydratedRegions(), CountTrue(m.incore));
    ASSERT_EQ(md->NrCommittedHydratedRegions(), CountTrue(m.committed));
    ASSERT_EQ(md->ChangedThisTransaction(), !m.frozen.empty() || !m.current.empty());
    ASSERT_EQ(md->IsHydrationDone(), CountTrue(m.incore) == n);
    const uint64_t q = pick();
    ASSERT_EQ(md->IsRegionHydrated(q), m.incore[q]);
    const uint64_t len = std::min<uint64_t>(n - q, rng() % 200);
    bool all = true;
    for (uint64_t r = q; r < q + len; ++r) all = all && m.incore[r];
    ASSERT_EQ(md->IsRangeHydrated(q, len), all);
    uint64_t next_un = q, next_h = q;
    while (next_un < n && m.incore[next_un]) ++next_un;
    while (next_h < n && !m.incore[next_h]) ++next_h;
    ASSERT_EQ(md->FindNextUnhydratedRegion(q), next_un);
    ASSERT_EQ(md->FindNextHydratedRegion(q), next_h);
    if (step % 100 == 0) {
      ASSERT_EQ(FirstDiff(Snapshot(*md), m.incore), -1);
    }
  }
  // The end: what survives a close is exactly the last commit.
  md.reset();
  md = MustOpen(o);
  ASSERT_TRUE(m.Check(Snapshot(*md), true));
}

// Threads mark while the test commits (Freeze, PersistFrozen) in a loop; an
// epoch counter brackets every Freeze. After each round the store is closed
// without a final commit and reopened: the durable state must hold every
// region one of whose marks returned before the last freeze began (and every
// region committed before), and no region all of whose marks began after the
// last freeze ended.
TEST(MetadataConcurrency, MarksDuringCommitsVersusTheDurableState) {
  const uint64_t seed = TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  const uint64_t n = 16 * kRegionsPerChunk;
  TempDir t;
  const MetadataOptions o = Options(t.path(), n);
  std::vector<bool> durable(n, false);
  std::mt19937_64 seeder(seed);
  for (int round = 0; round < Scaled(4, 2); ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    auto md = MustOpen(o);
    ASSERT_TRUE(md);
    ASSERT_EQ(FirstDiff(Snapshot(*md), durable), -1);
    std::atomic<uint64_t> epoch{0};
    std::atomic<bool> stop{false};
    constexpr int kThreads = 3;
    std::vector<std::vector<uint64_t>> begin_epoch(kThreads, std::vector<uint64_t>(n, UINT64_MAX));
    std::vector<std::vector<uint64_t>> end_epoch(kThreads, std::vector<uint64_t>(n, UINT64_MAX));
    std::vector<std::thread> threads;
    for (int th = 0; th < kThreads; ++th) {
      threads.emplace_back([&, th, s = seeder()] {
        std::mt19937_64 rng(s);
        for (uint64_t i = 0; !stop.load(); ++i) {
          if (i % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(20));
          const uint64_t r = rng() % n;
          const uint64_t len = rng() % 8 == 0 ? std::min<uint64_t>(n - r, 1 + rng() % 50) : 1;
          const uint64_t b = epoch.load();
          Status st = len == 1 ? md->SetRegionHydrated(r) : md->CondSetRange(r, len);
          const uint64_t e = epoch.load();
          ASSERT_TRUE(st.ok()) << st.ToString();
          for (uint64_t i = r; i < r + len; ++i) {
            begin_epoch[th][i] = std::min(begin_epoch[th][i], b);
            end_epoch[th][i] = std::min(end_epoch[th][i], e);
          }
        }
      });
    }
    uint64_t last_freeze = 0;
    const int commits = Scaled(30, 3);
    for (int c = 0; c < commits; ++c) {
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      last_freeze = epoch.fetch_add(1) + 1;
      ASSERT_TRUE(md->Freeze().ok());
      epoch.fetch_add(1);
      ASSERT_TRUE(md->PersistFrozen().ok());
    }
    std::this_thread::sleep_for(std::chrono::microseconds(300));
    stop = true;
    for (auto& th : threads) th.join();
    md.reset();  // no final commit
    md = MustOpen(o);
    ASSERT_TRUE(md);
    const std::vector<bool> got = Snapshot(*md);
    for (uint64_t r = 0; r < n; ++r) {
      uint64_t first_begin = UINT64_MAX, first_end = UINT64_MAX;
      for (int th = 0; th < kThreads; ++th) {
        first_begin = std::min(first_begin, begin_epoch[th][r]);
        first_end = std::min(first_end, end_epoch[th][r]);
      }
      if (durable[r] || first_end < last_freeze) {
        ASSERT_TRUE(got[r]) << "region " << r << " committed or frozen, but not durable";
      }
      if (!durable[r] && first_begin > last_freeze) {
        ASSERT_FALSE(got[r]) << "region " << r << " marked after the last freeze is durable";
      }
    }
    durable = got;
  }
}

}  // namespace
}  // namespace clonefs::metadata
