#include "copier/copy_buffer.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <string>

namespace clonefs {

namespace {
std::atomic<size_t> g_allocation_limit{SIZE_MAX};
}  // namespace

void CopyBuffer::SetAllocationLimitForTesting(size_t bytes) { g_allocation_limit.store(bytes); }

Result<size_t> CopyBuffer::Reserve(uint64_t n) {
  size_t want = static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(n, 1), kMaxCopyChunk));
  if (capacity_ >= want) return capacity_;
  size_t bytes = (want + 4095) & ~size_t{4095};
  void* p = nullptr;
  if (bytes > g_allocation_limit.load(std::memory_order_relaxed) ||
      posix_memalign(&p, 4096, bytes) != 0) {
    return Status::IoError("out of memory for a " + std::to_string(bytes) +
                               "-byte copy buffer (free some memory, or use a smaller region "
                               "size)",
                           ENOMEM);
  }
  data_.reset(static_cast<uint8_t*>(p));
  capacity_ = bytes;
  return capacity_;
}

}  // namespace clonefs
