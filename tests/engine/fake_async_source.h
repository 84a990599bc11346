// Test support: a source that overlaps reads (AsyncReads() true), like a
// remote source, over any Device (usually the rig's FaultDevice source, so
// hooks and counters keep working).
//
// ReadAsync queues the read; a completion thread finishes it (reads the base
// device, calls done) once its delay has passed, or -- while holding -- only
// when the test releases it. Inline mode finishes it inside ReadAsync (the
// Device contract allows that). Whether a read fails is decided when it
// finishes: while the source is "down" (Health() says reconnecting) or
// "failing" (Health() says connected), every read fails with EIO, so reads
// in flight when an outage begins fail too. The destructor finishes every
// pending read (held or not) with EIO, as a remote source does when it is
// closed.
//
// Link mode (SetLinkBytesPerSecond): reads are delivered one after another
// over a link of that bandwidth, as on one connection to a remote server:
// each completes once the link has carried it and every read issued before
// it, plus the delay. SetSharedQueue makes SharesReadQueue() true.
//
// Counts reads, failed reads, bytes in flight (issued, done not yet called)
// and their maximum, and the most bytes in flight when a Read arrived (what
// a user's read would wait behind on a shared queue).
//
// THREAD SAFETY: every method may be called from any thread.
#pragma once

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "devices/device.h"

namespace clonefs::test {

class FakeAsyncSource final : public Device {
 public:
  explicit FakeAsyncSource(std::shared_ptr<Device> base)
      : base_(std::move(base)), thread_([this] { Loop(); }) {}
  ~FakeAsyncSource() override {
    {
      std::lock_guard<std::mutex> l(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  // --- controls ---
  void SetHold(bool hold) {
    {
      std::lock_guard<std::mutex> l(mu_);
      hold_ = hold;
    }
    cv_.notify_all();
  }
  void SetDelayMicros(uint64_t us) { delay_us_ = us; }
  void SetLinkBytesPerSecond(uint64_t bps) { link_bps_ = bps; }
  void SetSharedQueue(bool on) { shared_ = on; }
  void SetInline(bool on) { inline_ = on; }
  void SetDown(bool down) { down_ = down; }
  void SetFailing(bool failing) { failing_ = failing; }
  // NextData/NextHole answer "all data" (a source without block status).
  void SetAllData(bool on) { all_data_ = on; }

  // --- observations ---
  uint64_t reads() const { return reads_.load(); }
  uint64_t failed_reads() const { return failed_reads_.load(); }
  uint64_t inflight_bytes() const { return inflight_bytes_.load(); }
  uint64_t max_inflight_bytes() const { return max_inflight_bytes_.load(); }
  uint64_t pending() const { return pending_count_.load(); }
  uint64_t max_read_len() const { return max_read_len_.load(); }
  uint64_t max_bytes_ahead_of_reads() const { return max_ahead_.load(); }
  // Release calls, and how many reads were in flight at the first one.
  uint64_t releases() const { return releases_.load(); }
  uint64_t pending_at_release() const { return pending_at_release_.load(); }
  void ResetMaxima() {
    max_inflight_bytes_ = 0;
    max_read_len_ = 0;
  }

  // --- Device ---
  uint64_t Size() const override { return base_->Size(); }
  bool ReadOnly() const override { return base_->ReadOnly(); }
  const std::string& Name() const override { return base_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override {
    if (!in_finish_) {
      std::function<void()> gate;
      {
        std::lock_guard<std::mutex> l(mu_);
        gate = gate_;
      }
      if (gate) gate();
      if (released_.load()) return Status::IoError("fake source: released", EIO);
    }
    if (Broken()) return Status::IoError("fake source: connection lost", EIO);
    if (!in_finish_) Raise(&max_ahead_, inflight_bytes_.load());
    return base_->Read(off, buf, len);
  }
  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    reads_++;
    Raise(&max_inflight_bytes_, inflight_bytes_ += len);
    Raise(&max_read_len_, len);
    auto due = std::chrono::steady_clock::now();
    if (const uint64_t bps = link_bps_.load(); bps != 0) {
      std::lock_guard<std::mutex> l(mu_);
      link_free_ = std::max(link_free_, due) +
                   std::chrono::nanoseconds(static_cast<int64_t>(len * 1'000'000'000 / bps));
      due = link_free_;
    }
    Req r{off, buf, len, std::move(done), due + std::chrono::microseconds(delay_us_.load())};
    if (inline_.load()) {
      Finish(std::move(r), Status::OK());
      return;
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      pending_.push_back(std::move(r));
      pending_count_ = pending_.size();
    }
    cv_.notify_all();
  }
  bool AsyncReads() const override { return true; }
  bool SharesReadQueue() const override { return shared_.load(); }
  // After Release, Health says kReleased and reads fail (as NbdDevice's).
  void Release() override {
    if (releases_++ == 0) pending_at_release_ = inflight_bytes_.load();
    released_ = true;
  }
  // Called at the start of every Read (not the completions' reads), before
  // anything else: a test may block there.
  void SetReadGate(std::function<void()> gate) {
    std::lock_guard<std::mutex> l(mu_);
    gate_ = std::move(gate);
  }
  SourceHealth Health() const override {
    SourceHealth h;
    if (released_.load()) {
      h.state = SourceHealth::State::kReleased;
      return h;
    }
    if (down_.load()) {
      h.state = SourceHealth::State::kReconnecting;
      h.last_error = "fake source: connection reset";
    }
    return h;
  }
  Status Write(uint64_t off, const void* buf, size_t len) override {
    return base_->Write(off, buf, len);
  }
  Status Flush() override { return base_->Flush(); }
  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    return base_->Zero(off, len, mode);
  }
  Result<uint64_t> NextData(uint64_t off) override {
    return all_data_.load() ? off : base_->NextData(off);
  }
  Result<uint64_t> NextHole(uint64_t off) override {
    return all_data_.load() ? Size() : base_->NextHole(off);
  }
  Status CheckUnchanged() override { return base_->CheckUnchanged(); }

 private:
  struct Req {
    uint64_t off;
    void* buf;
    size_t len;
    ReadDone done;
    std::chrono::steady_clock::time_point due;
  };
  static void Raise(std::atomic<uint64_t>* m, uint64_t v) {
    uint64_t cur = m->load();
    while (v > cur && !m->compare_exchange_weak(cur, v)) {
    }
  }
  bool Broken() const { return down_.load() || failing_.load(); }

  void Finish(Req r, Status forced) {
    Status s = forced;
    if (s.ok()) {
      in_finish_ = true;
      s = Read(r.off, r.buf, r.len);
      in_finish_ = false;
    }
    if (!s.ok()) failed_reads_++;
    inflight_bytes_ -= r.len;
    r.done(std::move(s));
  }

  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      if (closing_) {
        std::deque<Req> all;
        all.swap(pending_);
        pending_count_ = 0;
        l.unlock();
        for (Req& r : all) Finish(std::move(r), Status::IoError("fake source: closed", EIO));
        return;
      }
      auto now = std::chrono::steady_clock::now();
      std::deque<Req> due;
      if (!hold_) {
        for (auto it = pending_.begin(); it != pending_.end();) {
          if (it->due <= now) {
            due.push_back(std::move(*it));
            it = pending_.erase(it);
          } else {
            ++it;
          }
        }
        pending_count_ = pending_.size();
      }
      if (!due.empty()) {
        l.unlock();
        for (Req& r : due) Finish(std::move(r), Status::OK());
        l.lock();
        continue;
      }
      auto next = now + std::chrono::milliseconds(50);
      if (!hold_) {
        for (const Req& r : pending_) next = std::min(next, r.due);
      }
      cv_.wait_until(l, next);
    }
  }

  std::shared_ptr<Device> base_;
  std::atomic<uint64_t> delay_us_{0};
  std::atomic<bool> inline_{false}, down_{false}, failing_{false}, all_data_{false};
  std::atomic<uint64_t> reads_{0}, failed_reads_{0}, inflight_bytes_{0}, max_inflight_bytes_{0};
  std::atomic<uint64_t> pending_count_{0}, max_read_len_{0};
  std::atomic<uint64_t> link_bps_{0}, max_ahead_{0};
  std::atomic<bool> shared_{false};
  std::atomic<uint64_t> releases_{0}, pending_at_release_{0};
  std::atomic<bool> released_{false};
  std::function<void()> gate_;                         // GUARDED_BY(mu_)
  static inline thread_local bool in_finish_ = false;  // Finish reads the base through Read
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Req> pending_;  // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point link_free_{};  // GUARDED_BY(mu_); link mode
  bool hold_ = false;        // GUARDED_BY(mu_)
  bool closing_ = false;     // GUARDED_BY(mu_)
  std::thread thread_;       // last: starts after everything above exists
};

}  // namespace clonefs::test
