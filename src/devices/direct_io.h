// Internal to the device layer: byte-granular I/O over a file opened with
// O_DIRECT, for PosixDevice.
//
// STRUCTURE: requests whose offset, length and buffer are all 4 KiB aligned go
// straight to the O_DIRECT descriptor. Others go through an aligned bounce
// buffer (at most 1 MiB at a time, one per thread, kept for the thread's
// life): reads read the aligned-extended range and
// copy out; writes read-modify-write the partially covered first and last
// 4 KiB blocks. The file's last partial 4 KiB block (when the size is not a
// multiple of 4 KiB) is reached through the ordinary descriptor, so that an
// aligned write never extends the file or runs past a block device's end.
//
// THREAD SAFETY: all methods may be called concurrently. A read-modify-write
// holds the stripe mutex of each partially covered block it rewrites, so two
// concurrent writes to disjoint bytes of one block never undo each other
// (PosixDevice::Zero sends its partly covered blocks through Write for the
// same reason: a fallocate beside a read-modify-write would be undone).
// Concurrent writes to overlapping bytes give an unspecified mix, as with any
// file; a full-block aligned write takes no lock.
// LOCK ORDER: stripes_ in increasing index; no other lock is held meanwhile.
//
// LIFECYCLE: the descriptors belong to the caller and must outlive this.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/status.h"

namespace clonefs {

class DirectIo {
 public:
  static constexpr uint64_t kAlign = 4096;
  static constexpr uint64_t kBounceSize = 1 << 20;

  // direct_fd: opened with O_DIRECT; buffered_fd: the same file without it.
  // `size` is the file's size; `name` is used in messages.
  DirectIo(int direct_fd, int buffered_fd, uint64_t size, std::string name);

  // REQUIRES: off + len <= size.
  Status Read(uint64_t off, void* buf, size_t len);
  Status Write(uint64_t off, const void* buf, size_t len);

 private:
  static constexpr size_t kStripes = 64;

  // REQUIRES: off + len <= direct_end_.
  Status ReadAligned(uint64_t off, uint8_t* buf, size_t len);
  Status WriteAligned(uint64_t off, const uint8_t* buf, size_t len);
  std::mutex& StripeOf(uint64_t block) { return stripes_[block % kStripes]; }

  const int direct_fd_;
  const int buffered_fd_;
  const uint64_t direct_end_;  // size rounded down to kAlign
  const std::string name_;
  // stripes_[i] serializes read-modify-write of blocks b with b % kStripes == i.
  std::mutex stripes_[kStripes];
};

}  // namespace clonefs
