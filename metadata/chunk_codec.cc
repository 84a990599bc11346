#include "metadata/chunk_codec.h"

#include <bit>
#include <cstring>

namespace clonefs::metadata {
namespace {

void PutVarint32(std::string* out, uint32_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint32(std::string_view* in, uint32_t* v) {
  uint32_t result = 0;
  for (int shift = 0; shift <= 28 && !in->empty(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    result |= static_cast<uint32_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *v = result;
      return true;
    }
  }
  return false;
}

// First index >= i in [i, end) whose bit equals `want`, or end.
uint64_t FindBit(const uint64_t* words, uint64_t i, uint64_t end, bool want) {
  while (i < end) {
    uint64_t w = words[i / 64];
    if (!want) w = ~w;
    w &= ~0ull << (i % 64);
    if (w != 0) {
      const uint64_t found = (i & ~63ull) + std::countr_zero(w);
      return found < end ? found : end;
    }
    i = (i | 63) + 1;
  }
  return end;
}

void SetBits(uint64_t* words, uint64_t start, uint64_t len) {
  for (uint64_t i = start; i < start + len;) {
    const uint64_t bit = i % 64;
    const uint64_t n = std::min<uint64_t>(64 - bit, start + len - i);
    const uint64_t mask = n == 64 ? ~0ull : ((1ull << n) - 1) << bit;
    words[i / 64] |= mask;
    i += n;
  }
}

Status Bad(const std::string& why) { return Status::Corruption("bitmap chunk: " + why); }

}  // namespace

std::string EncodeChunkKey(uint64_t chunk) {
  std::string key(8, '\0');
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>(chunk >> (56 - 8 * i));
  return key;
}

Result<uint64_t> DecodeChunkKey(std::string_view key) {
  if (key.size() != 8) {
    return Status::Corruption("bitmap chunk key has " + std::to_string(key.size()) +
                              " bytes, expected 8");
  }
  uint64_t v = 0;
  for (char c : key) v = (v << 8) | static_cast<unsigned char>(c);
  return v;
}

bool ChunkIsZero(const uint64_t* words) {
  for (uint64_t i = 0; i < kWordsPerChunk; ++i) {
    if (words[i] != 0) return false;
  }
  return true;
}

std::string EncodeChunkValue(const uint64_t* words, uint64_t valid) {
  // Runs first: most chunks are a few long runs (sequential hydration).
  std::string runs(1, static_cast<char>(kTagRuns));
  uint64_t pos = 0, prev_end = 0;
  while (runs.size() <= kChunkBytes) {
    const uint64_t start = FindBit(words, pos, valid, true);
    if (start == valid) break;
    const uint64_t end = FindBit(words, start, valid, false);
    if (start == 0 && end == valid) return std::string(1, static_cast<char>(kTagFull));
    PutVarint32(&runs, static_cast<uint32_t>(start - prev_end));
    PutVarint32(&runs, static_cast<uint32_t>(end - start));
    prev_end = pos = end;
  }
  if (runs.size() <= kChunkBytes) return runs;
  std::string raw(1 + kChunkBytes, '\0');
  raw[0] = static_cast<char>(kTagRaw);
  for (uint64_t w = 0; w < kWordsPerChunk; ++w) {
    for (int b = 0; b < 8; ++b) raw[1 + w * 8 + b] = static_cast<char>(words[w] >> (8 * b));
  }
  return raw;
}

Status DecodeChunkValue(std::string_view value, uint64_t valid, uint64_t* words) {
  std::memset(words, 0, kChunkBytes);
  if (value.empty()) return Bad("empty value");
  const auto tag = static_cast<uint8_t>(value[0]);
  value.remove_prefix(1);
  switch (tag) {
    case kTagFull:
      if (!value.empty()) return Bad("full chunk with " + std::to_string(value.size()) + " extra bytes");
      SetBits(words, 0, valid);
      return Status::OK();
    case kTagRaw: {
      if (value.size() != kChunkBytes) {
        return Bad("raw bitmap of " + std::to_string(value.size()) + " bytes, expected " +
                   std::to_string(kChunkBytes));
      }
      for (uint64_t w = 0; w < kWordsPerChunk; ++w) {
        uint64_t x = 0;
        for (int b = 0; b < 8; ++b) x |= static_cast<uint64_t>(static_cast<unsigned char>(value[w * 8 + b])) << (8 * b);
        words[w] = x;
      }
      if (FindBit(words, valid, kRegionsPerChunk, true) != kRegionsPerChunk) {
        return Bad("raw bitmap marks regions beyond the end of the image");
      }
      if (ChunkIsZero(words)) return Bad("all-zero raw bitmap (zero chunks are never stored)");
      return Status::OK();
    }
    case kTagRuns: {
      uint64_t pos = 0;
      bool first = true;
      while (!value.empty()) {
        uint32_t gap = 0, len = 0;
        if (!GetVarint32(&value, &gap) || !GetVarint32(&value, &len)) return Bad("truncated run list");
        if (len == 0 || (gap == 0 && !first)) return Bad("non-canonical run list");
        if (pos + gap + len > valid) return Bad("run extends beyond the end of the chunk or image");
        SetBits(words, pos + gap, len);
        pos += gap + len;
        first = false;
      }
      if (first) return Bad("empty run list (zero chunks are never stored)");
      return Status::OK();
    }
    default:
      return Bad("unknown tag " + std::to_string(tag));
  }
}

}  // namespace clonefs::metadata
