// Test support for engine and copier component tests: a clone "rig" over
// in-memory devices (wrapped in FaultDevices for error injection, counting
// and power-loss modelling) and a temp RocksDB routed through the metadata's
// FaultInjectionFs.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/test_hooks.h"
#include "devices/fault_device.h"
#include "devices/mem_device.h"
#include "engine/engine.h"
#include "metadata/fault_fs.h"
#include "metadata/metadata.h"
#include "support/test_seed.h"

namespace clonefs::test {

#define ASSERT_OK(expr)                                 \
  do {                                                  \
    ::clonefs::Status _s = (expr);                      \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)
#define EXPECT_OK(expr)                                 \
  do {                                                  \
    ::clonefs::Status _s = (expr);                      \
    EXPECT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

// Counts the operations a FaultDevice sees, per kind, and optionally runs a
// test action on each (after counting).
struct OpCounter {
  std::atomic<uint64_t> reads{0}, writes{0}, zeros{0}, flushes{0};
  std::atomic<uint64_t> read_bytes{0}, write_bytes{0};
  std::function<void(DeviceOp, uint64_t, uint64_t)> also;  // set before Install
  OpCounter() = default;
  OpCounter(const OpCounter&) = delete;
  OpCounter& operator=(const OpCounter&) = delete;
  // Removes the hook from the device if the device still exists.
  ~OpCounter() {
    if (auto d = dev_.lock()) d->SetHook(nullptr);
  }
  void Install(const std::shared_ptr<FaultDevice>& d) {
    dev_ = d;
    d->SetHook([this](DeviceOp op, uint64_t off, uint64_t len) {
      switch (op) {
        case DeviceOp::kRead: reads++; read_bytes += len; break;
        case DeviceOp::kWrite: writes++; write_bytes += len; break;
        case DeviceOp::kZero: zeros++; break;
        case DeviceOp::kFlush: flushes++; break;
        default: break;
      }
      if (also) also(op, off, len);
    });
  }

 private:
  std::weak_ptr<FaultDevice> dev_;
};

// Runs a function at the end of a scope (e.g. stopping an engine before the
// locals its callbacks capture go away).
class Cleanup {
 public:
  explicit Cleanup(std::function<void()> f) : f_(std::move(f)) {}
  ~Cleanup() { f_(); }
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;

 private:
  std::function<void()> f_;
};

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// `normal` iterations in a normal build, `sanitized` under ASan/TSan.
inline int Scaled(int normal, int sanitized) { return kSanitized ? sanitized : normal; }

// Installs a kill-point hook for a scope.
class KillHookGuard {
 public:
  explicit KillHookGuard(TestKillHook h) { SetTestKillHookForTesting(std::move(h)); }
  ~KillHookGuard() { SetTestKillHookForTesting(nullptr); }
  KillHookGuard(const KillHookGuard&) = delete;
  KillHookGuard& operator=(const KillHookGuard&) = delete;
};

// Forwards every call to a shared device, so that a test keeps the device
// (a FaultDevice it will crash) alive after the engine that owned it is gone.
class SharedDevice : public Device {
 public:
  explicit SharedDevice(std::shared_ptr<Device> d) : d_(std::move(d)) {}
  uint64_t Size() const override { return d_->Size(); }
  bool ReadOnly() const override { return d_->ReadOnly(); }
  const std::string& Name() const override { return d_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override { return d_->Read(off, buf, len); }
  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    d_->ReadAsync(off, buf, len, std::move(done));
  }
  bool AsyncReads() const override { return d_->AsyncReads(); }
  bool SharesReadQueue() const override { return d_->SharesReadQueue(); }
  bool RemoteHoleQueries() const override { return d_->RemoteHoleQueries(); }
  void Release() override { d_->Release(); }
  SourceHealth Health() const override { return d_->Health(); }
  Status Write(uint64_t off, const void* buf, size_t len) override {
    return d_->Write(off, buf, len);
  }
  Status Flush() override { return d_->Flush(); }
  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    return d_->Zero(off, len, mode);
  }
  Result<uint64_t> NextData(uint64_t off) override { return d_->NextData(off); }
  Result<uint64_t> NextHole(uint64_t off) override { return d_->NextHole(off); }
  Status CheckUnchanged() override { return d_->CheckUnchanged(); }
  Result<uint64_t> CutGrowth() override { return d_->CutGrowth(); }
  std::optional<uint64_t> AllocatedBytes() const override { return d_->AllocatedBytes(); }

 private:
  std::shared_ptr<Device> d_;
};

inline std::unique_ptr<Device> Share(std::shared_ptr<Device> d) {
  return std::make_unique<SharedDevice>(std::move(d));
}

class TempDir {
 public:
  // Under $TMPDIR if set, else in /dev/shm when there is one (the metadata
  // store fsyncs; durability is modelled by FaultInjectionFs anyway).
  TempDir() {
    std::filesystem::path base = std::filesystem::temp_directory_path();
    if (!std::getenv("TMPDIR") && std::filesystem::is_directory("/dev/shm") &&
        access("/dev/shm", W_OK) == 0) {
      base = "/dev/shm";
    }
    std::string tmpl = (base / "clonefs-eng-XXXXXX").string();
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A manually advanced clock.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(uint64_t start = 1'000'000'000) : now_(start) {}
  uint64_t NowNanos() override { return now_.load(); }
  void Advance(uint64_t ns) { now_.fetch_add(ns); }

 private:
  std::atomic<uint64_t> now_;
};

// Random bytes with some all-zero 4 KiB blocks (holes in a MemDevice).
inline std::vector<uint8_t> RandomContent(uint64_t size, uint64_t seed, double hole_fraction) {
  std::vector<uint8_t> v(size);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (uint64_t b = 0; b < size; b += 4096) {
    uint64_t n = std::min<uint64_t>(4096, size - b);
    if (u(rng) < hole_fraction) continue;
    for (uint64_t i = 0; i < n; i += 8) {
      uint64_t x = rng();
      std::memcpy(&v[b + i], &x, std::min<uint64_t>(8, n - i));
    }
  }
  return v;
}

// Forwards every call to a real Metadata. Tests derive from it to interpose
// on one call (a failing Abort, a region hydrated between two queries).
class ForwardingMetadata : public metadata::Metadata {
 public:
  explicit ForwardingMetadata(std::unique_ptr<metadata::Metadata> m) : m_(std::move(m)) {
    sb_ = m_->superblock();
  }
  Status SetRegionHydrated(uint64_t r) override { return m_->SetRegionHydrated(r); }
  Status CondSetRange(uint64_t s, uint64_t n) override { return m_->CondSetRange(s, n); }
  Result<uint64_t> Freeze() override { return m_->Freeze(); }
  Status PersistFrozen() override { return m_->PersistFrozen(); }
  Status Commit() override { return m_->Commit(); }
  Status Abort() override { return m_->Abort(); }
  Status ReloadInCoreBitset() override { return m_->ReloadInCoreBitset(); }
  bool ChangedThisTransaction() const override { return m_->ChangedThisTransaction(); }
  void SetReadOnly() override { m_->SetReadOnly(); }
  void SetReadWrite() override { m_->SetReadWrite(); }
  bool IsReadOnly() const override { return m_->IsReadOnly(); }
  bool IsHydrationDone() const override { return m_->IsHydrationDone(); }
  bool IsRegionHydrated(uint64_t r) const override { return m_->IsRegionHydrated(r); }
  bool IsRangeHydrated(uint64_t s, uint64_t n) const override { return m_->IsRangeHydrated(s, n); }
  uint64_t NrHydratedRegions() const override { return m_->NrHydratedRegions(); }
  uint64_t NrCommittedHydratedRegions() const override {
    return m_->NrCommittedHydratedRegions();
  }
  uint64_t FindNextUnhydratedRegion(uint64_t s) const override {
    return m_->FindNextUnhydratedRegion(s);
  }
  uint64_t FindNextHydratedRegion(uint64_t s) const override {
    return m_->FindNextHydratedRegion(s);
  }
  Result<metadata::SpaceInfo> GetSpace() const override { return m_->GetSpace(); }
  Result<std::optional<std::string>> GetSettings() const override { return m_->GetSettings(); }
  Status PutSettings(std::string_view blob) override { return m_->PutSettings(blob); }

 protected:
  metadata::Metadata* inner() const { return m_.get(); }

 private:
  std::unique_ptr<metadata::Metadata> m_;
};

// One clone: source and dest in memory behind FaultDevices, metadata in a
// temp directory behind a FaultInjectionFs. Survives engine restarts.
struct Rig {
  uint64_t image_size = 0;
  uint64_t region_size = 0;
  std::vector<uint8_t> source_content;
  std::shared_ptr<FaultDevice> source;   // errors + hook; never written
  std::shared_ptr<Device> dest_base;     // the durable dest
  std::shared_ptr<FaultDevice> dest;     // volatile wrapper over dest_base
  std::shared_ptr<metadata::FaultInjectionFs> fs = std::make_shared<metadata::FaultInjectionFs>();
  TempDir dir;
  std::unique_ptr<Engine> engine;
  // If set, Open wraps the metadata with it (e.g. to interpose on Abort).
  std::function<std::unique_ptr<metadata::Metadata>(std::unique_ptr<metadata::Metadata>)> wrap_md;

  Rig(uint64_t image, uint64_t region, std::vector<uint8_t> content, uint64_t dest_extra = 0)
      : image_size(image), region_size(region), source_content(std::move(content)) {
    source = FaultDevice::Wrap(NewMemDeviceFrom(source_content, /*read_only=*/true, "src"));
    dest_base = NewMemDevice(image + dest_extra, false, "dest");
    dest = FaultDevice::WrapVolatile(dest_base);
  }

  metadata::MetadataOptions MdOptions() const {
    metadata::MetadataOptions o;
    o.dir = dir.path() + "/md";
    o.image_size = image_size;
    o.region_size = region_size;
    o.fault_fs = fs;
    return o;
  }

  // Opens the metadata and the engine (and starts it). `src` replaces the
  // source device (e.g. a ConcurrencyProbe over `source`).
  Status Open(const EngineOptions& options, bool start = true,
              std::shared_ptr<Device> src = nullptr) {
    auto md = metadata::Metadata::Open(MdOptions());
    if (!md.ok()) return md.status();
    std::unique_ptr<metadata::Metadata> m = std::move(*md);
    if (wrap_md) m = wrap_md(std::move(m));
    auto e = Engine::Open(Share(src ? src : source), Share(dest), std::move(m), options);
    if (!e.ok()) return e.status();
    engine = std::move(*e);
    return start ? engine->Start() : Status::OK();
  }

  // Power loss: makes every further dest and metadata write fail (so
  // nothing more becomes durable), destroys the engine, drops (or keeps a
  // random subset of) dest's unsynced writes and drops unsynced metadata.
  // Safe to call FreezeDurableState() earlier from any thread (a kill hook).
  void FreezeDurableState() {
    FaultRule r;
    r.op = DeviceOp::kAny;
    r.error = Status::IoError("power is off", 5);
    dest->AddRule(r);
    fs->SetFailWrites(true);
    fs->SetFailSyncs(true);
  }
  void PowerLoss(bool keep_random, uint64_t seed) {
    FreezeDurableState();
    engine.reset();
    if (keep_random) {
      dest->CrashKeepRandom(seed);
    } else {
      dest->Crash();
    }
    dest = FaultDevice::WrapVolatile(dest_base);
    fs->DropUnsyncedData();
    fs->SetFailWrites(false);
    fs->SetFailSyncs(false);
  }

  std::vector<uint8_t> ReadAll() {
    std::vector<uint8_t> v(image_size);
    EXPECT_TRUE(engine->Read(0, v.data(), v.size()).ok());
    return v;
  }
  std::vector<uint8_t> DestBytes(uint64_t off, uint64_t len) {
    std::vector<uint8_t> v(len);
    EXPECT_TRUE(dest->Read(off, v.data(), len).ok());
    return v;
  }
  // Waits (real time, polling) until pred() or timeout; returns pred().
  static bool WaitFor(const std::function<bool()>& pred, int timeout_ms = 20000) {
    for (int i = 0; i < timeout_ms / 2 && !pred(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return pred();
  }
};

// The lines of the file at `path` (a log) that contain `text`.
inline std::vector<std::string> LinesWith(const std::string& path, const std::string& text) {
  std::vector<std::string> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    if (line.find(text) != std::string::npos) out.push_back(line);
  }
  return out;
}

}  // namespace clonefs::test

namespace clonefs::test {

// A pass-through device that measures concurrency: reads in flight (count
// and bytes) and their maxima, optionally holding every read for a while so
// that copies overlap.
class ConcurrencyProbe final : public Device {
 public:
  explicit ConcurrencyProbe(std::shared_ptr<Device> d, uint64_t hold_us = 0)
      : d_(std::move(d)), hold_us_(hold_us) {}
  uint64_t Size() const override { return d_->Size(); }
  bool ReadOnly() const override { return d_->ReadOnly(); }
  const std::string& Name() const override { return d_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override {
    uint64_t n = ++reads_in_flight_;
    uint64_t b = (bytes_in_flight_ += len);
    Raise(&max_reads_, n);
    Raise(&max_bytes_, b);
    Raise(&max_read_len_, len);
    reads_++;
    read_bytes_ += len;
    if (hold_us_.load()) std::this_thread::sleep_for(std::chrono::microseconds(hold_us_.load()));
    Status s = d_->Read(off, buf, len);
    bytes_in_flight_ -= len;
    --reads_in_flight_;
    return s;
  }
  Status Write(uint64_t off, const void* buf, size_t len) override {
    return d_->Write(off, buf, len);
  }
  Status Flush() override { return d_->Flush(); }
  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    return d_->Zero(off, len, mode);
  }
  Result<uint64_t> NextData(uint64_t off) override { return d_->NextData(off); }
  Result<uint64_t> NextHole(uint64_t off) override { return d_->NextHole(off); }
  Status CheckUnchanged() override { return d_->CheckUnchanged(); }
  Result<uint64_t> CutGrowth() override { return d_->CutGrowth(); }

  void ResetMaxima() {
    max_reads_ = 0;
    max_bytes_ = 0;
    max_read_len_ = 0;
  }
  void SetHoldMicros(uint64_t us) { hold_us_ = us; }
  uint64_t max_reads() const { return max_reads_.load(); }
  uint64_t max_bytes() const { return max_bytes_.load(); }
  uint64_t max_read_len() const { return max_read_len_.load(); }
  uint64_t reads() const { return reads_.load(); }
  uint64_t read_bytes() const { return read_bytes_.load(); }
  uint64_t reads_in_flight() const { return reads_in_flight_.load(); }

 private:
  static void Raise(std::atomic<uint64_t>* m, uint64_t v) {
    uint64_t cur = m->load();
    while (v > cur && !m->compare_exchange_weak(cur, v)) {
    }
  }
  std::shared_ptr<Device> d_;
  std::atomic<uint64_t> hold_us_;
  std::atomic<uint64_t> reads_in_flight_{0}, bytes_in_flight_{0};
  std::atomic<uint64_t> max_reads_{0}, max_bytes_{0}, max_read_len_{0};
  std::atomic<uint64_t> reads_{0}, read_bytes_{0};
};

}  // namespace clonefs::test
