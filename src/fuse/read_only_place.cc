#include "fuse/read_only_place.h"

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cstdlib>
#include <memory>

#include "base/mountinfo.h"

namespace clonefs::fuse {
namespace {

std::string NearestExistingDir(std::string path) {
  while (!path.empty()) {
    struct stat st;
    if (stat(path.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) return path;
    }
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    path = slash == 0 ? "/" : path.substr(0, slash);
    if (path == "/") return path;
  }
  return ".";
}

bool Inside(const std::string& path, const std::string& dir) {
  return path == dir || dir == "/" ||
         (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
          path[dir.size()] == '/');
}

// The mount point of the topmost mount holding `canonical`: the longest
// mount point that contains it, the last such line when several are stacked.
std::string MountPointHolding(const std::string& canonical) {
  Result<std::string> text = ReadSelfMountInfo();
  if (!text.ok()) return "";
  std::string best;
  for (const MountInfoLine& m : ParseMountInfo(*text)) {
    if (Inside(canonical, m.mount_point) && m.mount_point.size() >= best.size()) {
      best = m.mount_point;
    }
  }
  return best;
}

}  // namespace

std::optional<ReadOnlyPlace> ReadOnlyFileSystemAt(const std::string& path) {
  const std::string dir = NearestExistingDir(path);
  struct statvfs sv;
  if (statvfs(dir.c_str(), &sv) != 0 || (sv.f_flag & ST_RDONLY) == 0) return std::nullopt;
  std::unique_ptr<char, decltype(&free)> real(realpath(dir.c_str(), nullptr), &free);
  ReadOnlyPlace p;
  p.dir = real ? real.get() : dir;
  p.mount_point = MountPointHolding(p.dir);
  return p;
}

}  // namespace clonefs::fuse
