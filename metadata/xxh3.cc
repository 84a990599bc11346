#include "metadata/xxh3.h"

#include <array>
#include <cstring>

namespace clonefs::metadata {
namespace {

constexpr uint64_t kPrime32_1 = 0x9E3779B1u;
constexpr uint64_t kPrime32_2 = 0x85EBCA77u;
constexpr uint64_t kPrime32_3 = 0xC2B2AE3Du;
constexpr uint64_t kPrime64_1 = 0x9E3779B185EBCA87ull;
constexpr uint64_t kPrime64_2 = 0xC2B2AE3D27D4EB4Full;
constexpr uint64_t kPrime64_3 = 0x165667B19E3779F9ull;
constexpr uint64_t kPrime64_4 = 0x85EBCA77C2B2AE63ull;
constexpr uint64_t kPrime64_5 = 0x27D4EB2F165667C5ull;
constexpr uint64_t kPrimeMx1 = 0x165667919E3779F9ull;
constexpr uint64_t kPrimeMx2 = 0x9FB21C651E98DF25ull;

// XXH3's default secret (xxHash's XXH3_kSecret).
constexpr std::array<uint8_t, 192> kSecret = {
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb, 0x88, 0xd0, 0x65, 0x8b, 0x1b, 0x53, 0x2e, 0xa3,
    0x71, 0x64, 0x48, 0x97, 0xa2, 0x0d, 0xf9, 0x4e, 0x38, 0x19, 0xef, 0x46, 0xa9, 0xde, 0xac, 0xd8,
    0xa8, 0xfa, 0x76, 0x3f, 0xe3, 0x9c, 0x34, 0x3f, 0xf9, 0xdc, 0xbb, 0xc7, 0xc7, 0x0b, 0x4f, 0x1d,
    0x8a, 0x51, 0xe0, 0x4b, 0xcd, 0xb4, 0x59, 0x31, 0xc8, 0x9f, 0x7e, 0xc9, 0xd9, 0x78, 0x73, 0x64,
    0xea, 0xc5, 0xac, 0x83, 0x34, 0xd3, 0xeb, 0xc3, 0xc5, 0x81, 0xa0, 0xff, 0xfa, 0x13, 0x63, 0xeb,
    0x17, 0x0d, 0xdd, 0x51, 0xb7, 0xf0, 0xda, 0x49, 0xd3, 0x16, 0x55, 0x26, 0x29, 0xd4, 0x68, 0x9e,
    0x2b, 0x16, 0xbe, 0x58, 0x7d, 0x47, 0xa1, 0xfc, 0x8f, 0xf8, 0xb8, 0xd1, 0x7a, 0xd0, 0x31, 0xce,
    0x45, 0xcb, 0x3a, 0x8f, 0x95, 0x16, 0x04, 0x28, 0xaf, 0xd7, 0xfb, 0xca, 0xbb, 0x4b, 0x40, 0x7e,
};
constexpr size_t kStripe = 64;
constexpr size_t kStripesPerBlock = (kSecret.size() - kStripe) / 8;  // 16
constexpr size_t kBlock = kStripe * kStripesPerBlock;                // 1024 bytes

uint64_t Le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}
uint32_t Le32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
const uint8_t* Sec(size_t off) { return kSecret.data() + off; }

uint64_t Rotl(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }

// The 128-bit product of a and b, its two halves xored.
uint64_t MulFold(uint64_t a, uint64_t b) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

uint64_t Xxh64Avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kPrime64_2;
  h ^= h >> 29;
  h *= kPrime64_3;
  return h ^ (h >> 32);
}
uint64_t Avalanche(uint64_t h) {
  h ^= h >> 37;
  h *= kPrimeMx1;
  return h ^ (h >> 32);
}
uint64_t Rrmxmx(uint64_t h, uint64_t len) {
  h ^= Rotl(h, 49) ^ Rotl(h, 24);
  h *= kPrimeMx2;
  h ^= (h >> 35) + len;
  h *= kPrimeMx2;
  return h ^ (h >> 28);
}

uint64_t Mix16(const uint8_t* in, const uint8_t* sec) {
  return MulFold(Le64(in) ^ Le64(sec), Le64(in + 8) ^ Le64(sec + 8));
}

uint64_t Len0To16(const uint8_t* in, size_t len) {
  if (len > 8) {
    const uint64_t lo = Le64(in) ^ (Le64(Sec(24)) ^ Le64(Sec(32)));
    const uint64_t hi = Le64(in + len - 8) ^ (Le64(Sec(40)) ^ Le64(Sec(48)));
    return Avalanche(len + __builtin_bswap64(lo) + hi + MulFold(lo, hi));
  }
  if (len >= 4) {
    const uint64_t v = Le32(in + len - 4) + (static_cast<uint64_t>(Le32(in)) << 32);
    return Rrmxmx(v ^ (Le64(Sec(8)) ^ Le64(Sec(16))), len);
  }
  if (len > 0) {
    const uint32_t c = static_cast<uint32_t>(in[0]) << 16 |
                       static_cast<uint32_t>(in[len >> 1]) << 24 |
                       static_cast<uint32_t>(in[len - 1]) | static_cast<uint32_t>(len) << 8;
    return Xxh64Avalanche(c ^ static_cast<uint64_t>(Le32(Sec(0)) ^ Le32(Sec(4))));
  }
  return Xxh64Avalanche(Le64(Sec(56)) ^ Le64(Sec(64)));
}

uint64_t Len17To128(const uint8_t* in, size_t len) {
  uint64_t acc = len * kPrime64_1;
  if (len > 32) {
    if (len > 64) {
      if (len > 96) {
        acc += Mix16(in + 48, Sec(96));
        acc += Mix16(in + len - 64, Sec(112));
      }
      acc += Mix16(in + 32, Sec(64));
      acc += Mix16(in + len - 48, Sec(80));
    }
    acc += Mix16(in + 16, Sec(32));
    acc += Mix16(in + len - 32, Sec(48));
  }
  acc += Mix16(in, Sec(0));
  acc += Mix16(in + len - 16, Sec(16));
  return Avalanche(acc);
}

uint64_t Len129To240(const uint8_t* in, size_t len) {
  uint64_t acc = len * kPrime64_1;
  for (size_t i = 0; i < 8; ++i) acc += Mix16(in + 16 * i, Sec(16 * i));
  acc = Avalanche(acc);
  for (size_t i = 8; i < len / 16; ++i) acc += Mix16(in + 16 * i, Sec(16 * (i - 8) + 3));
  acc += Mix16(in + len - 16, Sec(136 - 17));
  return Avalanche(acc);
}

void Accumulate512(uint64_t* acc, const uint8_t* in, const uint8_t* sec) {
  for (size_t i = 0; i < 8; ++i) {
    const uint64_t v = Le64(in + 8 * i);
    const uint64_t k = v ^ Le64(sec + 8 * i);
    acc[i ^ 1] += v;
    acc[i] += (k & 0xffffffffu) * (k >> 32);
  }
}

void Scramble(uint64_t* acc, const uint8_t* sec) {
  for (size_t i = 0; i < 8; ++i) {
    uint64_t a = acc[i];
    a ^= a >> 47;
    a ^= Le64(sec + 8 * i);
    acc[i] = a * kPrime32_1;
  }
}

uint64_t Long(const uint8_t* in, size_t len) {
  uint64_t acc[8] = {kPrime32_3, kPrime64_1, kPrime64_2, kPrime64_3,
                     kPrime64_4, kPrime32_2, kPrime64_5, kPrime32_1};
  const size_t blocks = (len - 1) / kBlock;
  for (size_t b = 0; b < blocks; ++b) {
    for (size_t s = 0; s < kStripesPerBlock; ++s) {
      Accumulate512(acc, in + b * kBlock + s * kStripe, Sec(s * 8));
    }
    Scramble(acc, Sec(kSecret.size() - kStripe));
  }
  const size_t stripes = ((len - 1) - blocks * kBlock) / kStripe;
  for (size_t s = 0; s < stripes; ++s) {
    Accumulate512(acc, in + blocks * kBlock + s * kStripe, Sec(s * 8));
  }
  Accumulate512(acc, in + len - kStripe, Sec(kSecret.size() - kStripe - 7));
  uint64_t h = len * kPrime64_1;
  for (size_t i = 0; i < 4; ++i) {
    h += MulFold(acc[2 * i] ^ Le64(Sec(11 + 16 * i)), acc[2 * i + 1] ^ Le64(Sec(11 + 16 * i + 8)));
  }
  return Avalanche(h);
}

}  // namespace

uint64_t Xxh3_64(const void* data, size_t n) {
  const auto* in = static_cast<const uint8_t*>(data);
  if (n <= 16) return Len0To16(in, n);
  if (n <= 128) return Len17To128(in, n);
  if (n <= 240) return Len129To240(in, n);
  return Long(in, n);
}

}  // namespace clonefs::metadata
