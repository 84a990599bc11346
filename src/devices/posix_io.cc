#include "devices/posix_io.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace clonefs::posix_io {

std::string Where(const char* op, const std::string& name, uint64_t off) {
  std::string s(op);
  s += ' ';
  s += name;
  s += " at ";
  s += std::to_string(off);
  return s;
}

std::optional<CacheState> Cachestat(int fd, uint64_t off, uint64_t len) {
#ifndef __NR_cachestat
#define __NR_cachestat 451  // the same number on every architecture
#endif
  struct {
    uint64_t off, len;
  } range{off, len};
  struct {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
  } cs{};
  if (::syscall(__NR_cachestat, fd, &range, &cs, 0) != 0) return std::nullopt;
  return CacheState{cs.nr_cache, cs.nr_dirty};
}

Status PreadFull(int fd, uint64_t off, void* buf, size_t len, const std::string& name) {
  auto* p = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pread(fd, p + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, Where("pread", name, off + done));
    }
    if (n == 0) {
      return Status::IoError("short read from " + name + " at " + std::to_string(off) +
                                 ": end of file after " + std::to_string(done) + " of " +
                                 std::to_string(len) + " bytes (did the file shrink?)",
                             EIO);
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

Status PwriteFull(int fd, uint64_t off, const void* buf, size_t len, const std::string& name) {
  const auto* p = static_cast<const uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd, p + done, len - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, Where("pwrite", name, off + done));
    }
    if (n == 0) {
      return Status::IoError("short write to " + name + " at " + std::to_string(off + done) +
                                 ": the kernel accepted 0 bytes",
                             EIO);
    }
    done += static_cast<size_t>(n);
  }
  return Status::OK();
}

AlignedBuffer::AlignedBuffer(size_t size, size_t alignment) {
  void* p = nullptr;
  if (::posix_memalign(&p, alignment, size) == 0) {
    data_.reset(static_cast<uint8_t*>(p));
    size_ = size;
  }
}

}  // namespace clonefs::posix_io
