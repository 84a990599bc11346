#include "copier/copy_buffer_pool.h"

namespace clonefs {

Result<std::unique_ptr<CopyBuffer>> CopyBufferPool::Acquire(uint64_t len) {
  std::unique_ptr<CopyBuffer> b;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!idle_.empty()) {
      b = std::move(idle_.back());
      idle_.pop_back();
      idle_bytes_ -= b->capacity();
    }
  }
  if (!b) b = std::make_unique<CopyBuffer>();
  Result<size_t> r = b->Reserve(len);
  if (!r.ok()) {
    Release(std::move(b));
    return r.status();
  }
  return b;
}

void CopyBufferPool::Release(std::unique_ptr<CopyBuffer> buf) {
  if (!buf || buf->capacity() == 0) return;
  std::lock_guard<std::mutex> l(mu_);
  idle_bytes_ += buf->capacity();
  idle_.push_back(std::move(buf));
}

void CopyBufferPool::Trim() {
  std::vector<std::unique_ptr<CopyBuffer>> drop;
  std::lock_guard<std::mutex> l(mu_);
  drop.swap(idle_);
  idle_bytes_ = 0;
}

uint64_t CopyBufferPool::idle_bytes() const {
  std::lock_guard<std::mutex> l(mu_);
  return idle_bytes_;
}

}  // namespace clonefs
