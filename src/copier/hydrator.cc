#include "copier/hydrator.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

namespace clonefs {

Hydrator::Hydrator(Device* source, Device* dest, metadata::Metadata* md,
                   const RegionGeometry& geo, Clock* clock, SourceWatch* watch)
    : source_(source),
      dest_(dest),
      md_(md),
      geo_(geo),
      clock_(clock),
      watch_(watch),
      rate_(clock->NowNanos()) {}

Status Hydrator::ReadSource(uint64_t off, void* buf, size_t len) {
  Status s = source_->Read(off, buf, len);
  return s.ok() ? s : watch_->AfterReadError(s);
}

Status Hydrator::Failed(const Status& s, uint64_t first, uint64_t count) {
  copy_failures_.fetch_add(1, std::memory_order_relaxed);
  std::string what = count == 1 ? "hydrating region " + std::to_string(first)
                                : "hydrating regions " + std::to_string(first) + ".." +
                                      std::to_string(first + count - 1);
  return s.WithContext(what);
}

Status Hydrator::CopyData(uint64_t off, uint64_t len, CopyBuffer* buf) {
  CLONEFS_ASSIGN_OR_RETURN(size_t chunk, buf->Reserve(len));
  for (uint64_t pos = off; pos < off + len;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(chunk, off + len - pos));
    CLONEFS_RETURN_IF_ERROR(ReadSource(pos, buf->data(), n));
    CLONEFS_RETURN_IF_ERROR(dest_->Write(pos, buf->data(), n));
    pos += n;
  }
  return Status::OK();
}

Result<CopyOutcome> Hydrator::CopyRun(uint64_t first, uint64_t count, CopyBuffer* buf) {
  const uint64_t start = geo_.RegionStart(first);
  const uint64_t end = start + geo_.RunLength(first, count);
  CopyOutcome out;
  if (watch_->changed()) return Failed(watch_->Refusal(), first, count);
  for (uint64_t pos = start; pos < end;) {
    // Where the source cannot say, NextData(pos) == pos: all data.
    Result<uint64_t> d = source_->NextData(pos);
    uint64_t data = d.ok() ? std::clamp(*d, pos, end) : pos;
    if (data > pos) {
      Status s = dest_->Zero(pos, data - pos, ZeroMode::kPunch);
      if (!s.ok()) return Failed(s, first, count);
      out.bytes_zeroed += data - pos;
      pos = data;
      continue;
    }
    Result<uint64_t> h = source_->NextHole(pos);
    uint64_t hole = h.ok() && *h > pos ? std::min(*h, end) : end;
    Status s = CopyData(pos, hole - pos, buf);
    if (!s.ok()) return Failed(s, first, count);
    out.bytes_read += hole - pos;
    pos = hole;
  }
  // What was read (and what looked like holes: a shrunken tail may) is
  // trusted only if the source is still the one the clone was made from.
  Status unchanged = watch_->Check();
  if (!unchanged.ok()) return Failed(unchanged, first, count);
  bytes_copied_.fetch_add(out.bytes_read, std::memory_order_relaxed);
  bytes_zeroed_.fetch_add(out.bytes_zeroed, std::memory_order_relaxed);
  rate_.Add(out.bytes_read + out.bytes_zeroed, clock_->NowNanos());
  return out;
}

Status Hydrator::HydrateRegion(uint64_t r, const Overlay& ov) {
  const uint64_t start = geo_.RegionStart(r);
  const uint64_t end = start + geo_.RegionLength(r);
  const uint64_t ov_end = ov.offset + ov.length;
  const bool punch = ov.data == nullptr && ov.zero_mode == ZeroMode::kPunch;
  if (watch_->changed()) return Failed(watch_->Refusal(), r, 1);
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
      read += n;
    }
    Status s;
    if (punch && overlap) {
      // Write what lies outside the punched part; the punch comes last.
      if (os > pos) s = dest_->Write(pos, b, os - pos);
      if (s.ok() && oe < pos + n) s = dest_->Write(oe, b + (oe - pos), pos + n - oe);
    } else {
      if (overlap && ov.data) std::memcpy(b + (os - pos), ov.data + (os - ov.offset), oe - os);
      if (overlap && !ov.data) std::memset(b + (os - pos), 0, oe - os);
      s = dest_->Write(pos, b, n);
    }
    if (!s.ok()) return Failed(s, r, 1);
    pos += n;
  }
  if (punch) {
    Status s = dest_->Zero(ov.offset, ov.length, ZeroMode::kPunch);
    if (!s.ok()) return Failed(s, r, 1);
  }
  if (read != 0) {
    Status s = watch_->Check();
    if (!s.ok()) return Failed(s, r, 1);
  }
  bytes_copied_.fetch_add(read, std::memory_order_relaxed);
  rate_.Add(read, clock_->NowNanos());
  return Status::OK();
}

Status Hydrator::Mark(uint64_t first, uint64_t count) {
  std::shared_lock<std::shared_mutex> l(mark_gate_);
  return count == 1 ? md_->SetRegionHydrated(first) : md_->CondSetRange(first, count);
}

void Hydrator::CountZeroHydrated(uint64_t bytes) {
  bytes_zeroed_.fetch_add(bytes, std::memory_order_relaxed);
  rate_.Add(bytes, clock_->NowNanos());
}

void Hydrator::CloseMarksAndSetReadOnly() {
  std::unique_lock<std::shared_mutex> l(mark_gate_);
  md_->SetReadOnly();
}

}  // namespace clonefs
