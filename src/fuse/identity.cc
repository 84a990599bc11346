#include "fuse/identity.h"

#include <algorithm>
#include <vector>

namespace clonefs::fuse {
namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t FnvUpdate(uint64_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= kFnvPrime;
  }
  return h;
}

}  // namespace

Result<uint64_t> Fingerprint(Device& dev) {
  const uint64_t size = dev.Size();
  uint64_t h = kFnvOffset;
  static const char kTag[] = "clonefs-fp1";
  h = FnvUpdate(h, reinterpret_cast<const uint8_t*>(kTag), sizeof(kTag) - 1);
  uint8_t le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(size >> (8 * i));
  h = FnvUpdate(h, le, sizeof(le));
  const uint64_t offsets[3] = {
      0, (size / 2) & ~uint64_t{4095},
      size > kFingerprintSampleBytes ? size - kFingerprintSampleBytes : 0};
  std::vector<uint8_t> buf(kFingerprintSampleBytes);
  for (uint64_t off : offsets) {
    const uint64_t len = std::min(kFingerprintSampleBytes, size - std::min(off, size));
    if (len == 0) continue;
    CLONEFS_RETURN_IF_ERROR(dev.Read(off, buf.data(), len));
    h = FnvUpdate(h, buf.data(), len);
  }
  return h;
}

Result<metadata::FileIdentity> SourceIdentity(Device& dev, const struct stat& st,
                                              const std::string& path) {
  metadata::FileIdentity id;
  id.size = dev.Size();
  id.inode = 0;  // the same content copied elsewhere is the same source
  id.mtime_ns = S_ISREG(st.st_mode)
                    ? int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec
                    : 0;
  CLONEFS_ASSIGN_OR_RETURN(id.fingerprint, Fingerprint(dev));
  id.path = path;
  return id;
}

metadata::FileIdentity DestIdentity(const struct stat& st, const std::string& path) {
  metadata::FileIdentity id;
  id.inode = S_ISBLK(st.st_mode) ? static_cast<uint64_t>(st.st_rdev)
                                 : static_cast<uint64_t>(st.st_ino);
  id.path = path;
  return id;
}

}  // namespace clonefs::fuse
