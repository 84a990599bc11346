// FakeEngineForControlTests: a test double of the Engine interface that
// holds settable stats and records control calls. It does no I/O; the I/O
// methods fail with NotSupported. Used by the control channel's tests.
//
// THREAD SAFETY: every method locks mu_, like the real engine's contract
// (the control server calls it from its own thread while tests inspect it).
#pragma once

#include <algorithm>
#include <mutex>

#include "engine/engine.h"

namespace clonefs::control::testing {

class FakeEngineForControlTests : public Engine {
 public:
  FakeEngineForControlTests() {
    stats_.image_size = 10ull << 20;
    stats_.region_size = 64 << 10;
    stats_.nr_regions = 160;
    stats_.metadata_space.used_blocks = 12;
    stats_.metadata_space.total_blocks = 1000;
  }

  Status Start() override { return Status::OK(); }
  Status Shutdown() override { return Status::OK(); }
  Status Read(uint64_t, void*, size_t) override { return Status::NotSupported("fake"); }
  Status Write(uint64_t, const void*, size_t, bool) override { return Status::NotSupported("fake"); }
  Status Zero(uint64_t, uint64_t, bool) override { return Status::NotSupported("fake"); }
  Status Fsync() override { return Status::NotSupported("fake"); }
  Result<uint64_t> SeekData(uint64_t) override { return Status::NotSupported("fake"); }
  Result<uint64_t> SeekHole(uint64_t) override { return Status::NotSupported("fake"); }

  EngineStats Stats() const override {
    std::lock_guard<std::mutex> l(mu_);
    stats_calls_++;
    return stats_;
  }
  Result<EngineStats> CommitAndStats() override {
    std::lock_guard<std::mutex> l(mu_);
    commit_calls_++;
    if (!commit_status_.ok()) return commit_status_;
    stats_.committed_hydrated_regions = stats_.hydrated_regions;
    stats_.hydration_done = stats_.hydrated_regions == stats_.nr_regions &&
                            stats_.mode == EngineMode::kReadWrite;
    return stats_;
  }
  EngineMode mode() const override {
    std::lock_guard<std::mutex> l(mu_);
    return stats_.mode;
  }
  bool hydration_done() const override {
    std::lock_guard<std::mutex> l(mu_);
    return stats_.hydration_done;
  }
  bool dest_changed() const override {
    std::lock_guard<std::mutex> l(mu_);
    return !stats_.dest_change.empty();
  }
  void SetHydrationThreshold(uint32_t n) override {
    std::lock_guard<std::mutex> l(mu_);
    stats_.knobs.hydration_threshold = n;
  }
  void SetHydrationBatchSize(uint32_t n) override {
    std::lock_guard<std::mutex> l(mu_);
    stats_.knobs.hydration_batch_size = n;
  }
  void SetRate(uint64_t r) override {
    std::lock_guard<std::mutex> l(mu_);
    stats_.knobs.rate_bytes_per_s = r;
  }
  void EnableHydration(bool on) override {
    std::lock_guard<std::mutex> l(mu_);
    stats_.knobs.hydration_enabled = on;
  }
  void SetCopyOnRead(bool on) override {
    std::lock_guard<std::mutex> l(mu_);
    stats_.copy_on_read = on;
  }
  void SetReadHints(bool on) override {
    std::lock_guard<std::mutex> l(mu_);
    stats_.read_hints = on;
  }
  uint64_t image_size() const override {
    std::lock_guard<std::mutex> l(mu_);
    return stats_.image_size;
  }

  // --- test controls ---
  void SetStats(const EngineStats& s) {
    std::lock_guard<std::mutex> l(mu_);
    stats_ = s;
  }
  // Marks `n` regions hydrated (uncommitted until the next CommitAndStats,
  // or committed at once with `commit`).
  void SetHydrated(uint64_t n, bool commit) {
    std::lock_guard<std::mutex> l(mu_);
    stats_.hydrated_regions = n;
    stats_.hydrated_bytes = std::min(n * stats_.region_size, stats_.image_size);
    if (commit) {
      stats_.committed_hydrated_regions = n;
      stats_.hydration_done = n == stats_.nr_regions;
    }
  }
  void SetMode(EngineMode m) {
    std::lock_guard<std::mutex> l(mu_);
    stats_.mode = m;
  }
  // What dest_changed() and the stats report; "" for an unchanged dest.
  void SetDestChange(std::string why) {
    std::lock_guard<std::mutex> l(mu_);
    stats_.dest_change = std::move(why);
  }
  void SetCommitStatus(Status s) {
    std::lock_guard<std::mutex> l(mu_);
    commit_status_ = std::move(s);
  }
  int commit_calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return commit_calls_;
  }
  int stats_calls() const {
    std::lock_guard<std::mutex> l(mu_);
    return stats_calls_;
  }

 private:
  mutable std::mutex mu_;
  EngineStats stats_;  // GUARDED_BY(mu_)
  Status commit_status_;  // GUARDED_BY(mu_)
  int commit_calls_ = 0;  // GUARDED_BY(mu_)
  mutable int stats_calls_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace clonefs::control::testing
