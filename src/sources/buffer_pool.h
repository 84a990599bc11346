// BufferPool: reusable read buffers for an NBD source's pieces (internal to
// nbd_device). Every piece reads into a buffer of its own (nbd_device.h);
// allocating a fresh one per piece costs a page fault per 4 KiB on every
// request, which at hundreds of MiB/s is a large share of the CPU. Buffers
// come in power-of-two classes from 64 KiB up, and at most `max_pooled_bytes`
// are kept for reuse; the rest are freed.
//
// THREAD SAFETY: thread-safe (one mutex, held only to push or pop a free
// list). LIFECYCLE: buffers may be returned after the pool is gone (pieces
// keep a shared_ptr to it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace clonefs {

class BufferPool : public std::enable_shared_from_this<BufferPool> {
 public:
  explicit BufferPool(size_t max_pooled_bytes) : max_pooled_(max_pooled_bytes) {}

  // A buffer returned to the pool when destroyed.
  class Buffer {
   public:
    Buffer() = default;
    Buffer(Buffer&& o) noexcept { *this = std::move(o); }
    Buffer& operator=(Buffer&& o) noexcept;
    ~Buffer() { Reset(); }
    uint8_t* get() const { return data_; }
    void Reset();

   private:
    friend class BufferPool;
    std::shared_ptr<BufferPool> pool_;
    uint8_t* data_ = nullptr;
    size_t capacity_ = 0;
  };

  ~BufferPool();

  // A buffer of at least `len` bytes (uninitialized).
  Buffer Get(size_t len);

 private:
  static size_t ClassOf(size_t len);
  void Put(uint8_t* data, size_t capacity);

  const size_t max_pooled_;
  std::mutex mu_;
  std::vector<std::vector<uint8_t*>> free_;  // GUARDED_BY(mu_); by class
  size_t pooled_ = 0;                        // GUARDED_BY(mu_); bytes in free_
};

}  // namespace clonefs
