// Internal to the device layer (and its tests): positional I/O loops that
// retry EINTR and short transfers, page-aligned buffers for O_DIRECT, and
// what the page cache holds of a file.
//
// These are the only wrappers around pread/pwrite in clonefs; errors become a
// Status here, with the operation, the object's name and the offset.
//
// THREAD SAFETY: the functions are reentrant (positional I/O only);
// AlignedBuffer is a plain owning value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"

namespace clonefs::posix_io {

// "<op> <name> at <off>", the context every device error message carries.
std::string Where(const char* op, const std::string& name, uint64_t off);

// Reads exactly `len` bytes at `off`. Retries EINTR and short reads; end of
// file before `len` bytes is an IoError that says so (EIO).
Status PreadFull(int fd, uint64_t off, void* buf, size_t len, const std::string& name);
// Writes exactly `len` bytes at `off`. Retries EINTR and short writes.
Status PwriteFull(int fd, uint64_t off, const void* buf, size_t len, const std::string& name);

// Pages of a file range in the page cache (cachestat(2), Linux 6.5).
struct CacheState {
  uint64_t cached = 0;
  uint64_t dirty = 0;
};
// Of [off, off+len) of fd's file; nullopt where the kernel cannot tell
// (before 6.5, or a file system that does not say).
std::optional<CacheState> Cachestat(int fd, uint64_t off, uint64_t len);

// A heap buffer aligned to `alignment` (a power of two), for O_DIRECT.
class AlignedBuffer {
 public:
  // Returns an empty buffer (data() == nullptr) if memory is exhausted.
  AlignedBuffer(size_t size, size_t alignment);
  uint8_t* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

}  // namespace clonefs::posix_io
