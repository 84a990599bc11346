#include "copier/hydrator.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

#include "copier/zero_blocks.h"

namespace clonefs {

Hydrator::Hydrator(Device* source, Device* dest, metadata::Metadata* md, const RegionGeometry& geo,
                   Clock* clock, SourceWatch* watch, DestWatch* dest_watch, HealthTracker* health,
                   ZeroMode zeros)
    : source_(source),
      dest_(dest),
      md_(md),
      geo_(geo),
      clock_(clock),
      watch_(watch),
      dest_watch_(dest_watch),
      health_(health),
      zeros_(zeros),
      copy_meter_(clock->NowNanos()),
      zero_meter_(clock->NowNanos()) {}

Status Hydrator::ReadSource(uint64_t off, void* buf, size_t len) {
  Status s = source_->Read(off, buf, len);
  if (s.ok()) return s;
  health_->SourceFailed("copy read from source", off, s);
  return watch_->AfterReadError(s);
}

Status Hydrator::DestWrite(const char* op, uint64_t off, const uint8_t* data, size_t len,
                           bool cached) {
  Status s = cached ? dest_->WriteCached(off, data, len) : dest_->Write(off, data, len);
  if (!s.ok()) health_->DestFailed(op, off, s);
  return dest_watch_->AfterError(s);
}

Status Hydrator::DestZero(const char* op, uint64_t off, uint64_t len, ZeroMode mode) {
  Status s = dest_->Zero(off, len, mode);
  if (!s.ok()) health_->DestFailed(op, off, s);
  return dest_watch_->AfterError(s);
}

Status Hydrator::Failed(const Status& s, uint64_t first, uint64_t count) {
  copy_failures_.fetch_add(1, std::memory_order_relaxed);
  std::string what = count == 1 ? "hydrating region " + std::to_string(first)
                                : "hydrating regions " + std::to_string(first) + ".." +
                                      std::to_string(first + count - 1);
  return s.WithContext(what);
}

uint64_t Hydrator::ExtentEnd(uint64_t pos, uint64_t end, bool* hole) {
  {
    std::lock_guard<std::mutex> l(extent_mu_);
    if (hole_from_ <= pos && pos < hole_to_) {
      *hole = true;
      return std::min(hole_to_, end);
    }
    if (data_from_ <= pos && pos < data_to_) {
      *hole = false;
      return std::min(data_to_, end);
    }
  }
  // Where the source cannot say, NextData(pos) == pos: all data.
  Result<uint64_t> d = source_->NextData(pos);
  if (d.ok() && *d > pos) {
    std::lock_guard<std::mutex> l(extent_mu_);
    hole_from_ = pos;
    hole_to_ = *d;
    *hole = true;
    return std::min(*d, end);
  }
  Result<uint64_t> h = source_->NextHole(pos);
  *hole = false;
  if (!h.ok() || *h <= pos) return end;  // cannot say: data
  if (d.ok()) {  // remembered only when both answers were real
    std::lock_guard<std::mutex> l(extent_mu_);
    data_from_ = pos;
    data_to_ = *h;
  }
  return std::min(*h, end);
}

Result<std::vector<RunSegment>> Hydrator::PlanRun(uint64_t first, uint64_t count) {
  if (watch_->changed()) return watch_->Refusal();
  CLONEFS_RETURN_IF_ERROR(dest_watch_->Check());
  const uint64_t start = geo_.RegionStart(first);
  const uint64_t end = start + geo_.RunLength(first, count);
  std::vector<RunSegment> plan;
  for (uint64_t pos = start; pos < end;) {
    bool hole = false;
    const uint64_t next = ExtentEnd(pos, end, &hole);
    if (!plan.empty() && plan.back().hole == hole) {
      plan.back().length += next - pos;
    } else {
      plan.push_back(RunSegment{pos, next - pos, hole});
    }
    pos = next;
  }
  return plan;
}

Status Hydrator::WriteFetched(uint64_t off, const uint8_t* data, size_t len, CopyOutcome* out) {
  out->bytes_read += len;
  Status s = ForEachZeroRun(off, data, len, [&](uint64_t o, uint64_t n, bool zero) {
    if (zero) {
      CLONEFS_RETURN_IF_ERROR(DestZero(ZeroOp(), o, n, zeros_));
      out->bytes_zeroed += n;
    } else {
      CLONEFS_RETURN_IF_ERROR(
          DestWrite("copy write to dest", o, data + (o - off), n, /*cached=*/true));
      out->bytes_written += n;
    }
    return Status::OK();
  });
  // The copy rate counts what reached dest: a full dest copies nothing.
  if (s.ok()) copy_meter_.Add(len, clock_->NowNanos());
  return s;
}

Status Hydrator::ZeroHole(uint64_t off, uint64_t len, CopyOutcome* out) {
  // Where dest already reads zeros (a hole: all of a new dest), there is
  // nothing to punch: a punch is a journalled fallocate per unit, where
  // SEEK_DATA is a lookup. A dest that cannot tell answers "data here" and
  // is punched as before. Zeros kept allocated (no discard passdown) are
  // written whatever dest holds there.
  bool zero = zeros_ == ZeroMode::kWriteZeros;
  if (!zero) {
    Result<uint64_t> data = dest_->NextData(off);
    zero = !data.ok() || *data < off + len;
  }
  if (zero) CLONEFS_RETURN_IF_ERROR(DestZero(ZeroOp(), off, len, zeros_));
  out->bytes_zeroed += len;
  zero_meter_.Add(len, clock_->NowNanos());
  return Status::OK();
}

Status Hydrator::SourceReadFailed(uint64_t off, const Status& read_error) {
  health_->SourceFailed("copy read from source", off, read_error);
  return watch_->AfterReadError(read_error);
}

Status Hydrator::FinishRun(const CopyOutcome& out, uint64_t dest_errors_at_start) {
  CLONEFS_RETURN_IF_ERROR(watch_->Check());
  CLONEFS_RETURN_IF_ERROR(dest_watch_->Check());
  bytes_copied_.fetch_add(out.bytes_written, std::memory_order_relaxed);
  bytes_zeroed_.fetch_add(out.bytes_zeroed, std::memory_order_relaxed);
  health_->DestHydrated(dest_errors_at_start);
  return Status::OK();
}

Status Hydrator::RunFailed(const Status& s, uint64_t first, uint64_t count) {
  return Failed(s, first, count);
}

Status Hydrator::HydrateRegion(uint64_t r, const Overlay& ov) {
  const uint64_t start = geo_.RegionStart(r);
  const uint64_t end = start + geo_.RegionLength(r);
  const uint64_t ov_end = ov.offset + ov.length;
  const bool punch = ov.data == nullptr && ov.zero_mode == ZeroMode::kPunch;
  const uint64_t dest_errors = health_->DestErrors();
  if (watch_->changed()) return Failed(watch_->Refusal(), r, 1);
  if (Status d = dest_watch_->Check(); !d.ok()) return Failed(d, r, 1);
  // The last, partial region is always copied (SPEC §3), even where the
  // overlay covers it.
  const bool may_skip_read = !geo_.IsPartialRegion(r);
  // Requests threads keep one buffer for regions up to kThreadBufferMax (the
  // common case); larger regions use a chunk-sized buffer per call.
  constexpr uint64_t kThreadBufferMax = 1 << 20;
  thread_local CopyBuffer thread_buf;
  CopyBuffer call_buf;
  CopyBuffer& buf = end - start <= kThreadBufferMax ? thread_buf : call_buf;
  Result<size_t> reserved = buf.Reserve(end - start);
  if (!reserved.ok()) return Failed(reserved.status(), r, 1);
  size_t chunk = std::min<uint64_t>(*reserved, kMaxCopyChunk);
  uint64_t read = 0;
  for (uint64_t pos = start; pos < end;) {
    const uint64_t n = std::min<uint64_t>(chunk, end - pos);
    const uint64_t os = std::max(pos, ov.offset);
    const uint64_t oe = std::min(pos + n, ov_end);
    const bool overlap = os < oe;
    const bool covered = may_skip_read && overlap && os == pos && oe == pos + n;
    uint8_t* b = buf.data();
    if (!covered) {
      Status s = ReadSource(pos, b, n);
      if (!s.ok()) return Failed(s, r, 1);
      overlay_source_bytes_.fetch_add(n, std::memory_order_relaxed);
      read += n;
    }
    Status s;
    if (punch && overlap) {
      // Write what lies outside the punched part; the punch comes last.
      if (os > pos) s = DestWrite("copy write to dest", pos, b, os - pos);
      if (s.ok() && oe < pos + n) {
        s = DestWrite("copy write to dest", oe, b + (oe - pos), pos + n - oe);
      }
    } else {
      if (overlap && ov.data) std::memcpy(b + (os - pos), ov.data + (os - ov.offset), oe - os);
      if (overlap && !ov.data) std::memset(b + (os - pos), 0, oe - os);
      s = DestWrite("copy write to dest", pos, b, n);
    }
    if (!s.ok()) return Failed(s, r, 1);
    pos += n;
  }
  if (punch) {
    Status s = DestZero("punch in dest", ov.offset, ov.length, ZeroMode::kPunch);
    if (!s.ok()) return Failed(s, r, 1);
  }
  if (read != 0) {
    Status s = watch_->Check();
    if (!s.ok()) return Failed(s, r, 1);
  }
  bytes_copied_.fetch_add(read, std::memory_order_relaxed);
  if (read != 0) copy_meter_.Add(read, clock_->NowNanos());
  health_->DestHydrated(dest_errors);
  return Status::OK();
}

Status Hydrator::Mark(uint64_t first, uint64_t count) {
  std::shared_lock<std::shared_mutex> l(mark_gate_);
  return count == 1 ? md_->SetRegionHydrated(first) : md_->CondSetRange(first, count);
}

void Hydrator::CountZeroHydrated(uint64_t bytes) {
  bytes_zeroed_.fetch_add(bytes, std::memory_order_relaxed);
  zero_meter_.Add(bytes, clock_->NowNanos());
}

void Hydrator::CloseMarksAndSetReadOnly() {
  std::unique_lock<std::shared_mutex> l(mark_gate_);
  md_->SetReadOnly();
}

}  // namespace clonefs
