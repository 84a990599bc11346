#include "fuse/fuse_fs.h"

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <fcntl.h>

#include <algorithm>
#include <ctime>

namespace clonefs::fuse {
namespace {

int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

struct timespec ToTimespec(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  return ts;
}

int64_t FromTimespec(const struct timespec& ts) {
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

FuseFs::FuseFs(Engine* engine, const FuseFsOptions& options, FuseChannel* channel,
               const PassthroughOptions& passthrough)
    : engine_(engine),
      options_(options),
      image_size_(engine->image_size()),
      mount_time_ns_(NowNs()),
      channel_(channel),
      passthrough_(engine, channel, passthrough),
      mtime_ns_(mount_time_ns_),
      atime_ns_(mount_time_ns_),
      ctime_ns_(mount_time_ns_),
      mode_(options.mode & 07777),
      uid_(options.uid),
      gid_(options.gid) {}

bool FuseFs::Stat(uint64_t ino, struct stat* st) const {
  *st = {};
  st->st_ino = ino;
  {
    std::lock_guard<std::mutex> l(attr_mu_);
    st->st_uid = uid_;
    st->st_gid = gid_;
    if (ino == kFileIno) st->st_mode = S_IFREG | mode_;
  }
  if (ino == kRootIno) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
    st->st_size = 0;
    st->st_mtim = st->st_ctim = st->st_atim = ToTimespec(mount_time_ns_);
    return true;
  }
  if (ino != kFileIno) return false;
  st->st_nlink = 1;
  st->st_size = static_cast<off_t>(image_size_);
  // What may hold data (engine.h): a sparse image shows its holes to du
  // and cp --sparse=auto, as SEEK_DATA/SEEK_HOLE do.
  st->st_blocks = static_cast<blkcnt_t>((engine_->AllocatedBytes() + 511) / 512);
  st->st_blksize = 4096;
  st->st_mtim = ToTimespec(mtime_ns_.load(std::memory_order_relaxed));
  st->st_atim = ToTimespec(atime_ns_.load(std::memory_order_relaxed));
  st->st_ctim = ToTimespec(ctime_ns_.load(std::memory_order_relaxed));
  struct stat dest;
  if (passthrough_.BackingAttributes(&dest)) {
    // Passed-through writes reach dest without us: its size (a write past
    // the end extends it, as the kernel already shows to that descriptor)
    // and its times are the file's.
    if (dest.st_size > st->st_size) {
      st->st_size = dest.st_size;
      st->st_blocks = (dest.st_size + 511) / 512;
    }
    if (FromTimespec(dest.st_mtim) > FromTimespec(st->st_mtim)) st->st_mtim = dest.st_mtim;
    if (FromTimespec(dest.st_ctim) > FromTimespec(st->st_ctim)) st->st_ctim = dest.st_ctim;
  }
  return true;
}

FuseStats FuseFs::Stats() const {
  FuseStats s;
  s.passthrough = passthrough_.Describe();
  s.opens = opens_.load(std::memory_order_relaxed);
  s.passthrough_opens = passthrough_.passthrough_opens();
  s.read_requests = reads_.load(std::memory_order_relaxed);
  s.write_requests = writes_.load(std::memory_order_relaxed);
  return s;
}

int FuseFs::SetAttr(uint64_t ino, const struct stat& attr, int to_set) {
  if (ino != kFileIno) return EPERM;
  // The image has a fixed size (SPEC §3): truncating to its own size is a
  // no-op that some tools issue; anything else is refused.
  if ((to_set & FUSE_SET_ATTR_SIZE) && static_cast<uint64_t>(attr.st_size) != image_size_) {
    return EPERM;
  }
  const int64_t now = NowNs();
  {
    std::lock_guard<std::mutex> l(attr_mu_);
    if (to_set & FUSE_SET_ATTR_MODE) mode_ = attr.st_mode & 07777;
    if (to_set & FUSE_SET_ATTR_UID) uid_ = attr.st_uid;
    if (to_set & FUSE_SET_ATTR_GID) gid_ = attr.st_gid;
  }
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
    atime_ns_.store(now, std::memory_order_relaxed);
  } else if (to_set & FUSE_SET_ATTR_ATIME) {
    atime_ns_.store(FromTimespec(attr.st_atim), std::memory_order_relaxed);
  }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    mtime_ns_.store(now, std::memory_order_relaxed);
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    mtime_ns_.store(FromTimespec(attr.st_mtim), std::memory_order_relaxed);
  }
  ctime_ns_.store(now, std::memory_order_relaxed);
  return 0;
}

int FuseFs::DirectReadFd(uint64_t ino, uint64_t off, uint32_t size, uint32_t* len) {
  if (ino != kFileIno || size == 0 || off >= image_size_) return -1;
  const uint64_t n = std::min<uint64_t>(size, image_size_ - off);
  const int fd = engine_->DirectReadFd(off, static_cast<size_t>(n));
  if (fd < 0) return -1;
  CountRead();
  *len = static_cast<uint32_t>(n);
  return fd;
}

int FuseFs::DirectWriteFd(uint64_t ino, uint64_t off, uint32_t size, uint32_t flags,
                          uint32_t* len) {
  if (ino != kFileIno || size == 0 || off >= image_size_ || (flags & O_DSYNC) != 0) return -1;
  const uint64_t n = std::min<uint64_t>(size, image_size_ - off);  // cut at the end, as OpWrite
  const int fd = engine_->DirectWriteFd(off, static_cast<size_t>(n));
  if (fd < 0) return -1;
  CountWrite();
  TouchModified();
  *len = static_cast<uint32_t>(n);
  return fd;
}

void FuseFs::TouchModified() {
  const int64_t now = NowNs();
  mtime_ns_.store(now, std::memory_order_relaxed);
  ctime_ns_.store(now, std::memory_order_relaxed);
}

Status FuseFs::Destroy() {
  std::lock_guard<std::mutex> l(shutdown_mu_);
  if (!shut_down_) {
    shut_down_ = true;
    shutdown_status_ = engine_->Shutdown();
  }
  return shutdown_status_;
}

Status FuseFs::shutdown_status() const {
  std::lock_guard<std::mutex> l(shutdown_mu_);
  return shutdown_status_;
}

}  // namespace clonefs::fuse
