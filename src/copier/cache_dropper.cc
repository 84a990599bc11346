#include "copier/cache_dropper.h"

#include <algorithm>

namespace clonefs {

CacheDropper::CacheDropper(Device* dest, uint64_t lag_bytes)
    : dest_(dest),
      active_(dest != nullptr && dest->PageCached()),
      lag_bytes_(lag_bytes),
      cap_bytes_(std::max<uint64_t>(lag_bytes * kPendingCapFactor, 1 << 20)) {
  if (active_) thread_ = std::thread([this] { Run(); });
}

CacheDropper::~CacheDropper() {
  if (!active_) return;
  DropAll();
  {
    std::lock_guard<std::mutex> l(mu_);
    exit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void CacheDropper::Written(uint64_t off, uint64_t len) {
  if (!active_ || len == 0) return;
  std::unique_lock<std::mutex> l(mu_);
  // Adjacent ranges (a unit written piece by piece) become one.
  if (!pending_.empty() && pending_.back().first + pending_.back().second == off) {
    pending_.back().second += len;
  } else {
    pending_.emplace_back(off, len);
  }
  pending_bytes_ += len;
  pending_any_.store(true, std::memory_order_relaxed);
  if (pending_bytes_ <= lag_bytes_) return;
  cv_.notify_all();
  // The disk is far behind: wait for it (this writer's own range may be
  // what has to go first, so the wait is for room, not for this range).
  cv_.wait(l, [&] { return pending_bytes_ <= cap_bytes_ || exit_; });
}

void CacheDropper::DropAll() {
  if (!active_) return;
  std::unique_lock<std::mutex> l(mu_);
  ++drain_gen_;
  cv_.notify_all();
  cv_.wait(l, [&] { return pending_bytes_ == 0; });
}

uint64_t CacheDropper::pending_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return pending_bytes_;
}

void CacheDropper::Run() {
  std::unique_lock<std::mutex> l(mu_);
  uint64_t drained_gen = 0;
  while (true) {
    cv_.wait(l, [&] {
      return exit_ || drain_gen_ != drained_gen ||
             (pending_bytes_ > lag_bytes_ && !pending_.empty());
    });
    if (exit_ && pending_.empty()) return;
    const bool draining = drain_gen_ != drained_gen;
    if (pending_.empty()) {  // a drain with nothing left
      drained_gen = drain_gen_;
      cv_.notify_all();
      continue;
    }
    if (!draining && pending_bytes_ <= lag_bytes_) continue;
    const Range r = pending_.front();
    pending_.pop_front();
    l.unlock();
    dest_->DropCached(r.first, r.second);  // waits for the disk
    l.lock();
    pending_bytes_ -= r.second;  // counted until evicted: DropAll waits for it
    pending_any_.store(pending_bytes_ != 0, std::memory_order_relaxed);
    cv_.notify_all();            // DropAll, and writers waiting for room
  }
}

}  // namespace clonefs
