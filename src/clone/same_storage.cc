#include "clone/same_storage.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "clone/storage_probe.h"

namespace clonefs::clone {
namespace {

bool Intersect(const StorageKeys& a, const StorageKeys& b) {
  return std::any_of(a.begin(), a.end(), [&](const std::string& k) { return b.count(k) > 0; });
}

const char* kAdvice = "; give a different dest to write to";

// `path` if it exists, else its nearest existing ancestor ("." for a
// relative path none of whose ancestors exists).
std::string ExistingAncestor(std::string path) {
  struct stat st;
  while (!path.empty() && stat(path.c_str(), &st) != 0) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return path.empty() ? "." : path;
}

// Whether what is written under `existing` (a file, or a directory new files
// are created in) lands on the source's storage.
Result<bool> StoredOnSource(const StorageKeys& src_own, const std::string& existing) {
  CLONEFS_ASSIGN_OR_RETURN(StorageKeys under, UnderlyingStorage(existing));
  return Intersect(src_own, under);
}

}  // namespace

Status CheckNotStoredOnSource(const std::string& source, const std::string& path,
                              const std::string& what, const std::string& option) {
  CLONEFS_ASSIGN_OR_RETURN(StorageKeys src_own, OwnStorage(source));
  const std::string existing = ExistingAncestor(path);
  CLONEFS_ASSIGN_OR_RETURN(bool on_source, StoredOnSource(src_own, existing));
  if (!on_source) return Status::OK();
  const std::string where =
      existing == path ? std::string() : " (" + existing + " is on a file system inside it)";
  return Status::InvalidArgument(what + " " + path + " is stored on the source " + source + where +
                                 ": writing it would change the source; choose another " + option +
                                 " outside the source's file system");
}

Status CheckDistinctStorage(const std::string& source, const std::string& dest) {
  CLONEFS_ASSIGN_OR_RETURN(StorageKeys src_own, OwnStorage(source));
  struct stat dst;
  if (stat(dest.c_str(), &dst) != 0) {
    // A new file is nothing else, but lands wherever its directory is.
    const std::string dir = ExistingAncestor(dest);
    CLONEFS_ASSIGN_OR_RETURN(bool on_source, StoredOnSource(src_own, dir));
    if (!on_source) return Status::OK();
    return Status::InvalidArgument("dest " + dest + " would be stored on the source " + source +
                                   " (" + dir +
                                   " is on a file system inside it, through a loop "
                                   "device, partition or device-mapper device): creating it "
                                   "would change the source" +
                                   kAdvice);
  }
  CLONEFS_ASSIGN_OR_RETURN(StorageKeys dst_own, OwnStorage(dest));
  const bool dest_blk = S_ISBLK(dst.st_mode);
  if (Intersect(src_own, dst_own)) {
    struct stat sst;
    const bool src_blk = stat(source.c_str(), &sst) == 0 && S_ISBLK(sst.st_mode);
    if (dest_blk && !src_blk) {
      return Status::InvalidArgument("dest " + dest + " is a loop device backed by the source " +
                                     source + ": writing to it would write the source" + kAdvice);
    }
    if (!dest_blk && src_blk) {
      return Status::InvalidArgument("the source " + source + " is a loop device backed by dest " +
                                     dest + ": writing dest would change the source" + kAdvice);
    }
    return Status::InvalidArgument("dest " + dest + " is the source itself (same " +
                                   (dest_blk ? std::string("device") : std::string("inode")) +
                                   ") under another name (a hard link, a bind mount, a symlink "
                                   "of " + source + ")" + kAdvice);
  }
  CLONEFS_ASSIGN_OR_RETURN(StorageKeys dst_under, UnderlyingStorage(dest));
  if (Intersect(src_own, dst_under)) {
    return Status::InvalidArgument("dest " + dest + " is stored on the source " + source +
                                   " (through a loop device, partition or device-mapper "
                                   "device): writing to it would change the source" + kAdvice);
  }
  CLONEFS_ASSIGN_OR_RETURN(StorageKeys src_under, UnderlyingStorage(source));
  if (Intersect(dst_own, src_under)) {
    return Status::InvalidArgument("the source " + source + " is stored on dest " + dest +
                                   " (dest holds its file system, disk or backing file): "
                                   "writing dest would change the source" + kAdvice);
  }
  return Status::OK();
}

}  // namespace clonefs::clone
