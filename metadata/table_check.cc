#include "metadata/table_check.h"

#include <string_view>

#include <xxhash.h>
#include "metadata/crc32c.h"

namespace clonefs::metadata {
namespace {

constexpr uint64_t kMagic = 0x88e241b785f4cff7ull;  // block-based table, format_version >= 1
// The format version RocksDB 7.8.3 writes (BlockBasedTableOptions'
// default, which clonefs keeps). 2..4 would read the same, but no clonefs
// table has them: one there is a damaged footer.
constexpr uint32_t kFormatVersion = 5;
constexpr uint8_t kCrc32cType = 1;
constexpr uint8_t kXxh3Type = 4;
constexpr uint64_t kTrailerSize = 5;  // compression type, checksum
constexpr uint8_t kNoCompression = 0;

struct Handle {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct Block {
  std::string bytes;  // without the trailer
  uint8_t compression = 0;
};

uint32_t Le32(std::string_view b, size_t off) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = v << 8 | static_cast<uint8_t>(b[off + static_cast<size_t>(i)]);
  return v;
}

uint64_t Le64(std::string_view b, size_t off) {
  return Le32(b, off) | static_cast<uint64_t>(Le32(b, off + 4)) << 32;
}

// LevelDB/RocksDB varint: 7 bits a byte, least significant first. Only the
// shortest encoding, the one RocksDB writes, is accepted: a flipped
// continuation bit followed by a zero byte (the footer's padding) would
// otherwise decode to the same value.
bool GetVarint(std::string_view* in, int max_bits, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < max_bits; shift += 7) {
    if (in->empty()) return false;
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    *v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      return (byte != 0 || shift == 0) && (max_bits == 64 || *v >> max_bits == 0);
    }
  }
  return false;
}

bool GetHandle(std::string_view* in, Handle* h) {
  return GetVarint(in, 64, &h->offset) && GetVarint(in, 64, &h->size);
}

uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

class Checker {
 public:
  Checker(const ReadAtFn& read, uint64_t file_size, const std::string& name)
      : read_(read), file_size_(file_size), name_(name) {}

  Result<std::vector<TableBlock>> Run() {
    if (file_size_ < kTableFooterSize) {
      return Damaged(0, "it is " + std::to_string(file_size_) +
                            " bytes long, too short to hold a table footer");
    }
    footer_offset_ = file_size_ - kTableFooterSize;
    Handle metaindex, index;
    CLONEFS_RETURN_IF_ERROR(ReadFooter(&metaindex, &index));
    Block meta, unused;
    CLONEFS_RETURN_IF_ERROR(ReadBlock(metaindex, "metaindex", &meta));
    CLONEFS_RETURN_IF_ERROR(CheckMetaBlocks(metaindex, meta));
    CLONEFS_RETURN_IF_ERROR(ReadBlock(index, "index", &unused));
    return std::move(verified_);
  }

 private:
  Status Damaged(uint64_t off, const std::string& why) const {
    return Status::Corruption(name_ + " is damaged at offset " + std::to_string(off) + ": " + why);
  }

  Status ReadFooter(Handle* metaindex, Handle* index) {
    std::string f;
    CLONEFS_RETURN_IF_ERROR(read_(footer_offset_, kTableFooterSize, &f));
    const uint64_t magic_at = file_size_ - 8, version_at = file_size_ - 12;
    if (Le64(f, 45) != kMagic) {
      return Damaged(magic_at,
                     "bad magic number in the footer (not a RocksDB table file, or "
                     "its footer is damaged)");
    }
    const uint32_t version = Le32(f, 41);
    if (version != kFormatVersion) {
      return Damaged(version_at, "format version " + std::to_string(version) +
                                     " in the footer (clonefs writes " +
                                     std::to_string(kFormatVersion) + ")");
    }
    checksum_type_ = static_cast<uint8_t>(f[0]);
    if (checksum_type_ != kCrc32cType && checksum_type_ != kXxh3Type) {
      return Damaged(footer_offset_, "checksum type " + std::to_string(checksum_type_) +
                                         " in the footer (clonefs writes CRC32c or XXH3)");
    }
    std::string_view handles(f.data() + 1, 40);
    if (!GetHandle(&handles, metaindex) || !GetHandle(&handles, index)) {
      return Damaged(footer_offset_ + 1, "the footer's block handles do not decode");
    }
    if (handles.find_first_not_of('\0') != std::string_view::npos) {
      return Damaged(footer_offset_ + 1 + (40 - handles.size()),
                     "the footer's padding is not zero");
    }
    CLONEFS_RETURN_IF_ERROR(CheckInside(*metaindex, "metaindex", footer_offset_ + 1));
    return CheckInside(*index, "index", footer_offset_ + 1);
  }

  // `where`: the offset of the handle, for the message.
  Status CheckInside(const Handle& h, const std::string& what, uint64_t where) const {
    const uint64_t end = footer_offset_;
    if (h.size > end || h.offset > end - h.size || end - h.size - h.offset < kTrailerSize) {
      return Damaged(where, "the " + what + " block's handle (offset " + std::to_string(h.offset) +
                                ", size " + std::to_string(h.size) +
                                ") reaches past the table's blocks (" + std::to_string(end) +
                                " bytes)");
    }
    return Status::OK();
  }

  // Reads the block and its trailer, verifies the checksum, returns the block.
  // REQUIRES: CheckInside(h) passed.
  Status ReadBlock(const Handle& h, const std::string& what, Block* block) {
    std::string& b = block->bytes;
    CLONEFS_RETURN_IF_ERROR(read_(h.offset, h.size + kTrailerSize, &b));
    const size_t n = static_cast<size_t>(h.size);
    const uint8_t type = static_cast<uint8_t>(b[n]);
    uint32_t computed;
    if (checksum_type_ == kCrc32cType) {
      computed = MaskCrc(Crc32c(0, b.data(), n + 1));  // the block and its type byte
    } else {  // XXH3 of the block, the type byte mixed in as RocksDB does
      computed = static_cast<uint32_t>(XXH3_64bits(b.data(), n)) ^ type * 0x6b9083d9u;
    }
    if (Le32(b, n + 1) != computed) {
      return Damaged(h.offset, "checksum mismatch in the " + what + " block");
    }
    block->compression = type;
    b.resize(n);
    verified_.push_back({what, h.offset, h.size});
    return Status::OK();
  }

  // Calls fn(key, value) for each entry of an uncompressed block (keys
  // prefix-compressed against the previous one, a restart array at the end).
  template <typename Fn>
  Status ForEachEntry(const Handle& h, const std::string& what, const Block& block, Fn fn) const {
    const std::string_view b = block.bytes;
    const Status bad = Damaged(h.offset, "the " + what + " block's entries do not decode");
    if (block.compression != kNoCompression) {
      return Damaged(h.offset, "the " + what + " block is compressed (RocksDB never does that)");
    }
    if (b.size() < 4) return bad;
    const uint32_t restarts = Le32(b, b.size() - 4);
    if (restarts == 0 || restarts > (b.size() - 4) / 4) return bad;  // also the hash-index bit
    std::string_view in = b.substr(0, b.size() - 4 - 4 * size_t{restarts});
    std::string key;
    while (!in.empty()) {
      uint64_t shared, fresh, value_len;
      if (!GetVarint(&in, 32, &shared) || !GetVarint(&in, 32, &fresh) ||
          !GetVarint(&in, 32, &value_len) || shared > key.size() || fresh > in.size() ||
          value_len > in.size() - fresh) {
        return bad;
      }
      key.resize(shared);
      key.append(in.substr(0, fresh));
      in.remove_prefix(fresh);
      CLONEFS_RETURN_IF_ERROR(fn(std::string_view(key), in.substr(0, value_len)));
      in.remove_prefix(value_len);
    }
    return Status::OK();
  }

  Status CheckMetaBlocks(const Handle& metaindex, const Block& meta) {
    std::vector<std::pair<std::string, Handle>> blocks;
    CLONEFS_RETURN_IF_ERROR(ForEachEntry(
        metaindex, "metaindex", meta, [&](std::string_view key, std::string_view value) {
          Handle h;
          if (!GetHandle(&value, &h) || !value.empty()) {
            return Damaged(metaindex.offset, "the metaindex block's handle of " + std::string(key) +
                                                 " does not decode");
          }
          CLONEFS_RETURN_IF_ERROR(CheckInside(h, std::string(key), metaindex.offset));
          blocks.emplace_back(std::string(key), h);
          return Status::OK();
        }));
    for (const auto& [what, h] : blocks) {
      Block block;
      CLONEFS_RETURN_IF_ERROR(ReadBlock(h, what, &block));
    }
    return Status::OK();
  }

  const ReadAtFn& read_;
  const uint64_t file_size_;
  const std::string& name_;
  uint64_t footer_offset_ = 0;
  uint8_t checksum_type_ = 0;
  std::vector<TableBlock> verified_;
};

}  // namespace

Result<std::vector<TableBlock>> CheckTable(const ReadAtFn& read, uint64_t file_size,
                                           const std::string& name) {
  return Checker(read, file_size, name).Run();
}

}  // namespace clonefs::metadata
