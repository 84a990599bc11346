// CopyBuffer: a page-aligned byte buffer that grows on demand up to a cap.
// Aligned so that O_DIRECT devices need no bounce buffer.
//
// THREAD SAFETY: none; one owner (a copier worker or one request).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace clonefs {

// Largest buffer a single copy uses; larger regions or units are copied in
// chunks of this size (bounded memory, SPEC §7).
inline constexpr uint64_t kMaxCopyChunk = 8ull << 20;  // 8 MiB

class CopyBuffer {
 public:
  CopyBuffer() = default;
  // Makes capacity() >= min(n, kMaxCopyChunk). Returns the usable size.
  size_t Reserve(uint64_t n);
  uint8_t* data() { return data_.get(); }
  size_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t capacity_ = 0;
};

}  // namespace clonefs
