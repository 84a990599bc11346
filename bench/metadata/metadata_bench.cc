// metadata_bench: figures for docs/metadata-format.md, measured in one run.
//
//   metadata_bench [DIR]     DIR: where to create scratch stores (default
//                            $TMPDIR or /tmp); use the filesystem the
//                            metadata will live on, since commits fsync.
//
// Prints: open time (fresh, empty, half hydrated; the table check alone) for
// a 1 TiB image of 4 KiB regions (2^28 regions); SetRegionHydrated cost and
// allocations; commit cost for 1, 1000 and 1e6 changed regions on a small and
// a large image; RSS per region. Timings are medians of repeated runs where repetition is cheap.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "metadata/metadata.h"
#include "metadata/table_check.h"

using namespace clonefs::metadata;
using Clock = std::chrono::steady_clock;

// Counts heap allocations made by the calling thread (RocksDB's background
// threads allocate on their own), to show that marks never allocate.
static thread_local uint64_t g_allocs = 0;
void* operator new(size_t n) {
  ++g_allocs;
  if (void* p = malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { free(p); }
void operator delete(void* p, size_t) noexcept { free(p); }

namespace {

double Secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

uint64_t RssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

std::string g_root;
int g_seq = 0;

MetadataOptions Opts(uint64_t nr_regions, const std::string& dir) {
  MetadataOptions o;
  o.dir = dir;
  o.region_size = 4096;
  o.image_size = nr_regions * 4096;
  return o;
}

std::string NewDir() {
  std::string d = g_root + "/md-bench-" + std::to_string(getpid()) + "-" + std::to_string(g_seq++);
  std::filesystem::remove_all(d);
  return d;
}

std::unique_ptr<Metadata> Open(const MetadataOptions& o, double* secs = nullptr) {
  const auto t0 = Clock::now();
  auto r = Metadata::Open(o);
  const auto t1 = Clock::now();
  if (!r.ok()) {
    fprintf(stderr, "open failed: %s\n", r.status().ToString().c_str());
    exit(1);
  }
  if (secs) *secs = Secs(t0, t1);
  return std::move(r).value();
}

void Check(const clonefs::Status& s) {
  if (!s.ok()) {
    fprintf(stderr, "failed: %s\n", s.ToString().c_str());
    exit(1);
  }
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

uint64_t DirBytes(const std::string& d) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(d)) {
    if (e.is_regular_file()) n += e.file_size();
  }
  return n;
}

// The table check every Open runs on each table RocksDB opens
// (metadata/table_check_fs.h), alone: seconds for all tables of `d` (median
// of 5), and how many tables and bytes they hold.
double TableCheckSecs(const std::string& d, int* tables, uint64_t* bytes) {
  std::vector<double> runs;
  for (int run = 0; run < 5; ++run) {
    *tables = 0;
    *bytes = 0;
    const auto t0 = Clock::now();
    for (const auto& e : std::filesystem::directory_iterator(d)) {
      if (e.path().extension() != ".sst") continue;
      const int fd = open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
      const uint64_t size = e.file_size();
      auto read = [fd](uint64_t off, size_t n, std::string* out) {
        out->resize(n);
        const ssize_t got = pread(fd, out->data(), n, static_cast<off_t>(off));
        return got == static_cast<ssize_t>(n) ? clonefs::Status::OK()
                                              : clonefs::Status::IoError("short read");
      };
      Check(CheckTable(read, size, e.path().filename().string()).status());
      close(fd);
      ++*tables;
      *bytes += size;
    }
    runs.push_back(Secs(t0, Clock::now()));
  }
  return Median(runs);
}

constexpr uint64_t kTiB = 1ull << 40;
constexpr uint64_t kBig = kTiB / 4096;  // 2^28 regions

void OpenTimes() {
  printf("== open, 1 TiB image, 4 KiB regions (%llu regions)\n", (unsigned long long)kBig);
  const uint64_t rss0 = RssBytes();
  double t = 0;
  const std::string d = NewDir();
  auto md = Open(Opts(kBig, d), &t);
  printf("  fresh (format)                 %8.3f s   RSS +%.1f MiB\n", t,
         (RssBytes() - rss0) / 1048576.0);
  md.reset();
  md = Open(Opts(kBig, d), &t);
  printf("  reopen, nothing hydrated       %8.3f s\n", t);
  // First half hydrated, contiguous (background copier order).
  Check(md->CondSetRange(0, kBig / 2));
  Check(md->Commit());
  md.reset();
  const uint64_t rss1 = RssBytes();
  md = Open(Opts(kBig, d), &t);
  printf("  reopen, first half hydrated    %8.3f s   RSS +%.1f MiB   store %.1f MiB\n", t,
         (RssBytes() - rss1) / 1048576.0, DirBytes(d) / 1048576.0);
  md.reset();
  std::filesystem::remove_all(d);

  // Every other region at random (worst case: raw 4 KiB chunks everywhere).
  const std::string d2 = NewDir();
  md = Open(Opts(kBig, d2));
  std::mt19937_64 rng(7);
  for (uint64_t r = 0; r < kBig; r += 64) {
    const uint64_t bits = rng();
    for (int b = 0; b < 64; ++b) {
      if ((bits >> b) & 1) Check(md->SetRegionHydrated(r + b));
    }
  }
  const auto c0 = Clock::now();
  Check(md->Commit());
  const auto c1 = Clock::now();
  printf("  (commit of %llu random regions: %.3f s)\n",
         (unsigned long long)md->NrHydratedRegions(), Secs(c0, c1));
  md.reset();
  const uint64_t rss2 = RssBytes();
  md = Open(Opts(kBig, d2), &t);
  printf("  reopen, random half hydrated   %8.3f s   RSS +%.1f MiB   store %.1f MiB\n", t,
         (RssBytes() - rss2) / 1048576.0, DirBytes(d2) / 1048576.0);
  md.reset();
  int tables = 0;
  uint64_t table_bytes = 0;
  const double check = TableCheckSecs(d2, &tables, &table_bytes);
  printf("  (the table check alone: %.2f ms for %d tables, %.1f MiB)\n", check * 1000, tables,
         table_bytes / 1048576.0);
  std::filesystem::remove_all(d2);
}

void MarkCost() {
  printf("== SetRegionHydrated (2^28 regions)\n");
  const std::string d = NewDir();
  auto md = Open(Opts(kBig, d));
  const uint64_t n = 20'000'000;
  uint64_t allocs = g_allocs;
  auto t0 = Clock::now();
  for (uint64_t r = 0; r < n; ++r) (void)md->SetRegionHydrated(r);
  auto t1 = Clock::now();
  printf("  sequential, new regions        %8.1f ns/op\n", Secs(t0, t1) * 1e9 / n);
  std::vector<uint64_t> order(n);
  std::mt19937_64 rng(1);
  for (auto& x : order) x = n + rng() % (kBig - n);
  t0 = Clock::now();
  for (uint64_t r : order) (void)md->SetRegionHydrated(r);
  t1 = Clock::now();
  printf("  random, new regions            %8.1f ns/op\n", Secs(t0, t1) * 1e9 / n);
  t0 = Clock::now();
  for (uint64_t r = 0; r < n; ++r) (void)md->SetRegionHydrated(r);
  t1 = Clock::now();
  printf("  already hydrated               %8.1f ns/op\n", Secs(t0, t1) * 1e9 / n);
  const uint64_t mark_allocs = g_allocs - allocs - 1;  // minus `order`
  // Two threads: far apart (typical), then interleaved (every word shared).
  for (const bool interleaved : {false, true}) {
    const uint64_t base = kBig / 2 + (interleaved ? n : 0);
    t0 = Clock::now();
    std::vector<std::thread> th;
    for (int k = 0; k < 2; ++k) {
      th.emplace_back([&, k] {
        for (uint64_t i = 0; i < n / 2; ++i) {
          (void)md->SetRegionHydrated(base + (interleaved ? 2 * i + k : k * (kBig / 4) + i));
        }
      });
    }
    for (auto& x : th) x.join();
    t1 = Clock::now();
    printf("  2 threads, %s       %8.1f ns/op per thread\n",
           interleaved ? "interleaved regions" : "disjoint ranges    ", Secs(t0, t1) * 1e9 / (n / 2));
  }
  printf("  heap allocations during %llu single-thread marks: %llu\n",
         (unsigned long long)(3 * n), (unsigned long long)mark_allocs);
  md.reset();
  std::filesystem::remove_all(d);
}

void CommitCost() {
  printf("== commit cost (Freeze + PersistFrozen, synced) vs changed regions\n");
  printf("  %-12s %-10s %10s %14s\n", "image", "changed", "median ms", "store growth");
  for (uint64_t nr : std::initializer_list<uint64_t>{1ull << 22, kBig}) {
    const std::string d = NewDir();
    auto md = Open(Opts(nr, d));
    std::mt19937_64 rng(3);
    for (uint64_t changed : std::initializer_list<uint64_t>{1, 1000, 1000000}) {
      int reps = changed == 1000000 ? 3 : 15;
      // Never mark more than the image still has room for.
      reps = static_cast<int>(std::min<uint64_t>(reps, (nr - md->NrHydratedRegions()) / (2 * changed)));
      std::vector<double> ms;
      uint64_t wal = 0;
      for (int rep = 0; rep < reps; ++rep) {
        uint64_t done = 0;
        while (done < changed) {
          const uint64_t r = rng() % nr;
          if (!md->IsRegionHydrated(r)) {
            Check(md->SetRegionHydrated(r));
            ++done;
          }
        }
        const uint64_t before = DirBytes(d);
        const auto t0 = Clock::now();
        Check(md->Commit());
        const auto t1 = Clock::now();
        wal = DirBytes(d) - std::min(before, DirBytes(d));
        ms.push_back(Secs(t0, t1) * 1e3);
      }
      if (ms.empty()) continue;
      printf("  2^%-10d %-10llu %10.2f %14llu\n", std::countr_zero(nr),
             (unsigned long long)changed, Median(ms), (unsigned long long)wal);
    }
    const auto t0 = Clock::now();
    Check(md->Commit());  // nothing changed
    const auto t1 = Clock::now();
    printf("  2^%-10d %-10s %10.4f\n", std::countr_zero(nr), "0", Secs(t0, t1) * 1e3);
    md.reset();
    std::filesystem::remove_all(d);
  }
}

void Memory() {
  printf("== memory (RSS) per region, 2^28 regions\n");
  const std::string d = NewDir();
  const uint64_t rss0 = RssBytes();
  auto md = Open(Opts(kBig, d));
  const uint64_t rss1 = RssBytes();
  Check(md->CondSetRange(0, kBig));  // touches hydrated + one dirty bitmap
  const uint64_t rss2 = RssBytes();
  Check(md->Commit());
  const uint64_t rss3 = RssBytes();
  auto per = [](uint64_t a, uint64_t b) { return (b > a ? b - a : 0) * 8.0 / kBig; };
  printf("  after open (fresh)             %6.3f bits/region (%.1f MiB)\n", per(rss0, rss1),
         (rss1 - rss0) / 1048576.0);
  printf("  after marking every region     %6.3f bits/region (%.1f MiB)\n", per(rss0, rss2),
         (rss2 - rss0) / 1048576.0);
  printf("  after committing them          %6.3f bits/region (%.1f MiB)\n", per(rss0, rss3),
         (rss3 - rss0) / 1048576.0);
  md.reset();
  std::filesystem::remove_all(d);
}

}  // namespace

int main(int argc, char** argv) {
  const char* tmp = getenv("TMPDIR");
  g_root = argc > 1 ? argv[1] : (tmp ? tmp : "/tmp");
  printf("metadata_bench: stores under %s\n", g_root.c_str());
  Memory();  // first: a clean heap makes the RSS deltas meaningful
  OpenTimes();
  MarkCost();
  CommitCost();
  return 0;
}
