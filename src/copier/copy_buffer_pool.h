// CopyBufferPool: the copy buffers of the background copier's pieces in flight,
// kept for reuse so that a steady copy does not map and fault fresh memory
// for every piece.
//
// The pool holds only buffers that were handed back, so what it keeps is at
// most what was in flight at the peak (bounded by the copier's in-flight
// target); Trim() frees them when the copier goes idle.
//
// ERRORS: a buffer that cannot be had is IoError(ENOMEM) (CopyBuffer's rule:
// allocation failure is a Status, never an exception).
//
// THREAD SAFETY: all methods may be called from any thread (internal mutex).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "copier/copy_buffer.h"

namespace clonefs {

class CopyBufferPool {
 public:
  // A buffer of at least min(len, kMaxCopyChunk) bytes.
  Result<std::unique_ptr<CopyBuffer>> Acquire(uint64_t len);
  void Release(std::unique_ptr<CopyBuffer> buf);
  // Frees every buffer the pool holds.
  void Trim();
  // Bytes held by the pool (not in use).
  uint64_t idle_bytes() const;

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<CopyBuffer>> idle_;  // GUARDED_BY(mu_)
  uint64_t idle_bytes_ = 0;                        // GUARDED_BY(mu_)
};

}  // namespace clonefs
