#include "devices/direct_io.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "devices/posix_io.h"

namespace clonefs {

namespace {

constexpr uint64_t AlignDown(uint64_t x) { return x & ~(DirectIo::kAlign - 1); }
constexpr uint64_t AlignUp(uint64_t x) { return AlignDown(x + DirectIo::kAlign - 1); }
bool IsAligned(uint64_t off, size_t len, const void* buf) {
  return ((off | len | reinterpret_cast<uintptr_t>(buf)) & (DirectIo::kAlign - 1)) == 0;
}
Status NoMemory(const std::string& name) {
  return Status::IoError("out of memory for an O_DIRECT bounce buffer for " + name, ENOMEM);
}

// The calling thread's bounce buffer (kBounceSize bytes, aligned), allocated
// on first use and kept for the thread's life so that unaligned requests do
// not map and unmap a fresh megabyte each. nullptr if memory is exhausted.
uint8_t* ThreadBounce() {
  thread_local posix_io::AlignedBuffer buf(DirectIo::kBounceSize, DirectIo::kAlign);
  if (buf.size() == 0) buf = posix_io::AlignedBuffer(DirectIo::kBounceSize, DirectIo::kAlign);
  return buf.size() == 0 ? nullptr : buf.data();
}

}  // namespace

DirectIo::DirectIo(int direct_fd, int buffered_fd, uint64_t size, std::string name)
    : direct_fd_(direct_fd),
      buffered_fd_(buffered_fd),
      direct_end_(AlignDown(size)),
      name_(std::move(name)) {}

Status DirectIo::Read(uint64_t off, void* buf, size_t len) {
  auto* p = static_cast<uint8_t*>(buf);
  uint64_t end = off + len;
  if (end > direct_end_) {
    uint64_t tail = std::max(off, direct_end_);
    CLONEFS_RETURN_IF_ERROR(
        posix_io::PreadFull(buffered_fd_, tail, p + (tail - off), end - tail, name_));
    len = tail - off;
  }
  if (len == 0) return Status::OK();
  return ReadAligned(off, p, len);
}

Status DirectIo::Write(uint64_t off, const void* buf, size_t len) {
  const auto* p = static_cast<const uint8_t*>(buf);
  uint64_t end = off + len;
  if (end > direct_end_) {
    uint64_t tail = std::max(off, direct_end_);
    CLONEFS_RETURN_IF_ERROR(
        posix_io::PwriteFull(buffered_fd_, tail, p + (tail - off), end - tail, name_));
    len = tail - off;
  }
  if (len == 0) return Status::OK();
  return WriteAligned(off, p, len);
}

Status DirectIo::ReadAligned(uint64_t off, uint8_t* buf, size_t len) {
  if (IsAligned(off, len, buf)) return posix_io::PreadFull(direct_fd_, off, buf, len, name_);
  uint64_t end = off + len;
  uint64_t first = AlignDown(off), last = AlignUp(end);
  uint8_t* bounce = ThreadBounce();
  if (bounce == nullptr) return NoMemory(name_);
  for (uint64_t c = first; c < last; c += kBounceSize) {
    uint64_t ce = std::min(last, c + kBounceSize);
    CLONEFS_RETURN_IF_ERROR(posix_io::PreadFull(direct_fd_, c, bounce, ce - c, name_));
    uint64_t lo = std::max(c, off), hi = std::min(ce, end);
    std::memcpy(buf + (lo - off), bounce + (lo - c), hi - lo);
  }
  return Status::OK();
}

Status DirectIo::WriteAligned(uint64_t off, const uint8_t* buf, size_t len) {
  if (IsAligned(off, len, buf)) return posix_io::PwriteFull(direct_fd_, off, buf, len, name_);
  uint64_t end = off + len;
  uint64_t first = AlignDown(off), last = AlignUp(end);
  uint8_t* bounce = ThreadBounce();
  if (bounce == nullptr) return NoMemory(name_);
  for (uint64_t c = first; c < last; c += kBounceSize) {
    uint64_t ce = std::min(last, c + kBounceSize);
    uint64_t lo = std::max(c, off), hi = std::min(ce, end);
    uint64_t head = c / kAlign, tail = (ce - 1) / kAlign;
    bool head_partial = lo != c;
    bool tail_partial = hi != ce;
    // Lock the partially covered blocks' stripes, lower index first.
    std::unique_lock<std::mutex> l1, l2;
    size_t s1 = head % kStripes, s2 = tail % kStripes;
    if (head_partial && tail_partial) {
      l1 = std::unique_lock(stripes_[std::min(s1, s2)]);
      if (s1 != s2) l2 = std::unique_lock(stripes_[std::max(s1, s2)]);
    } else if (head_partial) {
      l1 = std::unique_lock(StripeOf(head));
    } else if (tail_partial) {
      l1 = std::unique_lock(StripeOf(tail));
    }
    if (head_partial) {
      CLONEFS_RETURN_IF_ERROR(posix_io::PreadFull(direct_fd_, c, bounce, kAlign, name_));
    }
    if (tail_partial && (tail != head || !head_partial)) {
      CLONEFS_RETURN_IF_ERROR(
          posix_io::PreadFull(direct_fd_, ce - kAlign, bounce + (ce - kAlign - c), kAlign, name_));
    }
    std::memcpy(bounce + (lo - c), buf + (lo - off), hi - lo);
    CLONEFS_RETURN_IF_ERROR(posix_io::PwriteFull(direct_fd_, c, bounce, ce - c, name_));
  }
  return Status::OK();
}

}  // namespace clonefs
