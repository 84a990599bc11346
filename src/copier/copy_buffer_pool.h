// CopyBufferPool: the copy buffers of the background copier's pieces in flight,
// kept for reuse so that a steady copy does not map and fault fresh memory
// for every piece.
//
// Fresh memory is dear: each 4 KiB page costs a fault when the kernel first
// fills it and, on some virtual machines, another when user space first
// reads it (measured at ~27 us a page together on a 2-vCPU guest: 150 MB/s,
// slower than the copier's source). So a buffer handed back is reused as it
// is, never freed to be reallocated at another size:
//   - buffers come in size classes (SizeClass): multiples of 64 KiB up to
//     1 MiB, then powers of two up to kMaxCopyChunk; a new buffer gets the
//     class of the length asked for;
//   - Acquire takes the idle buffer of the smallest capacity that fits
//     (any class at or above the length), else allocates a new one.
// The pool holds only buffers that were handed back, and at most
// `max_idle_bytes` of them: a buffer handed back beyond that is freed (a
// workload whose pieces keep growing would otherwise leave idle buffers of
// every smaller class behind). Trim() frees them all (the copier does so
// once it has been idle for a while: background_copier.h).
//
// ERRORS: a buffer that cannot be had is IoError(ENOMEM) (CopyBuffer's rule:
// allocation failure is a Status, never an exception).
//
// THREAD SAFETY: all methods may be called from any thread (internal mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "copier/copy_buffer.h"

namespace clonefs {

class CopyBufferPool {
 public:
  explicit CopyBufferPool(uint64_t max_idle_bytes = UINT64_MAX) : max_idle_bytes_(max_idle_bytes) {}

  static constexpr uint64_t kMinClass = 64 << 10;
  static constexpr uint64_t kLinearClassesUpTo = 1 << 20;
  // The capacity a new buffer for `len` bytes gets: len rounded up to a
  // multiple of kMinClass up to kLinearClassesUpTo (the copier's pieces
  // are whole 64 KiB regions, and the profile's are of every size from
  // one region to a batch), then the smallest power of two >= len, at most
  // kMaxCopyChunk.
  static uint64_t SizeClass(uint64_t len);

  // A buffer of at least min(len, kMaxCopyChunk) bytes (see above).
  Result<std::unique_ptr<CopyBuffer>> Acquire(uint64_t len);
  void Release(std::unique_ptr<CopyBuffer> buf);
  // Frees every buffer the pool holds.
  void Trim();
  // Bytes held by the pool (not in use).
  uint64_t idle_bytes() const;

 private:
  const uint64_t max_idle_bytes_;
  mutable std::mutex mu_;
  // Idle buffers by capacity.
  std::multimap<uint64_t, std::unique_ptr<CopyBuffer>> idle_;  // GUARDED_BY(mu_)
  uint64_t idle_bytes_ = 0;                                    // GUARDED_BY(mu_)
};

}  // namespace clonefs
