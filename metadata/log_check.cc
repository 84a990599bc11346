#include "metadata/log_check.h"

#include <cstdint>

#include "metadata/crc32c.h"

namespace clonefs::metadata {
namespace {

constexpr size_t kBlockSize = 32768;
constexpr size_t kHeaderSize = 7;
constexpr uint8_t kZeroType = 0;
constexpr uint8_t kLastKnownType = 4;  // full, first, middle, last
constexpr uint32_t kMaskDelta = 0xa282ead8u;

struct Header {
  uint32_t masked_crc;
  size_t length;
  uint8_t type;
};

Header ParseHeader(std::string_view b, size_t off) {
  auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(b[off + i])); };
  return {byte(0) | byte(1) << 8 | byte(2) << 16 | byte(3) << 24, byte(4) | byte(5) << 8,
          static_cast<uint8_t>(byte(6))};
}

uint32_t Unmask(uint32_t masked) {
  const uint32_t rot = masked - kMaskDelta;
  return (rot >> 17) | (rot << 15);
}

// The CRC covers the type byte and the payload.
bool ChecksumMatches(std::string_view b, size_t off, const Header& h) {
  return Crc32c(0, b.data() + off + 6, h.length + 1) == Unmask(h.masked_crc);
}

// True if a record of a known type, inside its block and the file, with a
// matching checksum starts at some offset in [from, end of file).
bool ValidRecordFrom(std::string_view b, size_t from) {
  for (size_t q = from; q + kHeaderSize <= b.size(); ++q) {
    const Header h = ParseHeader(b, q);
    if (h.type == kZeroType || h.type > kLastKnownType) continue;
    if (kHeaderSize + h.length > kBlockSize - q % kBlockSize) continue;
    if (q + kHeaderSize + h.length > b.size()) continue;
    if (ChecksumMatches(b, q, h)) return true;
  }
  return false;
}

// True if the bytes from the payload of the record at `off` to the end of
// the file begin with a payload that matches its checksum: the record is
// whole and only its length field is wrong (a record cut short by a crash
// matches with probability 2^-32).
bool ChecksumMatchesShorter(std::string_view b, size_t off, const Header& h) {
  const uint32_t want = Unmask(h.masked_crc);
  uint32_t crc = Crc32c(0, b.data() + off + 6, 1);  // the type byte
  for (size_t p = off + kHeaderSize;; ++p) {
    if (crc == want) return true;
    if (p >= b.size()) return false;
    crc = Crc32c(crc, b.data() + p, 1);
  }
}

Status Damaged(const std::string& name, size_t off, const std::string& why) {
  return Status::Corruption(name + " is damaged at offset " + std::to_string(off) + ": " + why);
}

}  // namespace

Status CheckLogFraming(std::string_view b, const std::string& name) {
  size_t off = 0;
  while (off < b.size()) {
    const size_t block_left = kBlockSize - off % kBlockSize;
    if (block_left < kHeaderSize) {  // block padding
      off += block_left;
      continue;
    }
    if (b.size() - off < kHeaderSize) return Status::OK();  // last header cut short
    const Header h = ParseHeader(b, off);
    if (h.type == kZeroType && h.length == 0) {  // zero fill: RocksDB skips the block
      off += block_left;
      continue;
    }
    if (h.type > kLastKnownType) return Status::OK();  // not ours to judge: RocksDB's
    if (kHeaderSize + h.length > block_left) {
      return Damaged(name, off,
                     "a record of " + std::to_string(h.length) +
                         " bytes does not fit in its block (a damaged length)");
    }
    if (off + kHeaderSize + h.length > b.size()) {
      // Cut short by the end of the file: a crash while it was written,
      // unless the record is whole after all or a valid record follows (then
      // its length field is damaged, and RocksDB would drop it and all after
      // it as a torn tail).
      if (ChecksumMatchesShorter(b, off, h)) {
        return Damaged(name, off,
                       "a record's length reaches past the end of the file but "
                       "the record is whole (a damaged length)");
      }
      if (ValidRecordFrom(b, off + kHeaderSize)) {
        return Damaged(name, off,
                       "a record's length reaches past the end of the file but "
                       "valid records follow it (a damaged length)");
      }
      return Status::OK();
    }
    if (!ChecksumMatches(b, off, h)) return Damaged(name, off, "checksum mismatch");
    off += kHeaderSize + h.length;
  }
  return Status::OK();
}

}  // namespace clonefs::metadata
