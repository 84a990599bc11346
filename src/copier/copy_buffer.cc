#include "copier/copy_buffer.h"

#include <algorithm>
#include <new>

namespace clonefs {

size_t CopyBuffer::Reserve(uint64_t n) {
  size_t want = static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(n, 1), kMaxCopyChunk));
  if (capacity_ >= want) return capacity_;
  size_t bytes = (want + 4095) & ~size_t{4095};
  void* p = nullptr;
  if (posix_memalign(&p, 4096, bytes) != 0) throw std::bad_alloc();
  data_.reset(static_cast<uint8_t*>(p));
  capacity_ = bytes;
  return capacity_;
}

}  // namespace clonefs
