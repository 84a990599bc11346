#include "clone/identity.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "clone/storage_probe.h"

namespace clonefs::clone {
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

// Reads every sample at once (Device::ReadAsync), so a remote source costs
// about one round trip instead of one per sample. Errors: the first failed
// read, in offset order.
Status ReadSamples(Device& dev, const std::vector<uint64_t>& offsets,
                   const std::vector<uint64_t>& lens, uint64_t sample, std::vector<uint8_t>* buf) {
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = offsets.size();          // GUARDED_BY(mu)
  std::vector<Status> results(offsets.size());  // GUARDED_BY(mu)
  for (size_t i = 0; i < offsets.size(); ++i) {
    auto done = [&, i](Status st) {
      std::lock_guard<std::mutex> l(mu);
      results[i] = std::move(st);
      if (--pending == 0) cv.notify_all();
    };
    if (lens[i] == 0) {
      done(Status::OK());
      continue;
    }
    dev.ReadAsync(offsets[i], buf->data() + i * sample, lens[i], done);
  }
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return pending == 0; });
  for (const Status& st : results) CLONEFS_RETURN_IF_ERROR(st);
  return Status::OK();
}

// FNV-1a over `tag`, the size and `sample` bytes at each offset (clipped).
Result<uint64_t> SampledHash(Device& dev, const char* tag, const std::vector<uint64_t>& offsets,
                             uint64_t sample) {
  const uint64_t size = dev.Size();
  uint64_t h = FnvUpdate(kFnvOffset, reinterpret_cast<const uint8_t*>(tag),
                         std::char_traits<char>::length(tag));
  uint8_t le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(size >> (8 * i));
  h = FnvUpdate(h, le, sizeof(le));
  std::vector<uint64_t> lens;
  for (uint64_t off : offsets) lens.push_back(std::min(sample, size - std::min(off, size)));
  std::vector<uint8_t> buf(sample * offsets.size());
  CLONEFS_RETURN_IF_ERROR(ReadSamples(dev, offsets, lens, sample, &buf));
  for (size_t i = 0; i < offsets.size(); ++i) h = FnvUpdate(h, buf.data() + i * sample, lens[i]);
  return h;
}

Result<struct stat> Stat(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  return st;
}

int64_t Nanos(const struct timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }

// OK if the source's identity `now` is the `recorded` one, else Mismatch
// listing what differs (the IdentityCheck answer).
Status SameSource(const metadata::FileIdentity& recorded, const metadata::FileIdentity& now) {
  std::string what;
  for (const std::string& d : metadata::IdentityDifferences("source", recorded, now)) {
    what += (what.empty() ? "" : "; ") + d;
  }
  return what.empty() ? Status::OK() : Status::Mismatch(what);
}

}  // namespace

Result<uint64_t> Fingerprint(Device& dev) {
  const uint64_t size = dev.Size();
  return SampledHash(dev, "clonefs-fp1",
                     {0, (size / 2) & ~uint64_t{4095},
                      size > kFingerprintSampleBytes ? size - kFingerprintSampleBytes : 0},
                     kFingerprintSampleBytes);
}

Result<uint64_t> WideFingerprint(Device& dev) {
  const uint64_t size = dev.Size();
  const uint64_t span = size > kWideSampleBytes ? size - kWideSampleBytes : 0;
  std::vector<uint64_t> offsets;
  for (int i = 0; i < kWideSamples; ++i) {
    // i * span / 31 without overflow: span < 2^64, i < 32.
    const uint64_t off = span / (kWideSamples - 1) * i + span % (kWideSamples - 1) * i / (kWideSamples - 1);
    offsets.push_back(off & ~(kWideSampleBytes - 1));
  }
  return SampledHash(dev, "clonefs-fp2", offsets, kWideSampleBytes);
}

Result<metadata::FileIdentity> SourceIdentity(Device& dev, const std::string& path) {
  CLONEFS_ASSIGN_OR_RETURN(struct stat st, Stat(path));
  metadata::FileIdentity id;
  id.size = dev.Size();
  id.inode = 0;  // the same content copied elsewhere is the same source
  if (S_ISREG(st.st_mode)) {
    id.mtime_ns = Nanos(st.st_mtim);
    if (MtimeIsUnstable(path)) id.flags |= metadata::FileIdentity::kMtimeUnstable;
  }
  CLONEFS_ASSIGN_OR_RETURN(id.fingerprint, Fingerprint(dev));
  CLONEFS_ASSIGN_OR_RETURN(id.fingerprint2, WideFingerprint(dev));
  id.path = path;
  return id;
}

Result<metadata::FileIdentity> RemoteSourceIdentity(Device& dev, const std::string& uri,
                                                    const std::string& export_key) {
  metadata::FileIdentity id;
  id.size = dev.Size();
  id.flags = metadata::FileIdentity::kRemote;
  // A web server's Last-Modified date is the file's mtime; without one the
  // mtime is unknown and never compared.
  id.mtime_ns = dev.ServerMtimeNs();
  if (id.mtime_ns == 0) id.flags |= metadata::FileIdentity::kMtimeUnstable;
  CLONEFS_ASSIGN_OR_RETURN(id.fingerprint, Fingerprint(dev));
  CLONEFS_ASSIGN_OR_RETURN(id.fingerprint2, WideFingerprint(dev));
  id.path = uri;
  id.device_id = export_key;
  return id;
}

Device::IdentityCheck RemoteIdentityCheck(const metadata::FileIdentity& recorded,
                                          const std::string& uri, const std::string& export_key) {
  return [recorded, uri, export_key](Device& view) -> Status {
    CLONEFS_ASSIGN_OR_RETURN(metadata::FileIdentity now,
                             RemoteSourceIdentity(view, uri, export_key));
    return SameSource(recorded, now);
  };
}

Device::IdentityCheck LocalIdentityCheck(const metadata::FileIdentity& recorded,
                                         const std::string& path) {
  return [recorded, path](Device& view) -> Status {
    CLONEFS_ASSIGN_OR_RETURN(metadata::FileIdentity now, SourceIdentity(view, path));
    return SameSource(recorded, now);
  };
}

Result<metadata::FileIdentity> DestIdentity(const std::string& path) {
  CLONEFS_ASSIGN_OR_RETURN(struct stat st, Stat(path));
  metadata::FileIdentity id;
  id.path = path;
  if (S_ISBLK(st.st_mode)) {
    id.inode = static_cast<uint64_t>(st.st_rdev);
    id.size = BlockDeviceSize(st.st_rdev);
    id.device_id = BlockDeviceId(st.st_rdev);
    return id;
  }
  id.inode = static_cast<uint64_t>(st.st_ino);
  id.btime_ns = BirthTimeNs(path);
  if (std::optional<uint32_t> gen = InodeGeneration(path, st.st_ino)) {
    id.generation = *gen;
    id.flags |= metadata::FileIdentity::kGeneration;
  }
  return id;
}

}  // namespace clonefs::clone
