// copier_bench: full hydration from a remote-like source, against the ideal.
//
//   copier_bench remote [--size-mib 2048] [--latency-ms 5,50] [--bw-mib 700]
//                       [--runs 3] [--inflight-mib 64[,..]] [--batch 16]
//                       [--threshold 1024] [--writers 2] [--dest-file PATH]
//                       [--dir D] [--outage-s S --outage-at-s T
//                       --outage-kind down|failing]
//
// The source is an in-memory image behind a model link: every read takes
// `latency` before its bytes start to flow (requests overlap freely, as a
// server's worker threads do), then its bytes cross a link of `bw` shared by
// all reads in arrival order (nbdkit's delay + rate filters, without their
// thread limit). Reads complete on the link's own thread, so the source
// overlaps reads (AsyncReads()) like an NBD source.
//
// For each latency and in-flight target it times:
//   - ideal: size / bandwidth;
//   - reader: a pipelined reader with the same bytes in flight in 1 MiB
//     requests, reading into memory and discarding (what nbdcopy to null:
//     gets): the best any copier can do through this link;
//   - engine: Engine::Open + Start until hydration_done (every region copied,
//     committed), into a dest that discards what it is given (the link is
//     what is measured), or --dest-file (a file, O_DIRECT).
// Random data throughout, so nothing is a hole or zero.
//
// With --outage-s, each engine run loses the link T seconds after it starts,
// for S seconds: every read that completes meanwhile fails with EIO, and the
// source says it is reconnecting (down) or still connected (failing). The
// run reports its time against a clean run's, and the failed reads.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <queue>
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

void Die(const Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

std::vector<uint64_t> List(const std::string& s) {
  std::vector<uint64_t> v;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    v.push_back(std::stoull(s.substr(pos, end - pos)));
    pos = end + 1;
  }
  return v;
}

// The model link in front of an in-memory image (see the file comment).
class SlowLink final : public Device {
 public:
  SlowLink(std::shared_ptr<Device> base, uint64_t latency_ns, uint64_t bytes_per_s)
      : base_(std::move(base)), latency_(latency_ns), bw_(bytes_per_s), name_("link:" + base_->Name()) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~SlowLink() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  uint64_t Size() const override { return base_->Size(); }
  bool ReadOnly() const override { return true; }
  const std::string& Name() const override { return name_; }
  Status Read(uint64_t off, void* buf, size_t len) override {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    Status result;
    ReadAsync(off, buf, len, [&](Status s) {
      std::lock_guard<std::mutex> l(m);
      result = s;
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return done; });
    return result;
  }
  enum class Mode { kUp, kDown, kFailing };
  void SetMode(Mode m) { mode_ = m; }
  uint64_t failed_reads() const { return failed_reads_.load(); }
  SourceHealth Health() const override {
    SourceHealth h;
    if (mode_.load() == Mode::kDown) h.state = SourceHealth::State::kReconnecting;
    return h;
  }
  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    std::lock_guard<std::mutex> l(mu_);
    const Clk::time_point now = Clk::now();
    Clk::time_point start = std::max(now + std::chrono::nanoseconds(latency_), link_free_);
    Clk::time_point at = start + std::chrono::nanoseconds(static_cast<uint64_t>(
                                     static_cast<double>(len) * 1e9 / static_cast<double>(bw_)));
    link_free_ = at;
    heap_.push(Req{at, seq_++, off, buf, len, std::move(done)});
    cv_.notify_all();
  }
  bool AsyncReads() const override { return true; }
  Status Write(uint64_t, const void*, size_t) override { return Status::Permission("read-only"); }
  Status Flush() override { return Status::OK(); }
  Status Zero(uint64_t, uint64_t, ZeroMode) override { return Status::Permission("read-only"); }
  Result<uint64_t> NextData(uint64_t off) override { return off; }
  Result<uint64_t> NextHole(uint64_t) override { return Size(); }

 private:
  struct Req {
    Clk::time_point at;
    uint64_t seq;
    uint64_t off;
    void* buf;
    size_t len;
    ReadDone done;
    bool operator>(const Req& o) const { return at != o.at ? at > o.at : seq > o.seq; }
  };
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      if (heap_.empty()) {
        if (stop_) return;
        cv_.wait(l);
        continue;
      }
      if (heap_.top().at > Clk::now()) {
        cv_.wait_until(l, heap_.top().at);
        continue;
      }
      Req r = std::move(const_cast<Req&>(heap_.top()));
      heap_.pop();
      l.unlock();
      Status s = mode_.load() == Mode::kUp ? base_->Read(r.off, r.buf, r.len)
                                            : Status::IoError("link: connection lost", 5);
      if (!s.ok()) failed_reads_++;
      r.done(s);
      l.lock();
    }
  }

  std::shared_ptr<Device> base_;
  std::atomic<Mode> mode_{Mode::kUp};
  std::atomic<uint64_t> failed_reads_{0};
  const uint64_t latency_, bw_;
  const std::string name_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::priority_queue<Req, std::vector<Req>, std::greater<Req>> heap_;  // GUARDED_BY(mu_)
  Clk::time_point link_free_{};                                         // GUARDED_BY(mu_)
  uint64_t seq_ = 0;                                                    // GUARDED_BY(mu_)
  bool stop_ = false;                                                   // GUARDED_BY(mu_)
  std::thread thread_;
};

// Forwards to a shared device (the benchmark keeps the image between runs).
class Shared final : public Device {
 public:
  explicit Shared(std::shared_ptr<Device> d) : d_(std::move(d)) {}
  uint64_t Size() const override { return d_->Size(); }
  bool ReadOnly() const override { return d_->ReadOnly(); }
  const std::string& Name() const override { return d_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override { return d_->Read(off, buf, len); }
  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    d_->ReadAsync(off, buf, len, std::move(done));
  }
  bool AsyncReads() const override { return d_->AsyncReads(); }
  SourceHealth Health() const override { return d_->Health(); }
  Status Write(uint64_t off, const void* buf, size_t len) override { return d_->Write(off, buf, len); }
  Status Flush() override { return d_->Flush(); }
  Status Zero(uint64_t off, uint64_t len, ZeroMode m) override { return d_->Zero(off, len, m); }
  Result<uint64_t> NextData(uint64_t off) override { return d_->NextData(off); }
  Result<uint64_t> NextHole(uint64_t off) override { return d_->NextHole(off); }

 private:
  std::shared_ptr<Device> d_;
};

// A dest that keeps nothing: the engine's copier is timed without a
// destination's cost (an in-memory dest spends most of its time zero-filling
// fresh pages). The copier's own work -- zero-block checks, bookkeeping,
// marks, commits -- is all still done.
class NullDest final : public Device {
 public:
  explicit NullDest(uint64_t size) : size_(size) {}
  uint64_t Size() const override { return size_; }
  bool ReadOnly() const override { return false; }
  const std::string& Name() const override { return name_; }
  Status Read(uint64_t, void* buf, size_t len) override {
    std::memset(buf, 0, len);
    return Status::OK();
  }
  Status Write(uint64_t, const void*, size_t) override { return Status::OK(); }
  Status Flush() override { return Status::OK(); }
  Status Zero(uint64_t, uint64_t, ZeroMode) override { return Status::OK(); }
  Result<uint64_t> NextData(uint64_t) override { return size_; }
  Result<uint64_t> NextHole(uint64_t off) override { return off; }

 private:
  const uint64_t size_;
  const std::string name_ = "null";
};

std::shared_ptr<Device> MakeImage(uint64_t size) {
  std::shared_ptr<Device> d = NewMemDevice(size, false, "image");
  std::vector<uint64_t> chunk((8 << 20) / 8);
  uint64_t x = 88172645463325252ull;
  for (uint64_t off = 0; off < size; off += 8 << 20) {
    for (auto& w : chunk) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    Die(d->Write(off, chunk.data(), std::min<uint64_t>(8 << 20, size - off)), "fill image");
  }
  return d;
}

// A pipelined reader keeping `inflight` bytes of 1 MiB reads in flight.
double RunReader(Device* src, uint64_t inflight) {
  const uint64_t req = 1 << 20, size = src->Size();
  const uint64_t slots = std::max<uint64_t>(inflight / req, 1);
  std::vector<std::vector<uint8_t>> bufs(slots, std::vector<uint8_t>(req));
  std::mutex m;
  std::condition_variable cv;
  std::vector<size_t> free_slots;
  for (size_t i = 0; i < slots; ++i) free_slots.push_back(i);
  uint64_t completed = 0;
  auto t0 = Clk::now();
  for (uint64_t off = 0; off < size; off += req) {
    size_t slot;
    {
      std::unique_lock<std::mutex> l(m);
      cv.wait(l, [&] { return !free_slots.empty(); });
      slot = free_slots.back();
      free_slots.pop_back();
    }
    src->ReadAsync(off, bufs[slot].data(), std::min(req, size - off), [&, slot](Status s) {
      Die(s, "reader");
      std::lock_guard<std::mutex> l(m);
      free_slots.push_back(slot);
      completed++;
      cv.notify_all();
    });
  }
  const uint64_t n = (size + req - 1) / req;
  std::unique_lock<std::mutex> l(m);
  cv.wait(l, [&] { return completed == n; });
  return Seconds(t0, Clk::now());
}

struct EngineRun {
  double seconds = 0;
  uint64_t max_inflight = 0;
};

struct Outage {
  double at_s = 0, seconds = 0;  // seconds == 0: none
  SlowLink::Mode mode = SlowLink::Mode::kDown;
};

EngineRun RunEngine(std::shared_ptr<SlowLink> link, const std::string& dir, const std::string& dest_file,
                    uint64_t inflight, uint32_t batch, uint32_t threshold, uint32_t writers,
                    const Outage& outage = {}) {
  const uint64_t size = link->Size();
  const std::string md_dir = dir + "/remote.md";
  fs::remove_all(md_dir);
  std::unique_ptr<Device> dest;
  if (dest_file.empty()) {
    dest = std::make_unique<NullDest>(size);
  } else {
    fs::remove(dest_file);
    PosixDeviceOptions o;
    o.create = true;
    o.direct = true;
    o.min_size = size;
    auto d = OpenPosixDevice(dest_file, o);
    Die(d.status(), "open dest");
    dest = std::move(*d);
  }
  metadata::MetadataOptions mo;
  mo.dir = md_dir;
  mo.image_size = size;
  auto md = metadata::Metadata::Open(mo);
  Die(md.status(), "metadata");
  EngineOptions o;
  o.knobs.hydration_threshold = threshold;
  o.knobs.hydration_batch_size = batch;
  o.copier_inflight_bytes = inflight;
  o.copier_writer_threads = writers;
  auto t0 = Clk::now();
  auto e = Engine::Open(std::make_unique<Shared>(link), std::move(dest), std::move(*md), o);
  Die(e.status(), "engine");
  Die((*e)->Start(), "start");
  std::thread outage_thread;
  if (outage.seconds > 0) {
    outage_thread = std::thread([&] {
      std::this_thread::sleep_until(t0 + std::chrono::duration<double>(outage.at_s));
      link->SetMode(outage.mode);
      std::this_thread::sleep_until(t0 + std::chrono::duration<double>(outage.at_s + outage.seconds));
      link->SetMode(SlowLink::Mode::kUp);
    });
  }
  EngineRun r;
  while (!(*e)->Stats().hydration_done) {
    r.max_inflight = std::max(r.max_inflight, (*e)->Stats().copier_inflight_bytes);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  r.seconds = Seconds(t0, Clk::now());
  if (outage_thread.joinable()) outage_thread.join();
  if ((*e)->Stats().copy_failures) std::printf("  (%llu copy failures)\n", static_cast<unsigned long long>((*e)->Stats().copy_failures));
  Die((*e)->Shutdown(), "shutdown");
  e->reset();
  fs::remove_all(md_dir);
  if (!dest_file.empty()) fs::remove(dest_file);
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Remote(std::map<std::string, std::string>& a) {
  auto get = [&](const std::string& k, const std::string& d) { return a.count(k) ? a[k] : d; };
  const uint64_t size = std::stoull(get("size-mib", "2048")) << 20;
  const uint64_t bw = std::stoull(get("bw-mib", "700")) << 20;
  const int runs = std::stoi(get("runs", "3"));
  const uint32_t batch = static_cast<uint32_t>(std::stoul(get("batch", "16")));
  const uint32_t threshold = static_cast<uint32_t>(std::stoul(get("threshold", "1024")));
  const uint32_t writers = static_cast<uint32_t>(std::stoul(get("writers", "2")));
  const std::string dir = get("dir", "/var/tmp/clonefs-bench-engine");
  const std::string dest_file = get("dest-file", "");
  Outage outage;
  outage.seconds = std::stod(get("outage-s", "0"));
  outage.at_s = std::stod(get("outage-at-s", "1"));
  outage.mode = get("outage-kind", "down") == "failing" ? SlowLink::Mode::kFailing : SlowLink::Mode::kDown;
  fs::create_directories(dir);
  std::printf("# %llu MiB image, link %llu MiB/s, batch %u, threshold %u, %u writer(s), dest %s\n",
              static_cast<unsigned long long>(size >> 20), static_cast<unsigned long long>(bw >> 20),
              batch, threshold, writers, dest_file.empty() ? "discarded" : dest_file.c_str());
  std::shared_ptr<Device> image = MakeImage(size);
  const double ideal = static_cast<double>(size) / static_cast<double>(bw);
  if (outage.seconds > 0) {
    std::printf("%-10s %10s %10s %12s %14s %12s\n", "latency", "clean s", "outage s", "with outage",
                "over clean+out", "failed reads");
    for (uint64_t lat_ms : List(get("latency-ms", "5,50"))) {
      const uint64_t inflight = std::stoull(get("inflight-mib", "64")) << 20;
      for (int r = 0; r < runs; ++r) {
        auto link = std::make_shared<SlowLink>(image, lat_ms * 1'000'000, bw);
        const double clean = RunEngine(link, dir, dest_file, inflight, batch, threshold, writers).seconds;
        link = std::make_shared<SlowLink>(image, lat_ms * 1'000'000, bw);
        const double with = RunEngine(link, dir, dest_file, inflight, batch, threshold, writers, outage).seconds;
        std::printf("%-10s %10.2f %10.1f %12.2f %14.2f %12llu\n", (std::to_string(lat_ms) + " ms").c_str(),
                    clean, outage.seconds, with, with - clean - outage.seconds,
                    static_cast<unsigned long long>(link->failed_reads()));
      }
    }
    return 0;
  }
  std::printf("%-10s %-10s %10s %10s %10s %10s %10s %12s\n", "latency", "inflight", "ideal s",
              "reader s", "engine s", "MiB/s", "vs ideal", "vs reader");
  for (uint64_t lat_ms : List(get("latency-ms", "5,50"))) {
    for (uint64_t inflight_mib : List(get("inflight-mib", "64"))) {
      const uint64_t inflight = inflight_mib << 20;
      std::vector<double> reader, engine;
      uint64_t max_inflight = 0;
      for (int r = 0; r < runs; ++r) {
        auto link = std::make_shared<SlowLink>(image, lat_ms * 1'000'000, bw);
        reader.push_back(RunReader(link.get(), inflight));
        link = std::make_shared<SlowLink>(image, lat_ms * 1'000'000, bw);
        EngineRun er = RunEngine(link, dir, dest_file, inflight, batch, threshold, writers);
        engine.push_back(er.seconds);
        max_inflight = std::max(max_inflight, er.max_inflight);
        std::printf("  run %d: %llu ms, %llu MiB: reader %.2f s, engine %.2f s (max %llu MiB in flight)\n", r,
                    static_cast<unsigned long long>(lat_ms), static_cast<unsigned long long>(inflight_mib),
                    reader.back(), engine.back(), static_cast<unsigned long long>(er.max_inflight >> 20));
      }
      const double rm = Median(reader), em = Median(engine);
      std::printf("%-10s %-10s %10.2f %10.2f %10.2f %10.0f %10.2f %12.2f\n",
                  (std::to_string(lat_ms) + " ms").c_str(), (std::to_string(inflight_mib) + " MiB").c_str(),
                  ideal, rm, em, static_cast<double>(size) / 1048576.0 / em, ideal / em, rm / em);
    }
  }
  return 0;
}

}  // namespace
}  // namespace clonefs

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) != "remote") {
    std::fprintf(stderr, "usage: %s remote [--key value]...\n", argv[0]);
    return 2;
  }
  std::map<std::string, std::string> a;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) {
      std::fprintf(stderr, "expected --key value, got %s\n", argv[i]);
      return 2;
    }
    a[k.substr(2)] = argv[i + 1];
  }
  return clonefs::Remote(a);
}
