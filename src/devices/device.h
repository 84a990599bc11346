// Device: the only way the engine and the copier reach the source and the
// destination. Implementations:
//   - posix_device.h: regular files and block devices (the only code in
//     clonefs that calls pread/pwrite/fdatasync/fallocate/lseek on images);
//   - mem_device.h: an in-memory image, for component tests and benchmarks;
//   - fault_device.h: a wrapper that injects errors and models power loss by
//     keeping unsynced writes aside.
//
// Semantics shared by all implementations:
//   - Offsets and lengths are bytes; no alignment is required (a POSIX device
//     opened with O_DIRECT handles alignment internally).
//   - Read returns exactly `len` bytes or an error; reading past Size() is an
//     InvalidArgument error. Write likewise writes everything or fails.
//   - Flush makes every write that completed before the call durable
//     (fdatasync). It says nothing about writes that race with it.
//   - Zero makes [off, off+len) read back as zeros: kPunch deallocates
//     (FALLOC_FL_PUNCH_HOLE|KEEP_SIZE, falling back to zero-range/writing
//     zeros where the file system or device cannot punch), kWriteZeros keeps
//     space allocated (FALLOC_FL_ZERO_RANGE, falling back to writing zeros).
//   - NextData/NextHole describe allocation truthfully where the device can
//     (SEEK_DATA/SEEK_HOLE); otherwise NextData(off) == off and NextHole(off)
//     == Size() ("all data"), which is always a correct answer. A device
//     that is now shorter than Size() answers an error, never "hole up to
//     Size()": the missing tail is not zeros.
//   - ReadAsync starts a read and calls `done` exactly once when it has
//     finished (from any thread, possibly before ReadAsync returns); the
//     buffer must stay valid until then. AsyncReads() says whether reads
//     really overlap (a remote source keeps many in flight on its
//     connections); where it is false, ReadAsync is Read run in the caller
//     and a pipelined caller brings its own threads.
//   - Read may wait for a slow source: remote and timed sources bound the
//     wait by their source timeout (then IoError, ETIMEDOUT) and give up
//     early with IoError(EINTR) when the calling thread's CancelToken
//     (base/cancel.h) is cancelled. ReadAsync has no deadline of its own
//     beyond the device's (a remote source fails requests it cannot serve
//     after its timeout, and all of them when it is destroyed).
//   - Health() reports reachability (SourceHealth); a local device is
//     always connected.
//   - CheckUnchanged re-examines the device against what was seen at open
//     (size; for a read-only file, also its mtime where that is meaningful).
//
// THREAD SAFETY: every method may be called concurrently from any thread
// (positional I/O; no shared file offset).
//
// ERRORS: Status::FromErrno with the operation, path and offset in the message
// (ENOSPC -> NoSpace, EIO -> IoError, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/result.h"
#include "base/status.h"
#include "devices/foreign_write_watch.h"
#include "devices/source_health.h"

namespace clonefs {

enum class ZeroMode { kPunch, kWriteZeros };

class Device {
 public:
  virtual ~Device() = default;

  // Size in bytes, fixed for the device's lifetime as seen by clonefs.
  virtual uint64_t Size() const = 0;
  virtual bool ReadOnly() const = 0;
  // Human-readable name (the path, or "mem:<n>") for messages.
  virtual const std::string& Name() const = 0;

  virtual Status Read(uint64_t off, void* buf, size_t len) = 0;

  using ReadDone = std::function<void(Status)>;
  // Starts a read of [off, off+len) into buf; calls done(status) exactly
  // once when it has finished. Default: done(Read(...)) in the caller.
  virtual void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) {
    done(Read(off, buf, len));
  }
  // Whether ReadAsync overlaps reads (true) or runs them in the caller.
  virtual bool AsyncReads() const { return false; }
  // Whether a Read waits behind the ReadAsyncs already issued (one queue
  // for both, as on a single connection to a remote server), so that the
  // bytes a copier keeps in flight delay a user's read. Default: false (a
  // Read goes ahead of queued ReadAsyncs, or has a path of its own).
  virtual bool SharesReadQueue() const { return false; }
  // Whether NextData and NextHole ask a server (a round trip each, as NBD
  // block status does) rather than the local kernel (lseek, however the
  // reads are issued). Status asks fewer of them then. Default: false.
  virtual bool RemoteHoleQueries() const { return false; }
  // Reachability, for the copier and for status. Default: connected.
  virtual SourceHealth Health() const { return SourceHealth(); }
  // The caller will not read this device again (a clone that became
  // complete no longer needs its source): once the reads in progress have
  // ended, a remote source closes its connections and ends the processes it
  // started, so the server can shut down, a timed file source
  // (timed_device.h) closes the file, so its file system can be unmounted,
  // and Health() says kReleased; reads after that fail. May block until
  // those reads end (at most the source timeout). Default: nothing.
  virtual void Release() {}
  // Errors: ReadOnly-opened devices return Permission.
  virtual Status Write(uint64_t off, const void* buf, size_t len) = 0;
  virtual Status Flush() = 0;
  virtual Status Zero(uint64_t off, uint64_t len, ZeroMode mode) = 0;

  // First offset >= off that holds data, or Size() if none.
  virtual Result<uint64_t> NextData(uint64_t off) = 0;
  // First offset >= off that is a hole, or Size() if none.
  virtual Result<uint64_t> NextHole(uint64_t off) = 0;

  // OK if the device is, as far as it can tell, what it was when opened;
  // otherwise Mismatch saying what changed ("<name> shrank from A to B
  // bytes", "... grew ...", "... was modified: its mtime changed ..."). A
  // short read (end of file before Size()) is always an error, whatever
  // this says. Cheap (an fstat): callers may call it after every read.
  // Meant for the source, which clonefs never writes; on a writable device
  // only the size is compared. Default: OK (the device cannot change).
  virtual Status CheckUnchanged() { return Status::OK(); }

  // For a remote source: the modification time its server gave for it at
  // open (an http(s) file's Last-Modified), in ns since the epoch, which
  // the clone records and compares as a file's mtime; 0 if the server gave
  // none (NBD and SSH servers give none; files are stat'ed instead).
  // Default: 0.
  virtual int64_t ServerMtimeNs() const { return 0; }

  // Bytes the device has allocated (a regular file's st_blocks x 512:
  // holes and unwritten tails are not counted), or nullopt where that is
  // not known (a block device, memory, a remote source). Cheap (an fstat).
  // Default: nullopt.
  virtual std::optional<uint64_t> AllocatedBytes() const { return std::nullopt; }

  // For a writable regular file now longer than Size() (something wrote
  // past its end): truncates it back to Size() and returns the bytes cut;
  // 0 if it is not longer (or not a regular file). Never shortens it below
  // Size(). Errors: IoError from fstat/ftruncate. Default: 0.
  virtual Result<uint64_t> CutGrowth() { return uint64_t{0}; }

  // For a writable device: starts watching it for writes by other processes,
  // and refusing their opens if asked (foreign_write_watch.h); the watch
  // stops when the handle is destroyed, which must happen before the device
  // is. NotSupported where this device cannot be watched. Default:
  // NotSupported.
  virtual Result<std::unique_ptr<ForeignWriteWatch>> WatchForeignWrites(
      ForeignWriteWatch::Options options) {
    (void)options;
    return Status::NotSupported(Name() + " cannot be watched for other writers");
  }

  // Decides whether the source seen through `view` (a read-only Device
  // over one connection to it: its Size() is what that connection
  // reports) is still the one the clone was made from: OK if so, Mismatch
  // naming what differs if not, another error if it could not tell (a
  // read failed). Called on the device's own threads; it may block on
  // reads of `view` only.
  using IdentityCheck = std::function<Status(Device& view)>;
  // A remote source (nbd_device.h, IDENTITY) runs `check` after every
  // reconnect before the new connection serves anything, and re-runs it
  // now and then from CheckUnchanged; from the first Mismatch on, every
  // request and CheckUnchanged fail with it. A TimedSource (a local file or
  // device) runs it from CheckUnchanged now and then (timed_device.h,
  // CONTENT). Other devices ignore it.
  // Call once, before the device is in use. Default: ignored.
  virtual void SetIdentityCheck(IdentityCheck check) { (void)check; }

  // Write for data no one is waiting to read back: the background copier's.
  // Same contract as Write (durable after the next Flush, read back by Read),
  // but the device may leave the data in the page cache even where Write
  // bypasses it (O_DIRECT), so the caller does not wait for the disk, nor
  // for a Flush that another thread runs meanwhile. Default: Write.
  virtual Status WriteCached(uint64_t off, const void* buf, size_t len) {
    return Write(off, buf, len);
  }

  // A page-cache hint for data written by the background copier, which no
  // user asked to read (meaningful only where WriteCached goes through the
  // page cache; the default does nothing): DropCached writes [off, off+len)
  // back, waits for that, and evicts the range's clean pages. Not a
  // durability point (Flush is) and never fails: a range the kernel keeps
  // stays cached. It never hides a write-back error from the next Flush.
  // PageCached says whether the hint does anything.
  virtual bool PageCached() const { return false; }
  virtual void DropCached(uint64_t /*off*/, uint64_t /*len*/) {}
  // Reads [off, off+len) from the page cache where Read would bypass it
  // (O_DIRECT) and all of the range is there -- data WriteCached left that
  // DropCached has not evicted yet -- and returns true; else reads nothing
  // and returns false (the caller then calls Read). Same bytes as Read
  // would return: the kernel keeps the two paths coherent. Why: an O_DIRECT
  // read of dirty cached pages first writes them back, then reads them
  // from the disk. Costs a cachestat call: ask only where WriteCached data
  // may be cached. Default: false.
  virtual bool ReadFromCache(uint64_t /*off*/, void* /*buf*/, size_t /*len*/) { return false; }

  // A file descriptor whose pread at image offsets returns the device's
  // content, for zero-copy replies (FUSE splice), or -1 if there is none.
  // Only the FUSE layer uses it, and only for reads.
  virtual int SpliceFd() const { return -1; }

  // A file descriptor from which a pread of exactly [off, off+len) into a
  // page-aligned buffer returns what Read would, so that a transport can
  // read it itself (asynchronously, into its own buffer), or -1 where that
  // would not be the same (a range Read bounces through its own buffers,
  // a range outside the device, a device with rules or overlays). Only the
  // FUSE layer uses it, and only for reads. Default: -1.
  virtual int DirectReadFd(uint64_t /*off*/, size_t /*len*/) const { return -1; }
  // The same for writes: a descriptor to which a pwrite of exactly
  // [off, off+len) from a page-aligned buffer does what Write would, or -1.
  // Default: -1.
  virtual int DirectWriteFd(uint64_t /*off*/, size_t /*len*/) const { return -1; }
};

}  // namespace clonefs
