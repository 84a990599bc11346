#include "devices/write_overlay.h"

#include <algorithm>
#include <cstring>
#include <random>

namespace clonefs {

uint64_t WriteOverlay::SectorLength(uint64_t sector) const {
  return std::min(kSector, base_->Size() - sector * kSector);
}

Status WriteOverlay::AddVersions(uint64_t off, const uint8_t* data, uint64_t len) {
  static const Version kZeroSector = std::make_shared<const std::string>(kSector, '\0');
  uint64_t end = off + len;
  // Build every new version first, so a base read error records nothing.
  std::vector<std::pair<uint64_t, Version>> add;
  for (uint64_t s = off / kSector; s * kSector < end; s++) {
    uint64_t ss = s * kSector, slen = SectorLength(s);
    uint64_t lo = std::max(off, ss), hi = std::min(end, ss + slen);
    if (data == nullptr && lo == ss && hi == ss + slen && slen == kSector) {
      add.emplace_back(s, kZeroSector);
      continue;
    }
    std::string v;
    if (lo == ss && hi == ss + slen) {
      v.assign(slen, '\0');
    } else if (auto it = sectors_.find(s); it != sectors_.end()) {
      v = *it->second.back();
    } else {
      v.resize(slen);
      CLONEFS_RETURN_IF_ERROR(base_->Read(ss, v.data(), slen));
    }
    if (data) {
      std::memcpy(v.data() + (lo - ss), data + (lo - off), hi - lo);
    } else {
      std::memset(v.data() + (lo - ss), 0, hi - lo);
    }
    add.emplace_back(s, std::make_shared<const std::string>(std::move(v)));
  }
  for (auto& [s, v] : add) sectors_[s].push_back(std::move(v));
  return Status::OK();
}

Status WriteOverlay::AddWrite(uint64_t off, const uint8_t* data, uint64_t len) {
  if (len == 0) return Status::OK();
  CLONEFS_RETURN_IF_ERROR(AddVersions(off, data, len));
  log_.push_back(
      Op{off, len, false, ZeroMode::kPunch, std::string(reinterpret_cast<const char*>(data), len)});
  pending_bytes_ += len;
  return Status::OK();
}

Status WriteOverlay::AddZero(uint64_t off, uint64_t len, ZeroMode mode) {
  if (len == 0) return Status::OK();
  CLONEFS_RETURN_IF_ERROR(AddVersions(off, nullptr, len));
  log_.push_back(Op{off, len, true, mode, {}});
  pending_bytes_ += len;
  return Status::OK();
}

void WriteOverlay::Apply(uint64_t off, uint8_t* buf, uint64_t len) const {
  uint64_t end = off + len;
  for (auto it = sectors_.lower_bound(off / kSector); it != sectors_.end(); ++it) {
    uint64_t ss = it->first * kSector;
    if (ss >= end) break;
    const std::string& v = *it->second.back();
    uint64_t lo = std::max(off, ss), hi = std::min(end, ss + v.size());
    std::memcpy(buf + (lo - off), v.data() + (lo - ss), hi - lo);
  }
}

Status WriteOverlay::ReplayOntoBase() {
  while (!log_.empty()) {
    const Op& op = log_.front();
    CLONEFS_RETURN_IF_ERROR(op.zero ? base_->Zero(op.off, op.len, op.mode)
                                    : base_->Write(op.off, op.data.data(), op.len));
    pending_bytes_ -= op.len;
    log_.pop_front();
  }
  Clear();
  return Status::OK();
}

Status WriteOverlay::ApplyRandomSubset(uint64_t seed) {
  std::mt19937_64 rng(seed);
  Status first_error;
  for (const auto& [s, versions] : sectors_) {
    uint64_t k = rng() % (versions.size() + 1);  // 0: keep the durable content
    if (k == 0) continue;
    const std::string& v = *versions[k - 1];
    Status st = base_->Write(s * kSector, v.data(), SectorLength(s));
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  Clear();
  return first_error;
}

void WriteOverlay::Clear() {
  log_.clear();
  sectors_.clear();
  pending_bytes_ = 0;
}

}  // namespace clonefs
