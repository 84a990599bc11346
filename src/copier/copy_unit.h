// The background copier's units and pieces (internal to background_copier.cc
// and copier_writer.cc).
//
// A Unit is a run of regions the copier holds in the RegionLockTable from
// the moment it is picked until it is finished (marked, or dropped unmarked).
// A Piece is one step of it: a read of at most kMaxCopyChunk bytes of data,
// a hole to punch, or (queued by the issuer when it drops the last
// reference) the unit's finish.
//
// REFERENCES: a unit starts with one reference, the issuer's; every piece
// issued adds one, dropped when a writer has handled the piece; the issuer
// drops its own once it has issued every piece (or gave up). Whoever drops
// the last one finishes the unit, exactly once.
//
// THREAD SAFETY: plan/next_seg/seg_done are the issuer's alone; refs and
// failed are atomic; the rest is guarded by `mu` (a leaf lock).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/status.h"
#include "copier/background_copier.h"
#include "copier/copy_buffer.h"
#include "copier/hydrator.h"

namespace clonefs {

struct BackgroundCopier::Unit {
  uint64_t first = 0;
  uint64_t count = 0;
  bool probe = false;  // the one probe of a source-wide backoff
  bool retry = false;  // holds a region that failed before (retried alone)
  CopyOrigin origin = CopyOrigin::kCursor;
  uint64_t dest_errors_at_start = 0;  // HealthTracker::DestErrors() when picked
  bool registered = false;  // the issuer's, then read by the finisher: in prefetching_

  // The issuer's.
  std::vector<RunSegment> plan;
  size_t next_seg = 0;    // next segment to issue
  uint64_t seg_done = 0;  // bytes of it already issued

  std::atomic<uint32_t> refs{1};
  std::atomic<bool> failed{false};

  std::mutex mu;
  Status error;                // GUARDED_BY(mu); the first failure
  bool failure_noted = false;  // GUARDED_BY(mu); its backoff is already recorded
  bool failed_in_dest = false;  // GUARDED_BY(mu); that failure was dest's (HealthTracker logs it)
  bool abandoned = false;      // GUARDED_BY(mu); not every piece was issued
  CopyOutcome out;             // GUARDED_BY(mu)

  // Records the first failure. `noted`: the backoff bookkeeping for it is
  // done (source-wide, or per region at the time of the failed read).
  void Fail(const Status& s, bool noted) {
    std::lock_guard<std::mutex> l(mu);
    if (error.ok()) {
      error = s;
      failure_noted = noted;
    }
    failed.store(true, std::memory_order_release);
  }
  // Records a failure writing into dest (the first failure only).
  void FailInDest(const Status& s) {
    std::lock_guard<std::mutex> l(mu);
    if (error.ok()) {
      error = s;
      failure_noted = false;
      failed_in_dest = true;
    }
    failed.store(true, std::memory_order_release);
  }
  void Add(const CopyOutcome& o) {
    std::lock_guard<std::mutex> l(mu);
    out.bytes_read += o.bytes_read;
    out.bytes_written += o.bytes_written;
    out.bytes_zeroed += o.bytes_zeroed;
  }
};

struct BackgroundCopier::Piece {
  enum class Kind { kData, kHole, kFinish };
  Kind kind = Kind::kData;
  Unit* unit = nullptr;
  uint64_t off = 0;
  uint64_t len = 0;
  std::unique_ptr<CopyBuffer> buf;  // kData: the bytes read
  Status read_status;               // kData: the read's outcome
  uint64_t issued_ns = 0;           // kData: when the read was issued (the copier's clock)
  // kData: the read never reached the source (its unit had already failed,
  // or the source changed while it waited); not a failed read.
  std::atomic<bool> skipped{false};
};

}  // namespace clonefs
