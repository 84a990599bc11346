#include "copier/zero_blocks.h"

#include <algorithm>
#include <cstring>

namespace clonefs {

bool AllZero(const uint8_t* p, size_t n) {
  size_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(p + i) & 7) != 0; ++i) {
    if (p[i] != 0) return false;
  }
  // Word-at-a-time OR; the compiler vectorises the loop.
  for (; i + 64 <= n; i += 64) {
    uint64_t w[8];
    std::memcpy(w, p + i, sizeof w);
    if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0) return false;
  }
  for (; i < n; ++i) {
    if (p[i] != 0) return false;
  }
  return true;
}

namespace {

bool ZeroBlock(const uint8_t* p, size_t n) {
  if (n >= 8) {
    uint64_t head;
    std::memcpy(&head, p, 8);
    if (head != 0) return false;  // the common case for data
  }
  return AllZero(p, n);
}

}  // namespace

Status ForEachZeroRun(uint64_t off, const uint8_t* data, size_t len,
                      const std::function<Status(uint64_t, uint64_t, bool)>& fn) {
  const uint64_t end = off + len;
  uint64_t run_start = off;
  bool run_zero = false;
  for (uint64_t pos = off; pos < end;) {
    const uint64_t next = std::min(end, (pos / kZeroBlock + 1) * kZeroBlock);
    const bool zero = ZeroBlock(data + (pos - off), next - pos);
    if (pos == off) {
      run_zero = zero;
    } else if (zero != run_zero) {
      Status s = fn(run_start, pos - run_start, run_zero);
      if (!s.ok()) return s;
      run_start = pos;
      run_zero = zero;
    }
    pos = next;
  }
  if (end > off) return fn(run_start, end - run_start, run_zero);
  return Status::OK();
}

}  // namespace clonefs
