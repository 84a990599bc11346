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

}  // namespace

Status CheckDistinctStorage(const std::string& source, const std::string& dest) {
  struct stat dst;
  if (stat(dest.c_str(), &dst) != 0) return Status::OK();  // a new file is nothing else
  CLONEFS_ASSIGN_OR_RETURN(StorageKeys src_own, OwnStorage(source));
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
