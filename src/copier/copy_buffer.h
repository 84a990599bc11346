// CopyBuffer: a page-aligned byte buffer that grows on demand up to a cap.
// Aligned so that O_DIRECT devices need no bounce buffer.
//
// ERRORS: running out of memory is a Status (IoError carrying ENOMEM, which
// the FUSE edge answers as ENOMEM), never an exception: buffers are grown on
// FUSE worker threads, and an exception across libfuse's C frames would end
// the daemon.
//
// THREAD SAFETY: none; one owner (a copier worker or one request).
// SetAllocationLimitForTesting may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "base/result.h"

namespace clonefs {

// Largest buffer a single copy uses; larger regions or units are copied in
// chunks of this size (bounded memory, SPEC §7).
inline constexpr uint64_t kMaxCopyChunk = 8ull << 20;  // 8 MiB

class CopyBuffer {
 public:
  CopyBuffer() = default;
  // Makes capacity() >= min(n, kMaxCopyChunk) and returns the usable size.
  // Errors: IoError(ENOMEM) if the memory cannot be had; the buffer then
  // keeps what it held.
  Result<size_t> Reserve(uint64_t n);
  uint8_t* data() { return data_.get(); }
  size_t capacity() const { return capacity_; }

  // Test-only: every later allocation of more than `bytes` fails as if memory
  // were exhausted. SIZE_MAX (the default) removes the limit.
  static void SetAllocationLimitForTesting(size_t bytes);

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t capacity_ = 0;
};

}  // namespace clonefs
