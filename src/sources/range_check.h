// RangeCheck: catches a web server that answers an HTTP Range request with
// the whole file (status 200 instead of 206 Partial Content), internal to
// nbd_device for http(s):// sources.
//
// nbdkit's curl plugin (1.32, and later ones) does not look at the status:
// it copies the first bytes of whatever body comes into the answer. A server
// that stops honouring Range after the mount (reconfigured, a proxy or CDN
// in front of it, another backend behind a load balancer) then answers a
// read at any offset with the file's first bytes, and clonefs would hydrate
// them: silently wrong data, a "complete" clone of garbage.
//
// The signature is exact: an answer for offset X != 0 that starts with the
// file's first bytes. A genuine copy of them elsewhere in the image is
// possible, so such an answer is only suspect; a one-byte read at
// probe_offset() (where the file's bytes start to differ from its first
// byte) then tells the two apart: a server that ignores Range answers it
// with the file's first byte.
//
// THREAD SAFETY: immutable after construction; every method is const.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace clonefs {

class RangeCheck {
 public:
  // `head`: the source's first bytes, read at offset 0 (which any server
  // answers right). Disarmed (armed() false) when they hold one byte value
  // only (all zeros, say): no answer could then be told from them.
  explicit RangeCheck(std::vector<uint8_t> head);

  bool armed() const { return probe_offset_ != 0; }
  // The first offset whose byte differs from the first byte, and that byte.
  // REQUIRES: armed().
  uint64_t probe_offset() const { return probe_offset_; }
  uint8_t probe_byte() const { return head_[probe_offset_]; }

  // True if `data`, the answer to a request of `len` bytes at `off`, looks
  // like the file's start: off != 0, the answer reaches past probe_offset(),
  // and its first min(len, head size) bytes equal the head's. Always false
  // when disarmed.
  bool LooksLikeTheStart(uint64_t off, const uint8_t* data, size_t len) const;

  // True if `probed`, the byte a server answered for probe_offset(), says
  // it ignores Range.
  bool ProbeSaysIgnored(uint8_t probed) const { return probed != probe_byte(); }

 private:
  std::vector<uint8_t> head_;
  uint64_t probe_offset_ = 0;  // 0: disarmed
};

}  // namespace clonefs
