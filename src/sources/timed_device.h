// TimedSource: a local source (a file or block device, possibly on a stalled
// NFS server or a dying disk) whose reads never keep their caller waiting
// longer than the source timeout (SPEC §7a: a stalled source must not leave
// a reader unkillable).
//
// Read runs the inner device's Read on a small pool of I/O threads into a
// bounce buffer owned by the request, and waits up to the timeout, polling
// the calling thread's CancelToken (base/cancel.h) every 50 ms: the caller
// gets IoError(ETIMEDOUT) naming the source and the timeout, or
// IoError(EINTR) "read interrupted", and its buffer is never touched after
// that -- a late answer lands in the bounce buffer and is dropped. A pool
// thread stuck in the kernel is left behind: the pool starts a replacement
// so it keeps `threads` threads serving (never more than 4 x `threads` in
// all), and the stuck thread ends when its read returns. Health() is
// kStalled while a read has run longer than the timeout, and its
// oldest_request_unix_ns is when the oldest running job started. Reads go ahead of
// queued ReadAsyncs (a user waits for them; the copier does not).
//
// ReadAsync (AsyncReads() is true) runs the inner Read on the pool directly
// into the caller's buffer -- no bounce buffer and no deadline: the copier,
// its user, keeps the buffer until done is called (on a pool thread).
//
// NextData, NextHole and CheckUnchanged (lseek and fstat, which block on a
// stalled NFS server just as reads do) run on the same pool and are waited
// for the same way: ETIMEDOUT or EINTR instead of a caller stuck for good.
// A stuck one counts as a stalled read for Health(). Callers check the
// source right after reading it (SourceWatch), so a Read's pool job also
// runs the inner CheckUnchanged once the read is done, and the next
// CheckUnchanged on the same thread, if that thread called nothing else on
// the device in between, answers with that result instead of a second trip
// through the pool.
//
// Everything else forwards to the inner device: Write, Flush, Zero,
// SpliceFd (a zero-copy reply from it would bypass the timeout); Size,
// ReadOnly and Name are the inner device's at construction.
//
// CONTENT. A block device has no mtime to tell that it was rewritten.
// SetIdentityCheck (device.h; the mount gives a local block-device source
// the check it made itself: size and sampled fingerprints) makes
// CheckUnchanged also run that check, on the pool under the timeout, at
// most every identity_recheck_ns; a Mismatch is sticky: every later
// CheckUnchanged answers it. A check that cannot read is no change (the
// next one tries again). The first check is one interval after the call.
//
// RELEASE. Release() (the clone became complete) refuses new requests
// (reads and seeks fail with IoError EIO "released", CheckUnchanged is OK:
// nothing is looked at any more), waits for those in progress (a Read at
// most the timeout), shuts the pool down and drops the inner device, so the
// file is closed (by the last pool thread as it exits, at most a moment
// after Release returns) and its file system can be unmounted. A pool thread left
// behind in a stuck read keeps the inner device until that read returns.
// Health() reports kReleased from then on.
//
// THREAD SAFETY: every method may be called concurrently (one mutex guards
// the pool's queues and counters; no lock is held while the inner device
// runs or while done runs).
//
// LIFECYCLE: the destructor fails queued requests (Aborted; ReadAsync's done
// is then called on the destroying thread), waits for the pool threads that
// are idle or running a ReadAsync (it writes into the caller's buffer), and
// leaves threads stuck in a Read behind: they share ownership of the inner
// device and release it when their read returns. No Read may be in
// progress when the device is destroyed, nor a Release.
#pragma once

#include <cstdint>
#include <memory>

#include "devices/device.h"

namespace clonefs {

struct TimedSourceOptions {
  // How long Read waits for the inner device. Default: 30 s.
  uint64_t timeout_ns = 30'000'000'000;
  // Pool threads serving reads. Default: 4.
  int threads = 4;
  // How often CheckUnchanged runs the identity check given by
  // SetIdentityCheck (CONTENT below). Default: 10 s.
  uint64_t identity_recheck_ns = 10'000'000'000;
};

// Wraps `inner` (REQUIRES: non-null).
std::unique_ptr<Device> MakeTimedSource(std::unique_ptr<Device> inner,
                                        TimedSourceOptions options = {});

}  // namespace clonefs
