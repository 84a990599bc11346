// ForeignWriteWatch: is another process writing a file this one keeps open,
// and (with privilege) may it open it at all? (SPEC §7a: dest is the
// clone's alone while mounted.)
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
// "another process" where the id is hidden). Writes through mmap and Linux
// AIO writes (io_submit) make no events and are not seen.
//
// COST: one event per write of this process too; the kernel merges queued
// events of one writer, and the thread reads the queue at most every
// `poll_interval_ns` (20 ms by default), so its wake-ups stay few however
// fast dest is written, and a foreign write is reported within about that.
// A queue that overflowed (16384 unread events, unprivileged) is reported
// to `on_overflow`: writes may have been missed.
//
// OPEN GUARD (Options::on_denied set, and CAP_SYS_ADMIN): a second group,
// FAN_CLASS_CONTENT with FAN_OPEN_PERM on the inode, has the kernel ask the
// watch's thread before any process opens the file; this process and other
// processes running the same executable (another `clonefs` command: a
// second mount finding the dest lock taken, `clonefs check`) are let in,
// anyone else gets EPERM (`mkfs.ext4 dest.img`: "Operation not permitted")
// and `on_denied` says who. Opens made before the guard began, and
// truncate(2) by path, are not asked about: the FAN_MODIFY watch sees what
// they write. The guard's questions are answered at once, whatever the
// pacing of the FAN_MODIFY queue; if the thread ever ends early it closes
// the guard's group first, so that no open of the file is left waiting
// (the kernel lets pending ones through when a group goes). Without the
// privilege the guard is skipped (guarding() false).
//
// THREAD SAFETY: the callbacks run on the watch's own thread, one at a time.
// LIFECYCLE: Start borrows `fd` only for the marks (they follow the inode);
// the destructor stops and joins the thread, after which no callback runs.
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
  using OnDenied = std::function<void(const std::string& who)>;

  struct Options {
    OnWrite on_write;        // required
    OnOverflow on_overflow;  // may be empty
    // Refuse other programs' opens (OPEN GUARD), telling who; empty: only
    // watch writes.
    OnDenied on_denied;
    // The FAN_MODIFY queue is read at most this often. Default: 20 ms.
    uint64_t poll_interval_ns = 20'000'000;
  };

  // Watches the inode of the open file `fd`. Errors: NotSupported where the
  // kernel or the file system cannot (no fanotify, no file handles, e.g. some
  // FUSE file systems), Permission, IoError; the caller then goes on without.
  // A guard that cannot be set up (no privilege) is not an error.
  static Result<std::unique_ptr<ForeignWriteWatch>> Start(int fd, Options options);
  ~ForeignWriteWatch();
  ForeignWriteWatch(const ForeignWriteWatch&) = delete;
  ForeignWriteWatch& operator=(const ForeignWriteWatch&) = delete;

  // Foreign writes seen so far (events, after the kernel's merging).
  uint64_t foreign_events() const { return foreign_.load(); }
  // Whether other programs' opens are refused (OPEN GUARD), and how many were.
  bool guarding() const { return guarding_; }
  uint64_t opens_denied() const { return denied_.load(); }

 private:
  ForeignWriteWatch(int fan_fd, int perm_fd, int stop_fd, Options options);
  void Run();
  // Reads every queued FAN_MODIFY event; false once the group's fd fails.
  bool Drain();
  // Answers every queued open; false once the guard's fd fails.
  bool AnswerOpens();
  // Whether `pid` may open the file: this process, or one running the same
  // executable.
  bool MayOpen(int pid) const;

  const int fan_fd_;
  int perm_fd_;        // -1 without a guard; owned by the thread once it runs
  const int stop_fd_;  // an eventfd: written by the destructor
  const Options options_;
  const bool guarding_;
  std::atomic<uint64_t> foreign_{0};
  std::atomic<uint64_t> denied_{0};
  std::thread thread_;
};

// "pid 4242 (mkfs.ext4)" for a live process, "pid 4242" for one gone,
// "another process" for 0 (an id the kernel hides).
std::string DescribeWriter(int pid);

}  // namespace clonefs
