// engine_bench: measurements behind the engine's defaults (docs/design.md).
//
//   engine_bench overhead [--image-mib N]
//       Routed reads and writes through the Engine on in-memory devices,
//       against memcpy and the in-memory device alone (engine overhead).
//   engine_bench hydrate [--dir D] [--size-gib G] [--runs R] [--sweep]
//                        [--region K] [--threshold T] [--batch B] [--threads N]
//                        [--writers W] [--inflight-mib M] [--configs LIST] [--no-cp]
//       Full hydration of a file-backed image against `cp --sparse=always`
//       (+ `sync -d`) of the same file, alternating, page cache dropped
//       before every run. --sweep tries several knob settings.
//   engine_bench sparse [--dir D] [--size-gib 64] [--data-gib 1]
//       Hydration of a sparse source: time and dest space follow the data.
//   engine_bench regions [--dir D] [--size-gib G] [--direct]
//       Region size: cost of a small write that triggers a hydration, per
//       region size, and bitmap memory.
//   engine_bench latency [--dir D] [--seconds S] [--buffered]
//       User read latency on hydrated regions with the copier off and on
//       (foreground first).
//
// Run as root for --drop-caches (the default when root). Files go to --dir
// (default /var/tmp/clonefs-bench), never /tmp.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "devices/mem_device.h"
#include "devices/posix_device.h"
#include "engine/engine.h"
#include "metadata/metadata.h"

namespace clonefs {
namespace {

namespace fs = std::filesystem;
using Clk = std::chrono::steady_clock;

double Seconds(Clk::time_point a, Clk::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Args {
  std::map<std::string, std::string> kv;
  std::string Get(const std::string& k, const std::string& d) const {
    auto it = kv.find(k);
    return it == kv.end() ? d : it->second;
  }
  uint64_t U(const std::string& k, uint64_t d) const { return std::stoull(Get(k, std::to_string(d))); }
  bool Has(const std::string& k) const { return kv.count(k) != 0; }
};

void Die(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

void DropCaches(bool enabled) {
  ::sync();
  if (!enabled) return;
  FILE* f = std::fopen("/proc/sys/vm/drop_caches", "w");
  if (!f) return;
  std::fputs("3\n", f);
  std::fclose(f);
}

// ---------------------------------------------------------------- overhead

// Runs op(i) for about `secs` seconds; returns ns per op.
template <typename F>
double NsPerOp(F op, double secs = 0.5) {
  uint64_t n = 0;
  auto t0 = Clk::now();
  auto deadline = t0 + std::chrono::duration<double>(secs);
  while (true) {
    for (int k = 0; k < 64; ++k) op(n++);
    if (Clk::now() >= deadline) break;
  }
  return Seconds(t0, Clk::now()) * 1e9 / static_cast<double>(n);
}

// Forwards to a shared device, so the benchmark can time the very devices the
// engine uses (same memory layout) without the engine.
class SharedDevice final : public Device {
 public:
  explicit SharedDevice(std::shared_ptr<Device> d) : d_(std::move(d)) {}
  uint64_t Size() const override { return d_->Size(); }
  bool ReadOnly() const override { return d_->ReadOnly(); }
  const std::string& Name() const override { return d_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override { return d_->Read(off, buf, len); }
  Status Write(uint64_t off, const void* buf, size_t len) override { return d_->Write(off, buf, len); }
  Status Flush() override { return d_->Flush(); }
  Status Zero(uint64_t off, uint64_t len, ZeroMode m) override { return d_->Zero(off, len, m); }
  Result<uint64_t> NextData(uint64_t off) override { return d_->NextData(off); }
  Result<uint64_t> NextHole(uint64_t off) override { return d_->NextHole(off); }

 private:
  std::shared_ptr<Device> d_;
};

std::unique_ptr<Engine> MemEngine(const std::string& dir, std::shared_ptr<Device> src,
                                  std::shared_ptr<Device> dst) {
  metadata::MetadataOptions mo;
  mo.dir = dir;
  mo.image_size = src->Size();
  auto md = metadata::Metadata::Open(mo);
  Die(md.status(), "metadata");
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.commit_interval_ms = 0;
  auto e = Engine::Open(std::make_unique<SharedDevice>(src), std::make_unique<SharedDevice>(dst),
                        std::move(*md), o);
  Die(e.status(), "engine");
  Die((*e)->Start(), "start");
  return std::move(*e);
}

int Overhead(const Args& a) {
  const uint64_t image = a.U("image-mib", 256) << 20;
  const std::string dir = a.Get("dir", "/var/tmp/clonefs-bench-engine") + "/overhead";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::vector<uint8_t> content(image);
  std::mt19937_64 rng(1);
  for (uint64_t i = 0; i < image; i += 8) {
    uint64_t x = rng();
    std::memcpy(&content[i], &x, 8);
  }
  std::vector<uint8_t> buf(1 << 20), big(image);
  const uint64_t blocks4k = image / 4096, blocks1m = image / (1 << 20);
  auto rnd4k = [&](uint64_t i) { return ((i * 2654435761u) % blocks4k) * 4096; };
  auto seq1m = [&](uint64_t i) { return (i % blocks1m) << 20; };

  std::printf("# engine overhead: in-memory devices, image %llu MiB, one thread; each engine\n"
              "# figure is paired with the same call on the same device without the engine\n",
              static_cast<unsigned long long>(image >> 20));
  std::printf("%-40s %10s %10s %10s %9s\n", "operation", "memcpy ns", "device ns", "engine ns",
              "added ns");
  auto row = [](const char* name, double m, double d, double e) {
    std::printf("%-40s %10.0f %10.0f %10.0f %9.0f\n", name, m, d, e, e - d);
  };
  double m4 = NsPerOp([&](uint64_t i) { std::memcpy(buf.data(), &content[rnd4k(i)], 4096); });
  double m1 = NsPerOp([&](uint64_t i) { std::memcpy(big.data() + seq1m(i), buf.data(), 1 << 20); });

  std::shared_ptr<Device> src = NewMemDeviceFrom(content, true);
  std::shared_ptr<Device> dst = NewMemDevice(image);
  auto e = MemEngine(dir + "/a", src, dst);
  auto pair = [&](const char* name, double m, auto dev_op, auto eng_op) {
    double d = 1e300, en = 1e300;
    for (int k = 0; k < 5; ++k) {  // alternate; keep the best of each (noisy shared machines)
      d = std::min(d, NsPerOp(dev_op, 0.2));
      en = std::min(en, NsPerOp(eng_op, 0.2));
    }
    row(name, m, d, en);
  };
  pair("read 4 KiB random, unhydrated (source)", m4,
       [&](uint64_t i) { (void)src->Read(rnd4k(i), buf.data(), 4096); },
       [&](uint64_t i) { (void)e->Read(rnd4k(i), buf.data(), 4096); });
  pair("read 1 MiB sequential, unhydrated", m1,
       [&](uint64_t i) { (void)src->Read(seq1m(i), buf.data(), 1 << 20); },
       [&](uint64_t i) { (void)e->Read(seq1m(i), buf.data(), 1 << 20); });
  for (uint64_t off = 0; off < image; off += 1 << 20) {
    Die(e->Write(off, &content[off], 1 << 20, false), "write");  // hydrates every region
  }
  pair("read 4 KiB random, hydrated (dest)", m4,
       [&](uint64_t i) { (void)dst->Read(rnd4k(i), buf.data(), 4096); },
       [&](uint64_t i) { (void)e->Read(rnd4k(i), buf.data(), 4096); });
  pair("read 1 MiB sequential, hydrated", m1,
       [&](uint64_t i) { (void)dst->Read(seq1m(i), buf.data(), 1 << 20); },
       [&](uint64_t i) { (void)e->Read(seq1m(i), buf.data(), 1 << 20); });
  pair("write 4 KiB random, hydrated", m4,
       [&](uint64_t i) { (void)dst->Write(rnd4k(i), buf.data(), 4096); },
       [&](uint64_t i) { (void)e->Write(rnd4k(i), buf.data(), 4096, false); });
  pair("write 1 MiB sequential, hydrated", m1,
       [&](uint64_t i) { (void)dst->Write(seq1m(i), buf.data(), 1 << 20); },
       [&](uint64_t i) { (void)e->Write(seq1m(i), buf.data(), 1 << 20, false); });
  e.reset();

  // 4 KiB writes into unhydrated 64 KiB regions: each copies its region first.
  std::shared_ptr<Device> dst2 = NewMemDevice(image);
  auto e2 = MemEngine(dir + "/b", src, dst2);
  const uint64_t regions = image >> 16;
  auto t0 = Clk::now();
  for (uint64_t n = 0; n < regions; ++n) {
    Die(e2->Write(((n * 2654435761u) % regions) << 16 | 4096, buf.data(), 4096, false), "w");
  }
  double trig = Seconds(t0, Clk::now()) * 1e9 / static_cast<double>(regions);
  e2.reset();
  std::printf("%-40s %10s %10s %10.0f   (a 64 KiB copy + merged write)\n",
              "write 4 KiB into an unhydrated region", "", "", trig);
  fs::remove_all(dir);
  return 0;
}

// ---------------------------------------------------------------- hydrate

void MakeDataFile(const std::string& path, uint64_t size) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == size &&
      static_cast<uint64_t>(st.st_blocks) * 512 >= size) {
    return;  // reuse
  }
  std::printf("creating %s (%llu MiB of random data)...\n", path.c_str(),
              static_cast<unsigned long long>(size >> 20));
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(path.c_str());
    std::exit(1);
  }
  std::vector<uint64_t> chunk((8 << 20) / 8);
  uint64_t x = 88172645463325252ull;
  for (uint64_t off = 0; off < size; off += 8 << 20) {
    for (auto& w : chunk) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(8 << 20, size - off));
    if (::pwrite(fd, chunk.data(), n, static_cast<off_t>(off)) != static_cast<ssize_t>(n)) {
      std::perror("pwrite");
      std::exit(1);
    }
  }
  ::fsync(fd);
  ::close(fd);
}

struct Knobs {
  uint64_t region = 64 << 10;
  uint32_t threshold = HydrationKnobs{}.hydration_threshold;
  uint32_t batch = HydrationKnobs{}.hydration_batch_size;
  uint32_t threads = EngineOptions{}.copier_threads;
  uint32_t writers = EngineOptions{}.copier_writer_threads;
  uint64_t inflight = EngineOptions{}.copier_inflight_bytes;
  bool direct = false;
  std::string Name() const {
    char b[160];
    std::snprintf(b, sizeof b, "region %lluK thr %u batch %u readers %u writers %u %lluM%s",
                  static_cast<unsigned long long>(region >> 10), threshold, batch, threads,
                  writers, static_cast<unsigned long long>(inflight >> 20),
                  direct ? " O_DIRECT" : "");
    return b;
  }
};

double RunCp(const std::string& src, const std::string& dst, bool drop) {
  fs::remove(dst);
  DropCaches(drop);
  auto t0 = Clk::now();
  std::string cmd = "cp --sparse=always '" + src + "' '" + dst + "' && sync -d '" + dst + "'";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "cp failed\n");
    std::exit(1);
  }
  return Seconds(t0, Clk::now());
}

uint64_t Blocks(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
}

// Hydrates src into dst with the engine; returns seconds until
// hydration_done (every region copied and committed, dest flushed).
double RunEngine(const std::string& src, const std::string& dst, const std::string& mddir,
                 const Knobs& k, bool drop) {
  fs::remove(dst);
  fs::remove_all(mddir);
  DropCaches(drop);
  auto t0 = Clk::now();
  PosixDeviceOptions so;
  so.read_only = true;
  so.direct = k.direct;
  auto source = OpenPosixDevice(src, so);
  Die(source.status(), "open source");
  PosixDeviceOptions dopt;
  dopt.create = true;
  dopt.direct = k.direct;
  dopt.min_size = (*source)->Size();
  auto dest = OpenPosixDevice(dst, dopt);
  Die(dest.status(), "open dest");
  metadata::MetadataOptions mo;
  mo.dir = mddir;
  mo.image_size = (*source)->Size();
  mo.region_size = k.region;
  auto md = metadata::Metadata::Open(mo);
  Die(md.status(), "metadata");
  EngineOptions o;
  o.knobs.hydration_threshold = k.threshold;
  o.knobs.hydration_batch_size = k.batch;
  o.copier_threads = k.threads;
  o.copier_writer_threads = k.writers;
  o.copier_inflight_bytes = k.inflight;
  auto e = Engine::Open(std::move(*source), std::move(*dest), std::move(*md), o);
  Die(e.status(), "engine");
  Die((*e)->Start(), "start");
  while (!(*e)->Stats().hydration_done) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  double t = Seconds(t0, Clk::now());
  EngineStats st = (*e)->Stats();
  if (st.copy_failures) std::printf("  (%llu copy failures)\n", static_cast<unsigned long long>(st.copy_failures));
  Die((*e)->Shutdown(), "shutdown");
  return t;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

Knobs KnobsFrom(const Args& a) {
  Knobs k;
  k.region = a.U("region", 64) << 10;
  k.threshold = static_cast<uint32_t>(a.U("threshold", k.threshold));
  k.batch = static_cast<uint32_t>(a.U("batch", k.batch));
  k.threads = static_cast<uint32_t>(a.U("threads", k.threads));
  k.writers = static_cast<uint32_t>(a.U("writers", k.writers));
  k.inflight = a.U("inflight-mib", k.inflight >> 20) << 20;
  k.direct = a.Has("direct");
  return k;
}

int Hydrate(const Args& a) {
  const std::string dir = a.Get("dir", "/var/tmp/clonefs-bench-engine");
  const uint64_t size = a.U("size-gib", 4) << 30;
  const int runs = static_cast<int>(a.U("runs", 3));
  const bool drop = geteuid() == 0 && !a.Has("no-drop-caches");
  fs::create_directories(dir);
  const std::string src = dir + "/source.img", dst = dir + "/dest.img", md = dir + "/dest.md";
  MakeDataFile(src, size);
  std::vector<Knobs> configs;
  if (a.Has("configs")) {  // region_KiB:threshold:batch:readers[:writers[:inflight_MiB]][,...]
    std::string list = a.Get("configs", "");
    size_t pos = 0;
    while (pos < list.size()) {
      size_t end = list.find(',', pos);
      if (end == std::string::npos) end = list.size();
      Knobs k;
      unsigned long long r, inflight_mib = k.inflight >> 20;
      if (std::sscanf(list.substr(pos, end - pos).c_str(), "%llu:%u:%u:%u:%u:%llu", &r,
                      &k.threshold, &k.batch, &k.threads, &k.writers, &inflight_mib) < 4) {
        std::fprintf(stderr, "bad --configs entry\n");
        return 2;
      }
      k.region = r << 10;
      k.inflight = inflight_mib << 20;
      k.direct = a.Has("direct");
      configs.push_back(k);
      pos = end + 1;
    }
  } else if (a.Has("sweep")) {
    auto add = [&](uint64_t region, uint32_t t, uint32_t b, uint32_t th) {
      Knobs k;
      k.region = region;
      k.threshold = t;
      k.batch = b;
      k.threads = th;
      configs.push_back(k);
    };
    add(64 << 10, 1, 1, 1);  // dm-clone's defaults
    add(64 << 10, 16, 16, 1);
    add(64 << 10, 64, 16, 2);
    add(64 << 10, 64, 16, 4);
    add(64 << 10, 64, 64, 1);
    add(64 << 10, 128, 64, 2);
    add(64 << 10, 32, 4, 4);
    add(4 << 10, 512, 256, 2);
    add(1 << 20, 8, 1, 2);
  } else {
    configs.push_back(KnobsFrom(a));
  }
  std::printf("# full hydration of %llu MiB (%s), page cache %s before each run, %d runs\n",
              static_cast<unsigned long long>(size >> 20), src.c_str(),
              drop ? "dropped" : "NOT dropped", runs);
  std::vector<double> cp;
  std::map<size_t, std::vector<double>> eng;
  const bool with_cp = !a.Has("no-cp");
  for (int r = 0; r < runs; ++r) {
    if (with_cp) {
      cp.push_back(RunCp(src, dst, drop));
      std::printf("  run %d: cp --sparse=always + sync -d: %.2f s\n", r, cp.back());
    }
    for (size_t i = 0; i < configs.size(); ++i) {
      eng[i].push_back(RunEngine(src, dst, md, configs[i], drop));
      std::printf("  run %d: engine %-40s %.2f s\n", r, configs[i].Name().c_str(), eng[i].back());
    }
  }
  const double cpm = with_cp ? Median(cp) : 0;
  std::printf("\n%-48s %10s %10s %8s\n", "copier", "median s", "MiB/s", "vs cp");
  if (with_cp) {
    std::printf("%-48s %10.2f %10.0f %8.2f\n", "cp --sparse=always + sync -d", cpm,
                size / 1048576.0 / cpm, 1.0);
  }
  for (size_t i = 0; i < configs.size(); ++i) {
    double m = Median(eng[i]);
    std::printf("%-48s %10.2f %10.0f %8.2f\n", ("engine " + configs[i].Name()).c_str(), m,
                size / 1048576.0 / m, with_cp ? m / cpm : 0.0);
  }
  fs::remove(dst);
  fs::remove_all(md);
  return 0;
}

// ---------------------------------------------------------------- sparse

int Sparse(const Args& a) {
  const std::string dir = a.Get("dir", "/var/tmp/clonefs-bench-engine");
  const uint64_t size = a.U("size-gib", 64) << 30, data = a.U("data-gib", 1) << 30;
  const bool drop = geteuid() == 0 && !a.Has("no-drop-caches");
  fs::create_directories(dir);
  const std::string src = dir + "/sparse-source.img", dst = dir + "/sparse-dest.img",
                    md = dir + "/sparse-dest.md";
  if (Blocks(src) < data || fs::file_size(src) != size) {
    std::printf("creating %s: %llu GiB sparse, %llu MiB of data in 1 MiB extents...\n", src.c_str(),
                static_cast<unsigned long long>(size >> 30), static_cast<unsigned long long>(data >> 20));
    int fd = ::open(src.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
      std::perror(src.c_str());
      return 1;
    }
    std::vector<uint8_t> chunk(1 << 20);
    std::mt19937_64 rng(7);
    for (auto& c : chunk) c = static_cast<uint8_t>(rng() | 1);
    const uint64_t slots = size >> 20, extents = data >> 20;
    std::vector<uint64_t> pick(slots);
    for (uint64_t i = 0; i < slots; ++i) pick[i] = i;
    std::shuffle(pick.begin(), pick.end(), rng);
    for (uint64_t i = 0; i < extents; ++i) {
      if (::pwrite(fd, chunk.data(), chunk.size(), static_cast<off_t>(pick[i] << 20)) != 1 << 20) {
        std::perror("pwrite");
        return 1;
      }
    }
    ::fsync(fd);
    ::close(fd);
  }
  std::printf("# sparse source: %llu GiB apparent, %llu MiB allocated\n",
              static_cast<unsigned long long>(size >> 30), static_cast<unsigned long long>(Blocks(src) >> 20));
  double tc = RunCp(src, dst, drop);
  uint64_t bc = Blocks(dst);
  Knobs k = KnobsFrom(a);
  double te = RunEngine(src, dst, md, k, drop);
  uint64_t be = Blocks(dst);
  std::printf("%-40s %10s %14s\n", "copier", "seconds", "dest MiB used");
  std::printf("%-40s %10.2f %14llu\n", "cp --sparse=always + sync -d", tc, static_cast<unsigned long long>(bc >> 20));
  std::printf("%-40s %10.2f %14llu\n", ("engine " + k.Name()).c_str(), te, static_cast<unsigned long long>(be >> 20));
  fs::remove(dst);
  fs::remove_all(md);
  return 0;
}

// ---------------------------------------------------------------- regions

int Regions(const Args& a) {
  const std::string dir = a.Get("dir", "/var/tmp/clonefs-bench-engine");
  const uint64_t size = a.U("size-gib", 4) << 30;
  const bool drop = geteuid() == 0 && !a.Has("no-drop-caches");
  fs::create_directories(dir);
  const std::string src = dir + "/source.img", dst = dir + "/regions-dest.img",
                    md = dir + "/regions-dest.md";
  MakeDataFile(src, size);
  std::printf("# region size: 4 KiB writes into 1000 distinct unhydrated regions (each one "
              "copies its region first; page cache dropped, file-backed %llu MiB image), and "
              "bitmap memory (3 bits per region) for a 1 TiB image\n",
              static_cast<unsigned long long>(size >> 20));
  std::printf("%-10s %16s %16s %18s\n", "region", "write us (p50)", "write us (p99)", "bitmap MiB/TiB");
  for (uint64_t region : {4ull << 10, 16ull << 10, 64ull << 10, 256ull << 10, 1ull << 20, 4ull << 20}) {
    fs::remove(dst);
    fs::remove_all(md);
    PosixDeviceOptions so;
    so.read_only = true;
    so.direct = a.Has("direct");
    auto source = OpenPosixDevice(src, so);
    Die(source.status(), "source");
    PosixDeviceOptions dopt;
    dopt.create = true;
    dopt.direct = so.direct;
    dopt.min_size = size;
    auto dest = OpenPosixDevice(dst, dopt);
    Die(dest.status(), "dest");
    metadata::MetadataOptions mo;
    mo.dir = md;
    mo.image_size = size;
    mo.region_size = region;
    auto m = metadata::Metadata::Open(mo);
    Die(m.status(), "md");
    EngineOptions o;
    o.knobs.hydration_enabled = false;
    auto e = Engine::Open(std::move(*source), std::move(*dest), std::move(*m), o);
    Die(e.status(), "engine");
    Die((*e)->Start(), "start");
    DropCaches(drop);
    std::vector<double> lat;
    std::vector<uint8_t> buf(4096, 0x5a);
    std::mt19937_64 rng(3);
    // Distinct regions, so that every write finds its region unhydrated.
    const uint64_t regions = size / region;
    std::vector<uint64_t> order(regions);
    for (uint64_t r = 0; r < regions; ++r) order[r] = r;
    std::shuffle(order.begin(), order.end(), rng);
    order.resize(std::min<uint64_t>(regions, 1000));
    for (uint64_t r : order) {
      auto t0 = Clk::now();
      Die((*e)->Write(r * region + (rng() % (region / 4096)) * 4096, buf.data(), 4096, false), "write");
      lat.push_back(Seconds(t0, Clk::now()) * 1e6);
    }
    std::sort(lat.begin(), lat.end());
    double bitmap = (1ull << 40) / static_cast<double>(region) * 3 / 8 / 1048576.0;
    std::printf("%-10s %16.0f %16.0f %18.1f\n", (std::to_string(region >> 10) + "K").c_str(),
                lat[lat.size() / 2], lat[lat.size() * 99 / 100], bitmap);
    Die((*e)->Shutdown(), "shutdown");
  }
  fs::remove(dst);
  fs::remove_all(md);
  return 0;
}

// ---------------------------------------------------------------- latency

int Latency(const Args& a) {
  const std::string dir = a.Get("dir", "/var/tmp/clonefs-bench-engine");
  const uint64_t size = a.U("size-gib", 4) << 30;
  const double secs = static_cast<double>(a.U("seconds", 3));
  fs::create_directories(dir);
  const std::string src = dir + "/source.img", dst = dir + "/latency-dest.img",
                    md = dir + "/latency-dest.md";
  MakeDataFile(src, size);
  fs::remove(dst);
  fs::remove_all(md);
  PosixDeviceOptions so;
  so.read_only = true;
  so.direct = !a.Has("buffered");
  auto source = OpenPosixDevice(src, so);
  Die(source.status(), "source");
  PosixDeviceOptions dopt;
  dopt.create = true;
  dopt.direct = so.direct;
  dopt.min_size = size;
  auto dest = OpenPosixDevice(dst, dopt);
  Die(dest.status(), "dest");
  metadata::MetadataOptions mo;
  mo.dir = md;
  mo.image_size = size;
  auto m = metadata::Metadata::Open(mo);
  Die(m.status(), "md");
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  auto e = Engine::Open(std::move(*source), std::move(*dest), std::move(*m), o);
  Die(e.status(), "engine");
  Engine* eng = e->get();
  Die(eng->Start(), "start");
  // The user's working set: the first 256 MiB, hydrated by whole writes.
  const uint64_t hot = 256ull << 20;
  std::vector<uint8_t> buf(1 << 20, 0x11);
  for (uint64_t off = 0; off < hot; off += buf.size()) Die(eng->Write(off, buf.data(), buf.size(), false), "w");
  Die(eng->Fsync(), "fsync");
  std::printf("# user latency: QD1 4 KiB random reads of hydrated regions (%s), %.0f s each\n",
              so.direct ? "O_DIRECT" : "buffered", secs);
  std::printf("%-34s %9s %9s %9s %12s\n", "copier", "p50 us", "p99 us", "IOPS", "copied MiB/s");
  auto measure = [&](const char* name) {
    std::vector<double> lat;
    std::mt19937_64 rng(5);
    uint64_t c0 = eng->Stats().bytes_copied;
    auto t0 = Clk::now();
    while (Seconds(t0, Clk::now()) < secs) {
      auto t = Clk::now();
      Die(eng->Read((rng() % (hot / 4096)) * 4096, buf.data(), 4096), "read");
      lat.push_back(Seconds(t, Clk::now()) * 1e6);
    }
    double el = Seconds(t0, Clk::now());
    uint64_t c1 = eng->Stats().bytes_copied;
    std::sort(lat.begin(), lat.end());
    std::printf("%-34s %9.0f %9.0f %9.0f %12.1f\n", name, lat[lat.size() / 2],
                lat[lat.size() * 99 / 100], lat.size() / el, (c1 - c0) / 1048576.0 / el);
  };
  measure("off");
  eng->EnableHydration(true);
  measure("on, foreground first (default)");
  eng->SetHydrationThreshold(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  measure("off again");
  Die(eng->Shutdown(), "shutdown");
  e->reset();
  fs::remove(dst);
  fs::remove_all(md);
  return 0;
}

}  // namespace
}  // namespace clonefs

int main(int argc, char** argv) {
  using namespace clonefs;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s overhead|hydrate|sparse|regions|latency [--key value|--flag]...\n", argv[0]);
    return 2;
  }
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) continue;
    k = k.substr(2);
    if (i + 1 < argc && std::string(argv[i + 1]).rfind("--", 0) != 0) {
      a.kv[k] = argv[++i];
    } else {
      a.kv[k] = "1";
    }
  }
  std::string cmd = argv[1];
  if (cmd == "overhead") return Overhead(a);
  if (cmd == "hydrate") return Hydrate(a);
  if (cmd == "sparse") return Sparse(a);
  if (cmd == "regions") return Regions(a);
  if (cmd == "latency") return Latency(a);
  std::fprintf(stderr, "unknown benchmark %s\n", cmd.c_str());
  return 2;
}
