// PassthroughEngine: a test-only Engine over an in-memory image, used to
// test the FUSE layer on its own (no hydration, no metadata). Not part of the
// product. Records what reached it so tests can check the FUSE layer's
// decoding (sync writes, fsyncs, punch vs zero).
//
// THREAD SAFETY: every method is thread-safe (one mutex around the image).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

#include "engine/engine.h"

namespace clonefs::testing {

class PassthroughEngine : public Engine {
 public:
  explicit PassthroughEngine(uint64_t size) : data_(size, 0) {}

  Status Start() override { return Status::OK(); }
  Status Shutdown() override {
    shutdowns.fetch_add(1);
    return Status::OK();
  }
  Status Read(uint64_t off, void* buf, size_t len) override {
    if (off + len > data_.size()) return Status::InvalidArgument("read outside image");
    std::lock_guard<std::mutex> l(mu_);
    std::memcpy(buf, data_.data() + off, len);
    max_read_len = std::max<uint64_t>(max_read_len, len);
    return Status::OK();
  }
  Status Write(uint64_t off, const void* buf, size_t len, bool sync) override {
    if (off + len > data_.size()) return Status::InvalidArgument("write outside image");
    int now = writes_in_flight.fetch_add(1) + 1;
    for (int m = max_writes_in_flight.load(); now > m;) {
      if (max_writes_in_flight.compare_exchange_weak(m, now)) break;
    }
    // Optionally hold each write (up to 10 s: a loaded machine may take a
    // while to send the others) until that many have been in flight at once.
    const int hold = hold_writes_until.load();
    for (int i = 0; i < 10000 && max_writes_in_flight.load() < hold; ++i) usleep(1000);
    struct Leave {
      std::atomic<int>* n;
      ~Leave() { n->fetch_sub(1); }
    } leave{&writes_in_flight};
    std::lock_guard<std::mutex> l(mu_);
    std::memcpy(data_.data() + off, buf, len);
    (sync ? sync_writes : plain_writes).fetch_add(1);
    max_write_len = std::max<uint64_t>(max_write_len, len);
    if (reinterpret_cast<uintptr_t>(buf) % 4096 != 0) unaligned_write_buffers.fetch_add(1);
    return Status::OK();
  }
  Status Zero(uint64_t off, uint64_t len, bool punch) override {
    if (off + len > data_.size()) return Status::InvalidArgument("zero outside image");
    std::lock_guard<std::mutex> l(mu_);
    std::memset(data_.data() + off, 0, len);
    (punch ? punches : zeroes).fetch_add(1);
    return Status::OK();
  }
  Status Fsync() override {
    fsyncs.fetch_add(1);
    return fail_fsync.load() ? Status::IoError("injected fsync failure") : Status::OK();
  }
  EngineStats Stats() const override { return {}; }
  Result<EngineStats> CommitAndStats() override { return EngineStats{}; }
  EngineMode mode() const override { return EngineMode::kReadWrite; }
  bool hydration_done() const override { return true; }
  void SetHydrationThreshold(uint32_t) override {}
  void SetHydrationBatchSize(uint32_t) override {}
  void SetRate(uint64_t) override {}
  void EnableHydration(bool) override {}
  void SetCopyOnRead(bool) override {}
  void SetReadHints(bool) override {}
  uint64_t image_size() const override { return data_.size(); }
  // Data everywhere except an all-zero 64 KiB-aligned block counts as a hole.
  Result<uint64_t> SeekData(uint64_t off) override {
    std::lock_guard<std::mutex> l(mu_);
    for (uint64_t b = off; b < data_.size(); b = (b / kBlock + 1) * kBlock) {
      if (!BlockIsZero(b / kBlock)) return b;
    }
    return data_.size();
  }
  Result<uint64_t> SeekHole(uint64_t off) override {
    std::lock_guard<std::mutex> l(mu_);
    for (uint64_t b = off; b < data_.size(); b = (b / kBlock + 1) * kBlock) {
      if (BlockIsZero(b / kBlock)) return b;
    }
    return data_.size();
  }

  std::vector<uint8_t> Snapshot() const {
    std::lock_guard<std::mutex> l(mu_);
    return data_;
  }

  static constexpr uint64_t kBlock = 64 * 1024;
  std::atomic<int> shutdowns{0}, fsyncs{0}, sync_writes{0}, plain_writes{0}, punches{0}, zeroes{0};
  std::atomic<uint64_t> max_read_len{0}, max_write_len{0};
  std::atomic<uint64_t> unaligned_write_buffers{0};  // writes whose data was not page aligned
  std::atomic<bool> fail_fsync{false};
  std::atomic<int> writes_in_flight{0}, max_writes_in_flight{0};
  std::atomic<int> hold_writes_until{0};

 private:
  bool BlockIsZero(uint64_t blk) const {
    uint64_t start = blk * kBlock, end = std::min<uint64_t>(start + kBlock, data_.size());
    for (uint64_t i = start; i < end; ++i) {
      if (data_[i] != 0) return false;
    }
    return true;
  }
  mutable std::mutex mu_;
  std::vector<uint8_t> data_;  // GUARDED_BY(mu_)
};

}  // namespace clonefs::testing
