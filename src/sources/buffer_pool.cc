#include "sources/buffer_pool.h"

namespace clonefs {
namespace {
constexpr size_t kMinClassBytes = size_t{64} << 10;
}  // namespace

BufferPool::Buffer& BufferPool::Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    Reset();
    pool_ = std::move(o.pool_);
    data_ = o.data_;
    capacity_ = o.capacity_;
    o.data_ = nullptr;
    o.capacity_ = 0;
  }
  return *this;
}

void BufferPool::Buffer::Reset() {
  if (data_ != nullptr) pool_->Put(data_, capacity_);
  data_ = nullptr;
  capacity_ = 0;
  pool_.reset();
}

size_t BufferPool::ClassOf(size_t len) {
  size_t c = 0;
  for (size_t cap = kMinClassBytes; cap < len; cap <<= 1) ++c;
  return c;
}

BufferPool::Buffer BufferPool::Get(size_t len) {
  const size_t c = ClassOf(len);
  Buffer b;
  b.pool_ = shared_from_this();
  b.capacity_ = kMinClassBytes << c;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (c < free_.size() && !free_[c].empty()) {
      b.data_ = free_[c].back();
      free_[c].pop_back();
      pooled_ -= b.capacity_;
      return b;
    }
  }
  b.data_ = new uint8_t[b.capacity_];  // uninitialized: the server fills it
  return b;
}

void BufferPool::Put(uint8_t* data, size_t capacity) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (pooled_ + capacity <= max_pooled_) {
      const size_t c = ClassOf(capacity);
      if (free_.size() <= c) free_.resize(c + 1);
      free_[c].push_back(data);
      pooled_ += capacity;
      return;
    }
  }
  delete[] data;
}

BufferPool::~BufferPool() {
  for (auto& list : free_) {
    for (uint8_t* p : list) delete[] p;
  }
}

}  // namespace clonefs
