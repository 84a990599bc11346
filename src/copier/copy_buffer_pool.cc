#include "copier/copy_buffer_pool.h"

#include <algorithm>

namespace clonefs {

uint64_t CopyBufferPool::SizeClass(uint64_t len) {
  if (len <= kLinearClassesUpTo) {  // multiples of kMinClass
    return std::max<uint64_t>((len + kMinClass - 1) / kMinClass, 1) * kMinClass;
  }
  uint64_t c = kLinearClassesUpTo;
  while (c < len && c < kMaxCopyChunk) c <<= 1;
  return std::min<uint64_t>(c, kMaxCopyChunk);
}

Result<std::unique_ptr<CopyBuffer>> CopyBufferPool::Acquire(uint64_t len) {
  const uint64_t want = std::min<uint64_t>(std::max<uint64_t>(len, 1), kMaxCopyChunk);
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = idle_.lower_bound(want);
    if (it != idle_.end()) {
      std::unique_ptr<CopyBuffer> b = std::move(it->second);
      idle_.erase(it);
      idle_bytes_ -= b->capacity();
      return b;
    }
  }
  auto b = std::make_unique<CopyBuffer>();
  Result<size_t> r = b->Reserve(SizeClass(want));
  if (!r.ok()) return r.status();
  return b;
}

void CopyBufferPool::Release(std::unique_ptr<CopyBuffer> buf) {
  if (!buf || buf->capacity() == 0) return;
  const uint64_t cap = buf->capacity();
  std::lock_guard<std::mutex> l(mu_);
  if (idle_bytes_ + cap > max_idle_bytes_) return;  // buf is freed as it goes, after the lock
  idle_bytes_ += cap;
  idle_.emplace(cap, std::move(buf));
}

void CopyBufferPool::Trim() {
  std::multimap<uint64_t, std::unique_ptr<CopyBuffer>> drop;
  std::lock_guard<std::mutex> l(mu_);
  drop.swap(idle_);
  idle_bytes_ = 0;
}

uint64_t CopyBufferPool::idle_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return idle_bytes_;
}

}  // namespace clonefs
