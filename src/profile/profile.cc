#include "profile/profile.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstring>
#include <sstream>
#include <utility>

#include "base/hex.h"

namespace clonefs::profile {
namespace {

constexpr char kMagic[] = "clonefs-profile 1";
// SPEC §2 (metadata::kMinRegionSize/kMaxRegionSize; profile does not depend
// on metadata).
constexpr uint64_t kMinRegionSize = 4096;
constexpr uint64_t kMaxRegionSize = 1ull << 30;

std::string Hex(uint64_t v) { return FingerprintHex(v); }

Status LineError(int line, const std::string& what) {
  return Status::InvalidArgument("line " + std::to_string(line) + ": " + what);
}

// "KEY VALUE" with VALUE decimal (or hex if `hex`).
Status ParseField(const std::string& text, int line, const char* key, bool hex, uint64_t* out) {
  const std::string prefix = std::string(key) + " ";
  if (text.rfind(prefix, 0) != 0) return LineError(line, std::string("expected \"") + key + " ...\"");
  const std::string v = text.substr(prefix.size());
  if (v.empty() || v.size() > 20) return LineError(line, std::string("bad ") + key);
  // Digits only: strtoull alone would also take spaces, a sign (" -1" is
  // 2^64-1) and "0x".
  const char* digits = hex ? "0123456789abcdefABCDEF" : "0123456789";
  errno = 0;
  char* end = nullptr;
  unsigned long long x = std::strtoull(v.c_str(), &end, hex ? 16 : 10);
  if (errno != 0 || *end != '\0' || v.find_first_not_of(digits) != std::string::npos) {
    return LineError(line, std::string("bad ") + key + " \"" + v + "\"");
  }
  *out = x;
  return Status::OK();
}

// "FIRST COUNT": two decimal numbers of digits only, one space between
// (sscanf also took "+5 3", " 5 3" and "5  3").
bool ParseRun(const std::string& text, uint64_t* first, uint64_t* count) {
  const size_t sp = text.find(' ');
  if (sp == std::string::npos) return false;
  auto number = [](const std::string& v, uint64_t* out) {
    if (v.empty() || v.size() > 20 || v.find_first_not_of("0123456789") != std::string::npos) {
      return false;
    }
    errno = 0;
    *out = std::strtoull(v.c_str(), nullptr, 10);
    return errno == 0;
  };
  return number(text.substr(0, sp), first) && number(text.substr(sp + 1), count);
}

// Runs never overlap (docs/profile-format.md). The error names the line of
// the later of two overlapping runs (run i is on line 7 + i).
Status CheckDisjoint(const std::vector<RegionRun>& runs) {
  std::vector<size_t> order(runs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return runs[a].first < runs[b].first; });
  for (size_t k = 1; k < order.size(); ++k) {
    const size_t a = order[k - 1], b = order[k];
    if (runs[a].end() > runs[b].first) {
      return LineError(static_cast<int>(7 + std::max(a, b)),
                       "run overlaps the run on line " + std::to_string(7 + std::min(a, b)));
    }
  }
  return Status::OK();
}

Status Errno(const std::string& what, const std::string& path) {
  const int e = errno;
  return Status::IoError(what + " " + path + ": " + std::strerror(e), e);
}

}  // namespace

uint64_t Profile::regions() const { return RegionCount(runs); }

std::string Serialize(const Profile& p) {
  std::string s;
  s.reserve(128 + p.runs.size() * 16);
  s += kMagic;
  s += "\nsource-size " + std::to_string(p.source.size);
  s += "\nsource-fp1 " + Hex(p.source.fp1);
  s += "\nsource-fp2 " + Hex(p.source.fp2);
  s += "\nregion-size " + std::to_string(p.region_size);
  s += "\nruns " + std::to_string(p.runs.size()) + "\n";
  for (const RegionRun& r : p.runs) {
    s += std::to_string(r.first);
    s += ' ';
    s += std::to_string(r.count);
    s += '\n';
  }
  return s;
}

Result<Profile> Parse(const std::string& text) {
  std::istringstream in(text);
  std::string l;
  int line = 0;
  auto next = [&]() -> bool {
    ++line;
    return static_cast<bool>(std::getline(in, l));
  };
  if (!next() || l != kMagic) {
    return Status::InvalidArgument("not a clonefs profile (the first line is not \"" +
                                   std::string(kMagic) + "\")");
  }
  Profile p;
  uint64_t nruns = 0;
  struct Field {
    const char* key;
    bool hex;
    uint64_t* out;
  } fields[] = {{"source-size", false, &p.source.size}, {"source-fp1", true, &p.source.fp1},
                {"source-fp2", true, &p.source.fp2},    {"region-size", false, &p.region_size},
                {"runs", false, &nruns}};
  for (const Field& f : fields) {
    if (!next()) return LineError(line, std::string("missing \"") + f.key + "\"");
    CLONEFS_RETURN_IF_ERROR(ParseField(l, line, f.key, f.hex, f.out));
  }
  // SPEC §2's bounds, as a clone's (a profile of 2 KiB or 2 GiB regions was
  // taken, and mapped onto the clone as if a clone could have recorded it).
  if (p.region_size == 0 || (p.region_size & (p.region_size - 1)) != 0 ||
      p.region_size < kMinRegionSize || p.region_size > kMaxRegionSize) {
    return LineError(5, "region-size must be a power of two from 4096 to 1073741824");
  }
  const uint64_t nr = p.source.size == 0 ? 0 : (p.source.size - 1) / p.region_size + 1;
  if (nruns > nr) return LineError(6, "more runs than the source has regions");
  // The count is only a claim: reserve no more runs than the text has lines
  // for (each at least "0 1").
  p.runs.reserve(std::min<uint64_t>(nruns, text.size() / 3));
  for (uint64_t i = 0; i < nruns; ++i) {
    if (!next()) return LineError(line, "missing run " + std::to_string(i + 1) + " of " +
                                            std::to_string(nruns));
    uint64_t first = 0, count = 0;
    if (!ParseRun(l, &first, &count)) return LineError(line, "expected \"FIRST COUNT\"");
    if (count == 0 || first >= nr || count > nr - first) {
      return LineError(line, "run outside the source's " + std::to_string(nr) + " regions");
    }
    p.runs.push_back(RegionRun{first, count});
  }
  // Every line ends with \n (Serialize writes it): a file cut inside its
  // last run ("48 16" cut to "48 1") still parses, so it is refused here
  // rather than replayed with a run that was never recorded.
  if (!text.empty() && text.back() != '\n') {
    const int last = 1 + static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    return LineError(last, "the file ends inside this line (cut short?)");
  }
  while (next()) {
    if (!l.empty()) return LineError(line, "unexpected text after the last run");
  }
  CLONEFS_RETURN_IF_ERROR(CheckDisjoint(p.runs));
  return p;
}

Result<Profile> Load(const std::string& path) {
  // O_NONBLOCK: a FIFO given as the profile must not hang the mount (or
  // `profile show`) waiting for a writer; it is refused below.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open profile", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status s = Errno("cannot read profile", path);
    ::close(fd);
    return s;
  }
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {  // a directory: read says EISDIR
    ::close(fd);
    return Status::InvalidArgument(path + ": not a regular file (a FIFO, socket or device)");
  }
  std::string text;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Errno("cannot read profile", path);
      ::close(fd);
      return s;
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > (256u << 20)) {
      ::close(fd);
      return Status::InvalidArgument(path + ": too large for a profile");
    }
  }
  ::close(fd);
  Result<Profile> p = Parse(text);
  if (!p.ok()) return Status::InvalidArgument(path + ": " + p.status().message());
  return p;
}

namespace {

// A new file beside `path`, PATH.tmp.XXXXXX, created with O_EXCL: never an
// existing file (another recording's, a user's, a FIFO that would block
// the open). Mode 0644 (before the umask), as a profile is created.
Result<std::pair<int, std::string>> CreateTemp(const std::string& path) {
  std::string tmp = path + ".tmp.XXXXXX";
  int fd = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (fd < 0) return Errno("cannot create a temporary file beside", path);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  (void)::fchmod(fd, 0644 & ~mask);
  return std::make_pair(fd, tmp);
}

}  // namespace

Status Save(const Profile& p, const std::string& path) {
  const std::string text = Serialize(p);
  CLONEFS_ASSIGN_OR_RETURN(auto created, CreateTemp(path));
  const int fd = created.first;
  const std::string& tmp = created.second;
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      Status s = Errno("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = Errno("cannot sync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  // Something put there since the mount checked it is not replaced either.
  if (Status s = CheckReplaceable(path); !s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Errno("cannot rename to", path);
    ::unlink(tmp.c_str());
    return s;
  }
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/'));
  if (dir.empty()) dir = path[0] == '/' ? "/" : ".";
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::OK();
}

Status CheckRecordable(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument(path + " is a directory");
  }
  CLONEFS_ASSIGN_OR_RETURN(auto created, CreateTemp(path));
  ::close(created.first);
  ::unlink(created.second.c_str());
  return Status::OK();
}

bool BeginsAsProfile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  const std::string prefix = "clonefs-profile ";
  char buf[32] = {};
  ssize_t n = -1;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    do {
      n = ::pread(fd, buf, prefix.size(), 0);
    } while (n < 0 && errno == EINTR);
  }
  ::close(fd);
  return n == static_cast<ssize_t>(prefix.size()) && prefix.compare(0, prefix.size(), buf, n) == 0;
}

Status CheckReplaceable(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return Status::OK();
  // rename(2) replaces a symlink, not its target, and fails on a directory
  // (which CheckRecordable refuses by name).
  if (S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode)) return Status::OK();
  if (S_ISREG(st.st_mode) && (st.st_size == 0 || BeginsAsProfile(path))) return Status::OK();
  return Status::InvalidArgument(path + " exists and is not an access profile (" +
                                 (S_ISREG(st.st_mode)
                                      ? std::string("its first line is not \"clonefs-profile ...\"")
                                      : std::string("not a regular file")) +
                                 "), and the recording would replace it");
}

std::string SourceMismatch(const Profile& p, const SourceKey& key) {
  if (p.source == key) return "";
  return p.source.size != key.size
             ? "it was recorded from a source of " + std::to_string(p.source.size) +
                   " bytes, this clone's source has " + std::to_string(key.size)
             : "it was recorded from a source with other content (fingerprints " +
                   Hex(p.source.fp1) + "/" + Hex(p.source.fp2) + ", this one's " + Hex(key.fp1) +
                   "/" + Hex(key.fp2) + ")";
}

Status CheckSource(const Profile& p, const SourceKey& key, const std::string& path) {
  const std::string what = SourceMismatch(p, key);
  if (what.empty()) return Status::OK();
  return Status::InvalidArgument("profile " + path + " does not belong to this source: " + what +
                                 "; record one for this source with --record-profile, or "
                                 "mount without --profile");
}

std::vector<RegionRun> ToRegions(const Profile& p, const RegionGeometry& geo) {
  std::vector<RegionRun> out;
  out.reserve(p.runs.size());
  const bool same = p.region_size == geo.region_size();
  std::vector<bool> seen;
  if (!same) seen.assign(geo.nr_regions(), false);
  for (const RegionRun& r : p.runs) {
    const uint64_t from = r.first * p.region_size;
    if (from >= geo.image_size()) continue;
    const uint64_t to = std::min(r.end() * p.region_size, geo.image_size());
    uint64_t a = geo.RegionOf(from), b = geo.RegionOf(to - 1) + 1;
    if (same) {
      out.push_back(RegionRun{a, b - a});
      continue;
    }
    for (uint64_t x = a; x < b;) {
      while (x < b && seen[x]) ++x;
      uint64_t y = x;
      while (y < b && !seen[y]) seen[y++] = true;
      if (y > x) out.push_back(RegionRun{x, y - x});
      x = y;
    }
  }
  return out;
}

Result<std::vector<RegionRun>> RecordedSoFar(const std::string& path, const SourceKey& key,
                                             const RegionGeometry& geo) {
  auto p = Load(path);
  if (!p.ok()) {
    if (p.status().sys_errno() == ENOENT) return std::vector<RegionRun>{};
    return p.status();
  }
  CLONEFS_RETURN_IF_ERROR(CheckSource(*p, key, path));
  return ToRegions(*p, geo);
}

}  // namespace clonefs::profile
