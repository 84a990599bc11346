#include "metadata/superblock_codec.h"

#include <sys/random.h>

#include <cstring>
#include <random>

#include "metadata/crc32c.h"

namespace clonefs::metadata {
namespace {

constexpr size_t kHeaderSize = 16;  // magic + version + body_length
constexpr size_t kCrcSize = 4;
constexpr size_t kUuidSize = 36;

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void PutText(std::string* out, std::string_view text) {
  if (text.size() > kMaxIdentityPath) text = text.substr(0, kMaxIdentityPath);
  PutU32(out, static_cast<uint32_t>(text.size()));
  out->append(text);
}

void PutIdentity(std::string* out, const FileIdentity& id, uint32_t version) {
  PutU64(out, id.size);
  PutU64(out, id.inode);
  PutU64(out, static_cast<uint64_t>(id.mtime_ns));
  PutU64(out, id.fingerprint);
  PutText(out, id.path);
  if (version < 2) return;
  PutU64(out, static_cast<uint64_t>(id.btime_ns));
  PutU64(out, id.fingerprint2);
  PutU32(out, id.flags);
  PutText(out, id.device_id);
  if (version < 3) return;
  PutU32(out, id.generation);
}

// Reads fixed-size fields from a byte range; every getter fails once the
// input is exhausted, so a truncated superblock cannot be misread.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool U32(uint32_t* v) { return Fixed(v, 4); }
  bool U64(uint64_t* v) { return Fixed(v, 8); }
  bool Bytes(size_t n, std::string* out) {
    if (in_.size() < n) return false;
    out->assign(in_.substr(0, n));
    in_.remove_prefix(n);
    return true;
  }
  bool empty() const { return in_.empty(); }

 private:
  template <typename T>
  bool Fixed(T* v, int n) {
    if (in_.size() < static_cast<size_t>(n)) return false;
    T x = 0;
    for (int i = 0; i < n; ++i) x |= static_cast<T>(static_cast<unsigned char>(in_[i])) << (8 * i);
    in_.remove_prefix(n);
    *v = x;
    return true;
  }
  std::string_view in_;
};

bool GetText(Reader* r, std::string* out) {
  uint32_t len = 0;
  return r->U32(&len) && len <= kMaxIdentityPath && r->Bytes(len, out);
}

bool GetIdentity(Reader* r, FileIdentity* id, uint32_t version) {
  uint64_t mtime = 0;
  if (!r->U64(&id->size) || !r->U64(&id->inode) || !r->U64(&mtime) || !r->U64(&id->fingerprint) ||
      !GetText(r, &id->path)) {
    return false;
  }
  id->mtime_ns = static_cast<int64_t>(mtime);
  if (version < 2) return true;
  uint64_t btime = 0;
  if (!r->U64(&btime) || !r->U64(&id->fingerprint2) || !r->U32(&id->flags) ||
      !GetText(r, &id->device_id)) {
    return false;
  }
  id->btime_ns = static_cast<int64_t>(btime);
  if (version < 3) return true;
  return r->U32(&id->generation);
}

bool IsUuidText(const std::string& s) {
  if (s.size() != kUuidSize) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = s[i];
    if (dash_pos ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

uint64_t NrRegionsFor(uint64_t image_size, uint64_t region_size) {
  return image_size == 0 ? 0 : (image_size - 1) / region_size + 1;
}

std::string EncodeSuperblock(const Superblock& sb) {
  std::string body;
  std::string uuid = sb.uuid;
  uuid.resize(kUuidSize, '0');
  body.append(uuid);
  PutU64(&body, sb.region_size);
  PutU64(&body, sb.image_size);
  PutU64(&body, sb.nr_regions);
  PutU64(&body, sb.created_unix_s);
  PutIdentity(&body, sb.source, sb.format_version);
  PutIdentity(&body, sb.dest, sb.format_version);

  std::string out(kSuperblockMagic);
  PutU32(&out, sb.format_version);
  PutU32(&out, static_cast<uint32_t>(body.size()));
  out.append(body);
  PutU32(&out, Crc32c(0, out.data(), out.size()));
  return out;
}

Result<Superblock> DecodeSuperblock(std::string_view bytes) {
  auto bad = [](const std::string& why) { return Status::Corruption("superblock: " + why); };
  if (bytes.size() < kHeaderSize + kCrcSize) {
    return bad("too short (" + std::to_string(bytes.size()) + " bytes)");
  }
  if (bytes.substr(0, kSuperblockMagic.size()) != kSuperblockMagic) {
    return bad("bad magic: this is not clonefs metadata");
  }
  Reader header(bytes.substr(kSuperblockMagic.size(), 8));
  uint32_t version = 0, body_len = 0;
  (void)header.U32(&version);
  (void)header.U32(&body_len);
  if (static_cast<uint64_t>(body_len) + kHeaderSize + kCrcSize != bytes.size()) {
    return bad("length field says " + std::to_string(body_len) + " body bytes, record has " +
               std::to_string(bytes.size() - kHeaderSize - kCrcSize));
  }
  Reader crc_reader(bytes.substr(bytes.size() - kCrcSize));
  uint32_t stored_crc = 0;
  (void)crc_reader.U32(&stored_crc);
  const uint32_t crc = Crc32c(0, bytes.data(), bytes.size() - kCrcSize);
  if (crc != stored_crc) return bad("checksum mismatch (the record is damaged)");
  if (version == 0 || version > kFormatVersion) {
    return Status::Mismatch("format version: metadata has " + std::to_string(version) +
                            ", this clonefs reads versions 1.." + std::to_string(kFormatVersion));
  }

  Superblock sb;
  sb.format_version = version;
  Reader r(bytes.substr(kHeaderSize, body_len));
  if (!r.Bytes(kUuidSize, &sb.uuid) || !r.U64(&sb.region_size) || !r.U64(&sb.image_size) ||
      !r.U64(&sb.nr_regions) || !r.U64(&sb.created_unix_s) || !GetIdentity(&r, &sb.source, version) ||
      !GetIdentity(&r, &sb.dest, version)) {
    return bad("truncated body");
  }
  if (!r.empty()) return bad("trailing bytes after the body");
  if (version < 3 && ((sb.source.flags | sb.dest.flags) & FileIdentity::kGeneration) != 0) {
    return bad("an identity of a version " + std::to_string(version) +
               " superblock claims a generation, which only version 3 records");
  }
  if (!IsUuidText(sb.uuid)) return bad("malformed uuid");
  if (Status s = ValidateRegionSize(sb.region_size); !s.ok()) return bad(s.message());
  if (sb.image_size == 0) return bad("image size is 0");
  if (sb.nr_regions != NrRegionsFor(sb.image_size, sb.region_size)) {
    return bad("nr_regions " + std::to_string(sb.nr_regions) + " does not match image size " +
               std::to_string(sb.image_size) + " and region size " +
               std::to_string(sb.region_size));
  }
  return sb;
}

std::string NewUuid() {
  unsigned char b[16];
  if (getrandom(b, sizeof(b), 0) != static_cast<ssize_t>(sizeof(b))) {
    std::random_device rd;  // fallback; getrandom does not fail on Linux >= 3.17
    for (auto& x : b) x = static_cast<unsigned char>(rd());
  }
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(kHex[b[i] >> 4]);
    s.push_back(kHex[b[i] & 15]);
  }
  return s;
}

}  // namespace clonefs::metadata
