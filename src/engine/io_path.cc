// The request path: SPEC §3's table, piece by piece (see engine_impl.h).
#include <algorithm>
#include <cstring>
#include <vector>
#include <string>

#include "base/cancel.h"
#include "base/test_hooks.h"
#include "engine/engine_impl.h"

namespace clonefs {

// The unhydrated regions of the current stretch, locked in ascending order.
// Unlocks whatever it still holds when destroyed (error paths).
class EngineImpl::StretchLocks {
 public:
  static constexpr size_t kMax = 64;
  explicit StretchLocks(RegionLockTable* t) : t_(t) {}
  ~StretchLocks() { UnlockAll(); }
  bool full() const { return n_ == kMax; }
  size_t size() const { return n_; }
  uint64_t operator[](size_t i) const { return r_[i]; }
  void Add(uint64_t r) { r_[n_++] = r; }
  void UnlockAll() {
    for (size_t i = 0; i < n_; ++i) t_->Unlock(r_[i]);
    n_ = 0;
  }

 private:
  RegionLockTable* t_;
  uint64_t r_[kMax];
  size_t n_ = 0;
};

Status EngineImpl::CheckRequest(uint64_t off, uint64_t len) const {
  if (state_.load() == State::kShutDown) return Status::Aborted("engine is shut down");
  if (committer_.mode() == EngineMode::kFail) {
    return Status::Failed("clone is in fail mode after a metadata rollback failure");
  }
  if (dest_watch_.changed()) return dest_watch_.Refusal();
  if (!geo_.Contains(off, len)) {
    return Status::InvalidArgument("request [" + std::to_string(off) + ", +" +
                                   std::to_string(len) + ") is outside the image of " +
                                   std::to_string(geo_.image_size()) + " bytes");
  }
  return Status::OK();
}

Status EngineImpl::Read(uint64_t off, void* buf, size_t len) {
  if (len == 0 && off <= geo_.image_size()) return Status::OK();
  CLONEFS_RETURN_IF_ERROR(CheckRequest(off, len));
  ForegroundScope fg(&foreground_);
  Touch(off, len);
  uint8_t* out = static_cast<uint8_t*>(buf);
  Status s;
  const bool done = md_->IsHydrationDone();
  const bool unhydrated = !done && AnyUnhydrated(off, len);
  const bool seq = !done && copier_.NoteRead(off, len, unhydrated);
  const bool cor = unhydrated && copy_on_read_.load(std::memory_order_relaxed) &&
                   state_.load() == State::kStarted &&
                   committer_.mode() == EngineMode::kReadWrite && !source_watch_.changed();
  if (unhydrated && (cor || seq || copier_.AnyPrefetching())) {
    s = ReadHolding(off, out, len, cor, seq);
  } else {
    s = ReadRuns(off, out, len);
  }
  io_errors_.Report(IoKind::kRead, off, len, s);
  return s;
}

int EngineImpl::DirectReadFd(uint64_t off, size_t len) {
  if (len == 0 || !CheckRequest(off, len).ok() || copier_.MayHaveCachedWrites()) return -1;
  const bool done = md_->IsHydrationDone();
  if (!done && AnyUnhydrated(off, len)) return -1;
  const int fd = dest_->DirectReadFd(off, len);
  if (fd < 0) return -1;
  // What Read does for a hydrated range, but ReadRuns' dest read.
  foreground_.Note();
  Touch(off, len);
  if (!done) copier_.NoteRead(off, len, /*unhydrated=*/false);
  return fd;
}

int EngineImpl::DirectWriteFd(uint64_t off, size_t len) {
  if (len == 0 || !CheckRequest(off, len).ok() || committer_.mode() != EngineMode::kReadWrite ||
      health_.dest() != DestCondition::kOk || TestKillHookInstalled()) {
    return -1;
  }
  if (!md_->IsHydrationDone() && AnyUnhydrated(off, len)) return -1;
  const int fd = dest_->DirectWriteFd(off, len);
  if (fd < 0) return -1;
  // What Write does for a hydrated range, but FlushStretch's dest write
  // (whose health report matters only when dest is not in good health).
  foreground_.Note();
  Touch(off, len);
  return fd;
}

bool EngineImpl::AnyUnhydrated(uint64_t off, uint64_t len) {
  return md_->FindNextUnhydratedRegion(geo_.RegionOf(off)) <= geo_.RegionOf(off + len - 1);
}

void EngineImpl::Touch(uint64_t off, uint64_t len) {
  if (!recorder_) return;
  const uint64_t first = geo_.RegionOf(off);
  recorder_->Touch(first, geo_.RegionOf(off + len - 1) - first + 1);
}

Status EngineImpl::LockForRequest(uint64_t r) {
  while (true) {
    switch (locks_.LockFor(r, options_.source_timeout_ns, CurrentCancelToken())) {
      case RegionLockTable::Wait::kTaken:
        return Status::OK();
      case RegionLockTable::Wait::kCancelled:
        return Status::IoError(
            "interrupted while waiting for the copy of region " + std::to_string(r) + " in flight",
            EINTR);
      case RegionLockTable::Wait::kTimedOut:
        break;
    }
    // A source that answers (a slow link the copier's reads queue on) is
    // waited for; one that is stalled or down is not.
    if (!source_->Health().up()) break;
  }
  return Status::IoError("the copy of region " + std::to_string(r) +
                             " in flight has not finished within the source timeout (" +
                             std::to_string(options_.source_timeout_ns / 1'000'000) +
                             " ms), and the source is not answering",
                         ETIMEDOUT);
}

Status EngineImpl::ReadHolding(uint64_t off, uint8_t* out, size_t len, bool cor, bool wait) {
  // The regions this read takes: whole, full-size and unhydrated ones, in
  // ascending order (the lock table's discipline: Lock only above every
  // region held). A region found hydrated once held was copied meanwhile:
  // it is read from dest and let go. A region a prefetch unit is copying
  // (or, for a sequential reader, any copy) is waited for, not fetched
  // again; partial pieces of such regions are only waited for, except that
  // a sequential reader copying on read takes the whole region of a partial
  // piece (the first or the last of a request) and reads all of it: the rest
  // is what it reads next, and a piece alone would be fetched again later.
  const bool widen = cor && wait && geo_.region_size() <= kMaxWidenedRegion;
  uint64_t lo = off, hi = off + len;  // what is read: the request, widened
  std::vector<uint64_t> held;
  held.reserve(len / geo_.region_size() + 2);
  for (const RegionPiece p : geo_.Split(off, len)) {
    if (md_->IsRegionHydrated(p.region)) continue;
    const bool wait_here = wait || copier_.IsPrefetching(p.region);
    const bool whole = geo_.CanSkipCopy(p);
    const bool widened = !whole && widen && !geo_.IsPartialRegion(p.region);
    if (wait_here) {
      if (Status w = LockForRequest(p.region); !w.ok()) {
        for (uint64_t r : held) locks_.Unlock(r);
        return w;
      }
    }
    if (!whole && !widened) {
      if (wait_here) locks_.Unlock(p.region);
      continue;
    }
    if (!wait_here && !locks_.TryLock(p.region)) {
      continue;  // a copy is in flight: read the source as before
    }
    if (!cor || md_->IsRegionHydrated(p.region)) {
      locks_.Unlock(p.region);
      continue;
    }
    held.push_back(p.region);
    if (widened) {
      lo = std::min(lo, geo_.RegionStart(p.region));
      hi = std::max(hi, geo_.RegionStart(p.region) + geo_.region_size());
    }
  }
  // The widened read goes to a buffer of its own; the request is copied out.
  std::vector<uint8_t> wide;
  uint8_t* base = out;
  if (lo != off || hi != off + len) {
    wide.resize(hi - lo);
    base = wide.data();
  }
  Status s = ReadRuns(lo, base, hi - lo);
  if (s.ok() && base != out) std::memcpy(out, base + (off - lo), len);
  // Hand runs of held regions to the copier; what it refuses (or all of it
  // after a failed read) is let go unhydrated.
  const uint64_t max_run = std::max<uint64_t>(kMaxCopyChunk >> geo_.region_shift(), 1);
  for (size_t i = 0; i < held.size();) {
    size_t j = i + 1;
    while (j < held.size() && held[j] == held[j - 1] + 1 && j - i < max_run) ++j;
    const uint64_t first = held[i], count = j - i;
    if (!s.ok() || !copier_.AdoptFetched(first, count, base + (geo_.RegionStart(first) - lo))) {
      locks_.UnlockRun(first, count);
    }
    i = j;
  }
  return s;
}

Status EngineImpl::ReadRuns(uint64_t off, uint8_t* out, size_t len) {
  const uint64_t end = off + len;
  uint64_t pos = off;
  while (pos < end) {
    // The longest run of regions in the same state, within the request.
    uint64_t r = geo_.RegionOf(pos);
    const bool hydrated = md_->IsRegionHydrated(r);
    uint64_t stop = geo_.RegionStart(r) + geo_.RegionLength(r);
    while (stop < end && md_->IsRegionHydrated(++r) == hydrated) {
      stop += geo_.RegionLength(r);
    }
    if (stop > end) stop = end;
    if (hydrated) {
      // Just copied, still in the page cache: read it there (Device::
      // ReadFromCache) rather than make an O_DIRECT read write it back first.
      if (copier_.MayHaveCachedWrites() &&
          dest_->ReadFromCache(pos, out + (pos - off), stop - pos)) {
        pos = stop;
        continue;
      }
      Status s = dest_->Read(pos, out + (pos - off), stop - pos);
      if (!s.ok()) {
        health_.DestFailed("read from dest", pos, s);
        return dest_watch_.AfterError(s);  // a short read: was dest truncated?
      }
    } else {
      CLONEFS_RETURN_IF_ERROR(ReadSource(pos, out + (pos - off), stop - pos));
    }
    pos = stop;
  }
  return Status::OK();
}

// The source's bytes are answered only if the source is unchanged after the
// read: a read that raced with a truncation or a modification fails instead.
Status EngineImpl::ReadSource(uint64_t off, uint8_t* out, size_t len) {
  if (source_watch_.changed()) return source_watch_.Refusal();
  Status s = source_->Read(off, out, len);
  if (!s.ok() && CompletedAndReleased()) {
    // The clone completed, and released its source, after this read chose
    // it: every region is in dest now.
    return ReadRuns(off, out, len);
  }
  if (!s.ok()) {
    health_.SourceFailed("read from source", off, s);
    return source_watch_.AfterReadError(s);
  }
  user_source_bytes_.fetch_add(len, std::memory_order_relaxed);
  return source_watch_.Check();
}

Status EngineImpl::Write(uint64_t off, const void* buf, size_t len, bool sync) {
  if (len == 0 && off <= geo_.image_size()) return Status::OK();
  CLONEFS_RETURN_IF_ERROR(CheckRequest(off, len));
  ForegroundScope fg(&foreground_);
  Touch(off, len);
  const bool read_only = committer_.mode() == EngineMode::kReadOnly;
  Mutation m{static_cast<const uint8_t*>(buf), off, ZeroMode::kWriteZeros};
  Status s = Mutate(off, len, m, read_only);
  // A failed commit below is the committer's to log (it changes the mode).
  io_errors_.Report(IoKind::kWrite, off, len, s);
  if (!s.ok()) return s;
  if (!sync) return Status::OK();
  // In read-only mode the in-core bitmap is the durable one and cannot
  // change, so the regions just written stay hydrated: flushing dest makes
  // the write durable. Otherwise it takes a commit (which fails if the mode
  // changed meanwhile).
  if (read_only) {
    s = dest_->Flush();
    io_errors_.Report(IoKind::kWrite, off, len, s);
    return s;
  }
  if (state_.load() != State::kStarted) return Status::Aborted("engine is not running");
  return committer_.Commit(/*flush_always=*/true);
}

Status EngineImpl::Zero(uint64_t off, uint64_t len, bool punch) {
  if (len == 0 && off <= geo_.image_size()) return Status::OK();
  CLONEFS_RETURN_IF_ERROR(CheckRequest(off, len));
  ForegroundScope fg(&foreground_);
  Touch(off, len);
  const bool read_only = committer_.mode() == EngineMode::kReadOnly;
  Mutation m{nullptr, off,
             punch && options_.discard_passdown ? ZeroMode::kPunch : ZeroMode::kWriteZeros};
  Status s = Mutate(off, len, m, read_only);
  io_errors_.Report(IoKind::kZero, off, len, s);
  return s;
}

Status EngineImpl::Mutate(uint64_t off, uint64_t len, const Mutation& m, bool read_only) {
  StretchLocks locks(&locks_);
  uint64_t st_off = off, st_len = 0;  // the current stretch
  for (const RegionPiece p : geo_.Split(off, len)) {
    bool hydrated = md_->IsRegionHydrated(p.region);
    if (!hydrated && !geo_.CanSkipCopy(p)) {
      CLONEFS_RETURN_IF_ERROR(FlushStretch(st_off, st_len, &locks, m));
      st_len = 0;
      CLONEFS_RETURN_IF_ERROR(HydratePiece(p, m, read_only));
      continue;
    }
    if (!hydrated) {
      if (read_only) {
        return Status::ReadOnly("region " + std::to_string(p.region) +
                                " is not hydrated and the clone is read-only");
      }
      if (locks.full()) {
        CLONEFS_RETURN_IF_ERROR(FlushStretch(st_off, st_len, &locks, m));
        st_len = 0;
      }
      CLONEFS_RETURN_IF_ERROR(LockForRequest(p.region));  // waits for a copy in flight
      if (md_->IsRegionHydrated(p.region)) {
        locks_.Unlock(p.region);  // that copy finished it
      } else {
        locks.Add(p.region);
      }
    }
    if (st_len == 0) st_off = p.offset;
    st_len += p.length;
  }
  return FlushStretch(st_off, st_len, &locks, m);
}

Status EngineImpl::ApplyToDest(uint64_t off, uint64_t len, const Mutation& m) {
  Status s = m.data ? dest_->Write(off, m.data + (off - m.req_off), len)
                    : dest_->Zero(off, len, m.zero_mode);
  if (!s.ok()) {
    health_.DestFailed(m.data ? "write to dest" : "zero in dest", off, s);
    return dest_watch_.AfterError(s);
  }
  if (s.ok() && TestKillPoint("write.after_dest_write")) {
    return Status::Aborted("kill point write.after_dest_write");
  }
  return s;
}

Status EngineImpl::FlushStretch(uint64_t off, uint64_t len, StretchLocks* locks,
                                const Mutation& m) {
  if (len == 0) return Status::OK();
  const uint64_t dest_errors = health_.DestErrors();
  CLONEFS_RETURN_IF_ERROR(ApplyToDest(off, len, m));
  // Mark the locked (unhydrated, fully overwritten) regions, in runs.
  uint64_t zero_hydrated = 0;
  for (size_t i = 0; i < locks->size();) {
    size_t j = i + 1;
    while (j < locks->size() && (*locks)[j] == (*locks)[j - 1] + 1) ++j;
    CLONEFS_RETURN_IF_ERROR(hydrator_.Mark((*locks)[i], j - i));
    zero_hydrated += (j - i) << geo_.region_shift();
    i = j;
  }
  if (!m.data && zero_hydrated != 0) hydrator_.CountZeroHydrated(zero_hydrated);
  if (locks->size() != 0) {
    health_.DestHydrated(dest_errors);  // new data landed in regions never written before
  } else {
    health_.DestWrote(md_->IsHydrationDone(), dest_errors);
  }
  locks->UnlockAll();
  return Status::OK();
}

Status EngineImpl::HydratePiece(const RegionPiece& p, const Mutation& m, bool read_only) {
  CLONEFS_RETURN_IF_ERROR(LockForRequest(p.region));  // one hydration per region
  RegionLockGuard guard(&locks_, p.region, std::adopt_lock);
  if (md_->IsRegionHydrated(p.region)) {
    const uint64_t dest_errors = health_.DestErrors();
    Status s = ApplyToDest(p.offset, p.length, m);
    if (s.ok()) health_.DestWrote(md_->IsHydrationDone(), dest_errors);
    return s;
  }
  if (read_only) {
    return Status::ReadOnly("region " + std::to_string(p.region) +
                            " is not hydrated and the clone is read-only");
  }
  Overlay ov{p.offset, p.length, m.data ? m.data + (p.offset - m.req_off) : nullptr, m.zero_mode};
  CLONEFS_RETURN_IF_ERROR(hydrator_.HydrateRegion(p.region, ov));
  if (TestKillPoint("write.after_dest_write")) {
    return Status::Aborted("kill point write.after_dest_write");
  }
  return hydrator_.Mark(p.region, 1);
}

}  // namespace clonefs
