// FuseFs: the state behind clonefs's FUSE filesystem (internal to src/fuse).
//
// The filesystem has exactly two inodes: the root directory (FUSE_ROOT_ID)
// and one regular file, the exposed image, whose size is the image size and
// never changes. Every data operation on the file goes to the Engine; this
// object only holds what the kernel needs besides the data: attributes, the
// count of open handles, the status of the final shutdown, the channel to
// the kernel (fuse_channel.h) and what decides passthrough (passthrough.h).
//
// The operation handlers live in fuse_ops.cc, one small function each, all
// listed in one table (FuseFsOperations()). Each handler finds its FuseFs
// through fuse_req_userdata(req), decodes the request, calls the engine and
// replies exactly once. errno values are produced only there, from
// Status::ToErrno().
//
// THREAD SAFETY: handlers run concurrently on libfuse's worker threads.
//   - engine_: its methods are thread-safe (engine.h).
//   - open_handles_, mtime_ns_, atime_ns_, ctime_ns_ and the request
//     counters: atomics.
//   - channel_ and passthrough_: thread-safe (their headers).
//   - attr_mu_ guards mode_, uid_, gid_ (changed only by setattr).
//   - shutdown_status_ is written once by Destroy() (libfuse calls destroy
//     after every worker has stopped) and read after the loop has returned.
//
// LIFECYCLE: built by FuseServer before the session exists; must outlive the
// session. Destroy() (the FUSE destroy operation) shuts the engine down; the
// engine and the channel are owned by the caller.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/status.h"
#include "engine/engine.h"
#include "fuse/fuse_channel.h"
#include "fuse/fuse_fs_options.h"
#include "fuse/passthrough.h"

struct fuse_lowlevel_ops;

namespace clonefs::fuse {

inline constexpr uint64_t kRootIno = 1;  // FUSE_ROOT_ID
inline constexpr uint64_t kFileIno = 2;

// The table of every operation clonefs implements (fuse_ops.cc).
const fuse_lowlevel_ops& FuseFsOperations();

class FuseFs {
 public:
  // REQUIRES: engine and channel outlive this object; options.file_name is a
  // valid single path component. Takes ownership of passthrough.backing_fd.
  FuseFs(Engine* engine, const FuseFsOptions& options, FuseChannel* channel,
         const PassthroughOptions& passthrough = {});
  FuseFs(const FuseFs&) = delete;
  FuseFs& operator=(const FuseFs&) = delete;

  Engine* engine() const { return engine_; }
  FuseChannel* channel() const { return channel_; }
  Passthrough* passthrough() { return &passthrough_; }
  const FuseFsOptions& options() const { return options_; }
  uint64_t image_size() const { return image_size_; }

  // Fills *st for kRootIno or kFileIno. Returns false for any other inode.
  // Once opens have been passed through, the file's size and mtime/ctime
  // are at least dest's (Passthrough::BackingAttributes): the kernel writes
  // dest directly then.
  bool Stat(uint64_t ino, struct stat* st) const;

  // setattr: applies mode/uid/gid/times from `attr` as selected by the
  // FUSE_SET_ATTR_* bits in `to_set`. A size change is refused. Returns 0 or
  // an errno (EPERM for a size change or any change to the root directory).
  int SetAttr(uint64_t ino, const struct stat& attr, int to_set);

  // Called after a successful write: the file's mtime/ctime become now.
  void TouchModified();

  void HandleOpened() {
    open_handles_.fetch_add(1, std::memory_order_relaxed);
    opens_.fetch_add(1, std::memory_order_relaxed);
  }
  void HandleReleased() { open_handles_.fetch_sub(1, std::memory_order_relaxed); }
  // Open handles of the image file right now.
  int open_handles() const { return open_handles_.load(std::memory_order_relaxed); }
  // READ and WRITE requests this daemon served (passed-through I/O never
  // reaches it).
  void CountRead() { reads_.fetch_add(1, std::memory_order_relaxed); }
  void CountWrite() { writes_.fetch_add(1, std::memory_order_relaxed); }
  FuseStats Stats() const;

  // For a transport that reads the file itself (UringQueues' direct reads):
  // a READ of `size` bytes at `off` of inode `ino` that needs nothing but
  // dest's bytes (Engine::DirectReadFd). Returns the descriptor to pread
  // them from and sets *len (the size cut at the end of the image), and
  // counts the read; or -1 (counting nothing), and the READ goes the usual
  // way. Thread-safe.
  int DirectReadFd(uint64_t ino, uint64_t off, uint32_t size, uint32_t* len);
  // The same for a WRITE with open flags `flags` (Engine::DirectWriteFd;
  // never a sync one). The file's mtime is set when it is placed.
  int DirectWriteFd(uint64_t ino, uint64_t off, uint32_t size, uint32_t flags, uint32_t* len);

  // FUSE destroy: shuts the engine down (final commit) once. Thread-safe and
  // idempotent; returns the shutdown status.
  Status Destroy();
  // The status of Destroy(), or OK if it has not run.
  Status shutdown_status() const;

 private:
  Engine* const engine_;
  const FuseFsOptions options_;
  const uint64_t image_size_;
  const int64_t mount_time_ns_;

  FuseChannel* const channel_;
  Passthrough passthrough_;

  std::atomic<int> open_handles_{0};
  std::atomic<uint64_t> opens_{0};
  std::atomic<uint64_t> reads_{0};
  std::atomic<uint64_t> writes_{0};
  std::atomic<int64_t> mtime_ns_;
  std::atomic<int64_t> atime_ns_;
  std::atomic<int64_t> ctime_ns_;

  mutable std::mutex attr_mu_;
  uint32_t mode_;  // GUARDED_BY(attr_mu_): permission bits only (07777)
  uint32_t uid_;   // GUARDED_BY(attr_mu_)
  uint32_t gid_;   // GUARDED_BY(attr_mu_)

  mutable std::mutex shutdown_mu_;
  bool shut_down_ = false;       // GUARDED_BY(shutdown_mu_)
  Status shutdown_status_;       // GUARDED_BY(shutdown_mu_)
};

}  // namespace clonefs::fuse
