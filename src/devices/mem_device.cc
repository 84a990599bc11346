#include "devices/mem_device.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>

namespace clonefs {

namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kChunk = 64 * 1024;
constexpr uint64_t kBlocksPerChunk = kChunk / kBlock;  // 16: fits the bitmap
constexpr size_t kStripes = 64;

// STRUCTURE: the content is cut into 64 KiB chunks, allocated on the first
// write that touches them and freed when every block in them has been
// punched; an absent chunk reads as zeros, so a huge mostly-hole device costs
// only its data. Each chunk carries a bitmap of allocated 4 KiB blocks.
// INVARIANT: the bytes of an unallocated block are zero.
//
// THREAD SAFETY: chunk c belongs to stripe c % kStripes; the stripe's mutex
// guards its map and the bytes of its chunks (shared for reads, exclusive for
// writes). An operation takes one stripe at a time, chunk by chunk, so
// operations on different chunks run in parallel and a request spanning
// chunks is not atomic (like a file). NextData/NextHole answer from what they
// see chunk by chunk. LOCK ORDER: at most one stripe mutex is held at a time.
class MemDevice final : public Device {
 public:
  MemDevice(uint64_t size, bool read_only, std::string name)
      : size_(size), read_only_(read_only), name_(std::move(name)) {}

  uint64_t Size() const override { return size_; }
  bool ReadOnly() const override { return read_only_; }
  const std::string& Name() const override { return name_; }

  Status Read(uint64_t off, void* buf, size_t len) override {
    CLONEFS_RETURN_IF_ERROR(CheckRange("read", off, len));
    auto* out = static_cast<uint8_t*>(buf);
    ForEachChunk(off, len, [&](uint64_t c, uint64_t in, uint64_t n, uint64_t done) {
      Stripe& s = StripeOf(c);
      std::shared_lock lock(s.mu);
      auto it = s.chunks.find(c);
      if (it == s.chunks.end()) {
        std::memset(out + done, 0, n);
      } else {
        std::memcpy(out + done, it->second->data + in, n);
      }
    });
    return Status::OK();
  }

  Status Write(uint64_t off, const void* buf, size_t len) override {
    CLONEFS_RETURN_IF_ERROR(CheckWritable("write"));
    CLONEFS_RETURN_IF_ERROR(CheckRange("write", off, len));
    WriteUnchecked(off, static_cast<const uint8_t*>(buf), len);
    return Status::OK();
  }

  Status Flush() override { return Status::OK(); }

  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    CLONEFS_RETURN_IF_ERROR(CheckWritable("zero"));
    CLONEFS_RETURN_IF_ERROR(CheckRange("zero", off, len));
    if (mode == ZeroMode::kWriteZeros) {
      WriteUnchecked(off, nullptr, len);
      return Status::OK();
    }
    ForEachChunk(off, len, [&](uint64_t c, uint64_t in, uint64_t n, uint64_t) {
      Stripe& s = StripeOf(c);
      std::unique_lock lock(s.mu);
      auto it = s.chunks.find(c);
      if (it == s.chunks.end()) return;  // all hole already
      Chunk& ch = *it->second;
      std::memset(ch.data + in, 0, n);
      // Blocks covered completely (up to the device's end) become holes.
      uint64_t base = c * kChunk;
      for (uint64_t b = in / kBlock; b * kBlock < in + n; b++) {
        uint64_t bs = b * kBlock, be = std::min(bs + kBlock, size_ - base);
        if (bs >= in && be <= in + n) ch.allocated &= static_cast<uint16_t>(~(1u << b));
      }
      if (ch.allocated == 0) s.chunks.erase(it);
    });
    return Status::OK();
  }

  Result<uint64_t> NextData(uint64_t off) override {
    uint64_t c = off / kChunk;
    while (off < size_) {
      // Smallest allocated chunk >= c, over all stripes.
      uint64_t best = UINT64_MAX;
      for (Stripe& s : stripes_) {
        std::shared_lock lock(s.mu);
        auto it = s.chunks.lower_bound(c);
        if (it != s.chunks.end()) best = std::min(best, it->first);
      }
      if (best == UINT64_MAX) break;
      uint64_t from = best == off / kChunk ? (off % kChunk) / kBlock : 0;
      std::optional<uint64_t> b = FindBlock(best, from, /*allocated=*/true);
      if (b) return std::min(size_, std::max(off, best * kChunk + *b * kBlock));
      c = best + 1;
    }
    return size_;
  }

  Result<uint64_t> NextHole(uint64_t off) override {
    for (uint64_t pos = off; pos < size_; pos = (pos / kChunk + 1) * kChunk) {
      std::optional<uint64_t> b =
          FindBlock(pos / kChunk, (pos % kChunk) / kBlock, /*allocated=*/false);
      if (b) return std::min(size_, std::max(pos, (pos / kChunk) * kChunk + *b * kBlock));
    }
    return size_;
  }

  // Writes without the read-only check; `buf` == nullptr writes zeros.
  void WriteUnchecked(uint64_t off, const uint8_t* buf, uint64_t len) {
    ForEachChunk(off, len, [&](uint64_t c, uint64_t in, uint64_t n, uint64_t done) {
      Stripe& s = StripeOf(c);
      std::unique_lock lock(s.mu);
      std::unique_ptr<Chunk>& ch = s.chunks[c];
      if (!ch) ch = std::make_unique<Chunk>();
      if (buf) {
        std::memcpy(ch->data + in, buf + done, n);
      } else {
        std::memset(ch->data + in, 0, n);
      }
      for (uint64_t b = in / kBlock; b * kBlock < in + n; b++) ch->allocated |= 1u << b;
    });
  }

 private:
  struct Chunk {
    uint8_t data[kChunk] = {};
    uint16_t allocated = 0;  // bit b: block b holds data
  };
  struct Stripe {
    std::shared_mutex mu;
    std::map<uint64_t, std::unique_ptr<Chunk>> chunks;  // GUARDED_BY(mu), with contents
  };

  Stripe& StripeOf(uint64_t c) { return stripes_[c % kStripes]; }

  // Calls fn(chunk, offset in chunk, length, bytes done before) per chunk.
  template <typename Fn>
  void ForEachChunk(uint64_t off, uint64_t len, Fn fn) {
    uint64_t done = 0;
    while (done < len) {
      uint64_t pos = off + done;
      uint64_t in = pos % kChunk;
      uint64_t n = std::min(len - done, kChunk - in);
      fn(pos / kChunk, in, n, done);
      done += n;
    }
  }

  // First block >= from in chunk c whose allocation equals `allocated`
  // (an absent chunk is all holes), if it lies inside the device.
  std::optional<uint64_t> FindBlock(uint64_t c, uint64_t from, bool allocated) {
    Stripe& s = StripeOf(c);
    std::shared_lock lock(s.mu);
    auto it = s.chunks.find(c);
    uint16_t bits = it == s.chunks.end() ? 0 : it->second->allocated;
    for (uint64_t b = from; b < kBlocksPerChunk && c * kChunk + b * kBlock < size_; b++) {
      if (((bits >> b) & 1) == allocated) return b;
    }
    return std::nullopt;
  }

  Status CheckRange(const char* op, uint64_t off, uint64_t len) const {
    if (off > size_ || len > size_ - off) {
      return Status::InvalidArgument(std::string(op) + " of " + std::to_string(len) + " bytes at " +
                                     std::to_string(off) + " is beyond the end of " + name_ + " (" +
                                     std::to_string(size_) + " bytes)");
    }
    return Status::OK();
  }
  Status CheckWritable(const char* op) const {
    if (!read_only_) return Status::OK();
    return Status::Permission(std::string(op) + " " + name_ + ": the device is read-only");
  }

  const uint64_t size_;
  const bool read_only_;
  const std::string name_;
  std::array<Stripe, kStripes> stripes_;
};

}  // namespace

std::unique_ptr<Device> NewMemDevice(uint64_t size, bool read_only, std::string name) {
  return std::make_unique<MemDevice>(size, read_only, std::move(name));
}

std::unique_ptr<Device> NewMemDeviceFrom(const std::vector<uint8_t>& content, bool read_only,
                                         std::string name) {
  auto dev = std::make_unique<MemDevice>(content.size(), read_only, std::move(name));
  for (uint64_t off = 0; off < content.size(); off += kBlock) {
    uint64_t n = std::min<uint64_t>(kBlock, content.size() - off);
    const uint8_t* p = content.data() + off;
    if (std::any_of(p, p + n, [](uint8_t b) { return b != 0; })) dev->WriteUnchecked(off, p, n);
  }
  return dev;
}

}  // namespace clonefs
