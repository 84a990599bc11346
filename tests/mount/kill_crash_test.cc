// Process crash through the kernel (TESTING §2, model 1): threads write
// (O_DIRECT, buffered, O_DSYNC), fsync and read back through the exposed
// file while the copier runs; the daemon is SIGKILLed at a random moment;
// then the clone is mounted again on the same dest and metadata. After every
// kill the whole image is checked against the crash contract (SPEC §5) with
// the model of tests/support/crash_model.h:
//   1. every write answered before a successful fsync, or under O_DSYNC,
//      reads back (each sector holds its floor version or a later one);
//   2. never zeros or garbage where the user or the source had data;
//   3. sectors never written read exactly as the source;
//   4. the regions committed before the kill are still committed after it.
// The copier is slow at first, so early kills meet a partial clone and later
// ones (once read hints are on) a complete clone, whose new opens go through
// passthrough where the kernel allows. At the end hydration completes and dest alone must equal
// the last checked image.
//
// Rounds: $CLONEFS_KILL_ROUNDS (default 6); bench/soak/kill_soak.sh runs
// many more, on both FUSE transports.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mount/harness.h"
#include "support/crash_model.h"
#include "support/test_seed.h"

namespace clonefs::testing {
namespace {

using test::CrashModel;
using test::FillSector;
using test::kSector;
using test::Mix;
using test::ParseSector;

constexpr uint64_t kRegion = 64 << 10;
constexpr uint64_t kImage = (64ull << 20) + 8192;  // a partial last region
constexpr uint64_t kSectors = kImage / kSector;
constexpr uint64_t kMaxSectors = 256;  // 128 KiB per request at most
constexpr int kWriters = 3;
constexpr uint64_t kHotSectors = (2 << 20) / kSector;

int Rounds() {
  const char* e = std::getenv("CLONEFS_KILL_ROUNDS");
  return e != nullptr && std::atoi(e) > 0 ? std::atoi(e) : 6;
}

// Committed regions, from status (a status query commits first), or -1.
int64_t CommittedRegions(const CloneDir& c) {
  auto rep = QueryStatus(c.mnt);
  return rep.ok() ? static_cast<int64_t>(rep->committed_hydrated_regions) : -1;
}

// Waits (up to 30 s) until `pid` has exited and closed its files (so its
// metadata can be opened): gone, or a zombie whose other threads are gone
// too (a killed process's main thread may turn zombie before the others
// have finished exiting, and they share its files).
bool WaitGone(int pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  for (int i = 0; i < 3000; ++i) {
    std::ifstream stat(proc + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    const size_t paren = line.rfind(')');
    const bool zombie =
        paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
    std::error_code ec;
    int threads = 0;
    for (std::filesystem::directory_iterator it(proc + "/task", ec), end; !ec && it != end;
         it.increment(ec)) {
      ++threads;
    }
    if (ec || (zombie && threads <= 1)) return true;  // (ec: reaped meanwhile)
    usleep(10'000);
  }
  return false;
}

// Waits (up to `seconds`) until status says every region is hydrated and
// committed.
bool WaitHydrationDone(const CloneDir& c, int seconds) {
  for (int i = 0; i < seconds * 10; ++i) {
    auto rep = QueryStatus(c.mnt);
    if (rep.ok() && rep->hydration_done) return true;
    usleep(100'000);
  }
  return false;
}

// One round's workload on the mounted clone.
class Load {
 public:
  Load(const CloneDir& c, CrashModel* model, const std::vector<uint8_t>* source, uint64_t seed)
      : model_(model),
        source_(source),
        seed_(seed),
        hot_(8 * (1 + Mix(seed) % ((kSectors - kHotSectors) / 8))) {
    // (O_CLOEXEC: not inherited by the next daemon, which the next round
    // starts while these are still open on the dead mount.)
    dfd_ = open(c.exposed().c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
    bfd_ = open(c.exposed().c_str(), O_RDWR | O_CLOEXEC);
    sfd_ = open(c.exposed().c_str(), O_RDWR | O_DSYNC | O_CLOEXEC);
  }
  ~Load() {
    Stop();
    for (int fd : {dfd_, bfd_, sfd_}) {
      if (fd >= 0) close(fd);
    }
  }
  bool opened() const { return dfd_ >= 0 && bfd_ >= 0 && sfd_ >= 0; }
  void Start() {
    for (int t = 0; t < kWriters; ++t) threads_.emplace_back([this, t] { Run(t); });
  }
  // From here on, I/O errors are what the kill causes, not failures.
  void Killing() { killing_.store(true); }
  void Stop() {
    stop_.store(true);
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  uint64_t writes() const { return writes_.load(); }
  uint64_t fsyncs() const { return fsyncs_.load(); }
  // The first failure seen before the kill ("" if none).
  std::string failure() {
    std::lock_guard<std::mutex> l(mu_);
    return failure_;
  }

 private:
  // An I/O error: expected once the daemon is being killed; a failure
  // before. Either way this thread stops.
  void Failed(const std::string& what) {
    if (killing_.load()) return;
    std::lock_guard<std::mutex> l(mu_);
    if (failure_.empty()) failure_ = what;
  }

  void Run(int t) {
    std::mt19937_64 rng(seed_ ^ Mix(static_cast<uint64_t>(t) + 1));
    void* mem = nullptr;
    if (posix_memalign(&mem, 4096, kMaxSectors * kSector) != 0) return Failed("no memory");
    std::unique_ptr<uint8_t, decltype(&free)> buf(static_cast<uint8_t*>(mem), free);
    std::vector<uint8_t> want(kSector);
    while (!stop_.load()) {
      const uint32_t op = rng() % 100;
      if (op >= 88) {  // fsync: what completed before it is durable once it succeeds
        const std::vector<uint64_t> snap = model_->SnapshotCompleted();
        if (fsync(bfd_) != 0) return Failed(std::string("fsync: ") + strerror(errno));
        model_->FsyncSucceeded(snap);
        fsyncs_++;
        continue;
      }
      const bool direct = op < 30;
      // Most requests in this round's hot 2 MiB, the rest anywhere: the
      // regions writes hydrate stay few enough for several rounds to meet
      // a partial clone.
      const uint64_t from = rng() % 5 != 0 ? hot_ : 0;
      const uint64_t span = from != 0 ? kHotSectors : kSectors;
      uint64_t s, n;
      if (direct) {  // 4 KiB aligned, up to 64 KiB, across regions too
        s = from + (rng() % (span / 8)) * 8;
        n = std::min<uint64_t>(8 * (1 + rng() % 16), kSectors - s);
      } else {  // any sectors
        s = from + rng() % span;
        n = std::min<uint64_t>(1 + rng() % kMaxSectors, kSectors - s);
      }
      // Reserved whole 4 KiB pages: after completion, buffered and direct
      // opens go to dest's page cache and disk, where a buffered write next
      // to a concurrent direct one in the same page is the kernel's
      // unordered case, not ours.
      const uint64_t rs = s & ~uint64_t{7};
      const uint64_t rn = std::min<uint64_t>((s + n + 7) & ~uint64_t{7}, kSectors) - rs;
      if (!model_->TryReserve(rs, rn)) continue;
      const bool write = rng() % 10 < 6;
      const bool dsync = write && !direct && rng() % 3 == 0;
      const int fd = direct ? dfd_ : dsync ? sfd_ : bfd_;
      const size_t len = n * kSector;
      const off_t off = static_cast<off_t>(s * kSector);
      std::string error;
      if (write) {
        const uint64_t v = model_->Issue(s, n, /*zero=*/false);
        for (uint64_t i = 0; i < n; ++i) FillSector(buf.get() + i * kSector, s + i, v);
        const ssize_t w = pwrite(fd, buf.get(), len, off);
        if (w == static_cast<ssize_t>(len)) {
          model_->Completed(s, n, v, /*durable=*/dsync);
          writes_++;
        } else {
          error = "write of " + std::to_string(len) + " at " + std::to_string(off) + ": " +
                  (w < 0 ? strerror(errno) : "short");
        }
      } else {
        const ssize_t r = pread(fd, buf.get(), len, off);
        if (r != static_cast<ssize_t>(len)) {
          error = "read of " + std::to_string(len) + " at " + std::to_string(off) + ": " +
                  (r < 0 ? strerror(errno) : "short");
        } else {
          for (uint64_t i = 0; i < n && error.empty(); ++i) {
            model_->Current(s + i, source_->data(), want.data());
            if (std::memcmp(want.data(), buf.get() + i * kSector, kSector) != 0) {
              const int64_t got = ParseSector(buf.get() + i * kSector, s + i);
              error = "read back sector " + std::to_string(s + i) + ": holds " +
                      (got == -1   ? "zeros"
                       : got == -2 ? "garbage"
                                   : "version " + std::to_string(got)) +
                      ", not the last write";
            }
          }
        }
      }
      model_->Release(rs);
      if (!error.empty()) return Failed(error);
    }
  }

  CrashModel* model_;
  const std::vector<uint8_t>* source_;
  const uint64_t seed_;
  const uint64_t hot_;  // first sector of the hot window (4 KiB aligned, never 0)
  int dfd_ = -1, bfd_ = -1, sfd_ = -1;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false}, killing_{false};
  std::atomic<uint64_t> writes_{0}, fsyncs_{0};
  std::mutex mu_;
  std::string failure_;  // GUARDED_BY(mu_)
};

class KillCrashTest : public ::testing::Test {
 protected:
  void SetUp() override { CLONEFS_REQUIRE_MOUNTABLE(); }
  CloneDir c_;
};

TEST_F(KillCrashTest, EveryKillKeepsTheCrashContract) {
  const uint64_t seed = test::TestSeed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (set CLONEFS_TEST_SEED to replay)");
  std::mt19937_64 rng(seed);
  const std::vector<uint8_t> source = test::SelfDescribingSource(kImage, seed);
  {
    FILE* f = fopen(c_.src.c_str(), "w");
    ASSERT_NE(f, nullptr);
    ASSERT_EQ(fwrite(source.data(), 1, source.size(), f), source.size());
    fclose(f);
  }
  const std::string src_sha = Sha256(c_.src);
  std::vector<bool> src_zero(kSectors);
  for (uint64_t s = 0; s < kSectors; ++s) src_zero[s] = ParseSector(&source[s * kSector], s) == -1;
  CrashModel model(kSectors, src_zero);

  // 2 MiB/s: half a minute of mounted time to hydrate, so the first
  // rounds meet a partial clone and the last ones a complete one. Without
  // read hints at first: the check after each kill reads the whole image in
  // order, which would have the copier hydrate ahead of it at full speed.
  RunResult m = c_.Mount("--region-size 64K --rate 2M --no-read-hints");
  ASSERT_EQ(m.code, 0) << m.out;
  const int rounds = Rounds();
  for (int round = 0; round < rounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Load load(c_, &model, &source, Mix(seed + static_cast<uint64_t>(round)));
    ASSERT_TRUE(load.opened()) << strerror(errno);
    load.Start();
    // A status query (which commits) somewhere in the round, then the kill.
    usleep(static_cast<useconds_t>(50'000 + rng() % 400'000));
    const int64_t committed = CommittedRegions(c_);
    usleep(static_cast<useconds_t>(rng() % 800'000));
    const int pid = c_.DaemonPid();
    ASSERT_GT(pid, 0);
    load.Killing();
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    ASSERT_TRUE(WaitGone(pid)) << "the daemon did not exit after SIGKILL";
    // (Writes through passthrough never reach the daemon and may go on.)
    load.Stop();
    ASSERT_EQ(load.failure(), "");
    EXPECT_GT(load.writes(), 0u);
    printf("round %d: %llu writes, %llu fsyncs, %lld regions committed at the status query\n",
           round, static_cast<unsigned long long>(load.writes()),
           static_cast<unsigned long long>(load.fsyncs()), static_cast<long long>(committed));

    // 4: what was committed is still committed (the daemon is gone, so
    // the metadata can be opened offline).
    ASSERT_GE(committed, 0);
    EXPECT_GE(HydratedRegions(c_.metadata), committed);

    // Mounted again over the stale mount point, with the stored settings;
    // read hints from the middle on.
    m = c_.Mount(round + 1 == rounds / 2 ? "--read-hints" : "");
    ASSERT_EQ(m.code, 0) << m.out;
    EXPECT_NE(m.out.find("stale mount"), std::string::npos) << m.out;
    // 1-3 on every sector; what is there now is the next round's baseline.
    const std::string bad = model.VerifyAndRebase(ReadAll(c_.exposed()));
    ASSERT_EQ(bad, "") << "after the kill of round " << round << "\n" << c_.LogText();
  }

  // Hydration completes; the image, then dest alone, equal the baseline.
  const std::vector<uint8_t> baseline = model.Baseline(source.data());
  ASSERT_EQ(c_.Unmount().code, 0);
  m = c_.Mount("--rate 0");
  ASSERT_EQ(m.code, 0) << m.out;
  // (Not --on-complete's flag: a kill just after the completing commit, before
  // the command ran, leaves the clone complete and the command never run.)
  ASSERT_TRUE(WaitHydrationDone(c_, 60)) << c_.LogText();
  EXPECT_TRUE(ReadAll(c_.exposed()) == baseline);
  ASSERT_EQ(c_.Unmount().code, 0);
  std::vector<uint8_t> dest = ReadAll(c_.dst);
  ASSERT_GE(dest.size(), kImage);
  dest.resize(kImage);
  EXPECT_TRUE(dest == baseline) << "dest alone must be the image after hydration";
  EXPECT_EQ(Sha256(c_.src), src_sha);
}

}  // namespace
}  // namespace clonefs::testing
