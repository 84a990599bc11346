// ForeignWriteWatch: is another process writing a file this one keeps open?
// (SPEC §7a: dest is the clone's alone while mounted.)
//
// The dest lock (flock) keeps other clones away, but not `mkfs`, `dd`, `cp`,
// `losetup` or a VM pointed at dest instead of at the exposed file: their
// writes keep dest's size, so the size check (DestWatch) cannot see them,
// and the clone would go on serving their bytes as hydrated data.
//
// The watch is an fanotify group (FAN_CLASS_NOTIF | FAN_REPORT_FID, which
// an unprivileged process may create since Linux 5.13) with an inode mark
// for FAN_MODIFY on the file: the kernel queues an event for every write,
// truncation and fallocate of that inode, whoever makes it, carrying the
// writer's process id -- the real one for a privileged listener; for an
// unprivileged one, this process's own id or 0 for anyone else's. Events of
// this process (any of its threads, io_uring workers included) are ignored;
// any other calls `on_write` with who wrote ("pid 4242 (mkfs.ext4)", or
// "another process" where the id is hidden). Writes through mmap make no
// events and are not seen.
//
// COST: one event per write of this process too; the kernel merges queued
// events of one writer, and the thread reads the queue at most every
// `poll_interval_ns` (20 ms by default), so its wake-ups stay few however
// fast dest is written, and a foreign write is reported within about that.
// A queue that overflowed (16384 unread events, unprivileged) is reported
// to `on_overflow`: writes may have been missed.
//
// THREAD SAFETY: the callbacks run on the watch's own thread, one at a time.
// LIFECYCLE: Start borrows `fd` only for the mark (the mark follows the
// inode); the destructor stops and joins the thread, after which no callback
// runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/result.h"

namespace clonefs {

class ForeignWriteWatch {
 public:
  using OnWrite = std::function<void(const std::string& who)>;
  using OnOverflow = std::function<void()>;

  // Watches the inode of the open file `fd`. Errors: NotSupported where the
  // kernel or the file system cannot (no fanotify, no file handles, e.g. some
  // FUSE file systems), Permission, IoError; the caller then goes on without.
  static Result<std::unique_ptr<ForeignWriteWatch>> Start(int fd, OnWrite on_write,
                                                          OnOverflow on_overflow = nullptr,
                                                          uint64_t poll_interval_ns = 20'000'000);
  ~ForeignWriteWatch();
  ForeignWriteWatch(const ForeignWriteWatch&) = delete;
  ForeignWriteWatch& operator=(const ForeignWriteWatch&) = delete;

  // Foreign writes seen so far (events, after the kernel's merging).
  uint64_t foreign_events() const { return foreign_.load(); }

 private:
  ForeignWriteWatch(int fan_fd, int stop_fd, OnWrite on_write, OnOverflow on_overflow,
                    uint64_t poll_interval_ns);
  void Run();
  // Reads every queued event; false once the group's fd fails.
  bool Drain();

  const int fan_fd_;
  const int stop_fd_;  // an eventfd: written by the destructor
  const OnWrite on_write_;
  const OnOverflow on_overflow_;
  const uint64_t poll_interval_ns_;
  std::atomic<uint64_t> foreign_{0};
  std::thread thread_;
};

// "pid 4242 (mkfs.ext4)" for a live process, "pid 4242" for one gone,
// "another process" for 0 (an id the kernel hides).
std::string DescribeWriter(int pid);

}  // namespace clonefs
