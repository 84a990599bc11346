#include "copier/read_hints.h"

#include <algorithm>
#include <utility>

namespace clonefs {

ReadHints::ReadHints(const RegionGeometry& geo, uint64_t unit_regions)
    : geo_(geo), unit_regions_(std::max<uint64_t>(unit_regions, 1)) {}

void ReadHints::SetUnitRegions(uint64_t unit_regions) {
  std::lock_guard<std::mutex> l(mu_);
  unit_regions_ = std::max<uint64_t>(unit_regions, 1);
}

void ReadHints::SetEnabled(bool on) {
  std::lock_guard<std::mutex> l(mu_);
  enabled_ = on;
  if (!on) {
    for (Stream& s : streams_) s = Stream{};
    near_.clear();
  }
}

bool ReadHints::enabled() const {
  std::lock_guard<std::mutex> l(mu_);
  return enabled_;
}

bool ReadHints::NoteRead(uint64_t off, uint64_t len, bool unhydrated, uint64_t now_ns) {
  if (len == 0 || !geo_.Contains(off, len)) return false;
  if (now_ns == 0) now_ns = 1;  // 0 marks a free slot
  std::lock_guard<std::mutex> l(mu_);
  if (!enabled_) return false;
  const uint64_t end = off + len;
  Stream* match = nullptr;
  Stream* victim = &streams_[0];
  for (Stream& s : streams_) {
    if (Active(s, now_ns) && off + kSlack >= s.end && off <= s.end + kSlack) {
      match = &s;
      break;
    }
    if (!Active(s, now_ns) || s.last_ns < victim->last_ns) victim = &s;
  }
  if (match != nullptr) {
    match->last_ns = std::max(match->last_ns, now_ns);  // never back in time
    match->read += len;
    if (unhydrated) match->miss_ns = std::max(match->miss_ns, now_ns);
    if (end > match->end) {
      match->end = end;
      ++match->hits;
      if (Sequential(*match)) {
        match->window = std::min(std::max(match->window * 2, kMinWindow), kMaxWindow);
      }
    }
    if (Sequential(*match)) return true;
  } else {
    *victim = Stream{off, end, 0, 1, len, now_ns, unhydrated ? now_ns : 0};
  }
  if (unhydrated) {
    const uint64_t r = geo_.RegionOf(off);
    const uint64_t first = r - r % unit_regions_;
    const uint64_t count = std::min(unit_regions_, geo_.nr_regions() - first);
    if (near_.empty() || near_.front().first != first) {
      near_.push_front(RegionRun{first, count});
      if (near_.size() > kMaxNear) near_.pop_back();
    }
  }
  return false;
}

std::vector<RegionRun> ReadHints::AheadWindows(uint64_t now_ns, Streams which) const {
  std::vector<RegionRun> out;
  std::lock_guard<std::mutex> l(mu_);
  if (!enabled_) return out;
  const Stream* order[kStreams];
  int n = 0;
  for (const Stream& s : streams_) {
    if (ReadAhead(s, now_ns, which) && s.window != 0 && s.end < geo_.image_size()) {
      order[n++] = &s;
    }
  }
  for (int i = 1; i < n; ++i) {  // most recently read first (insertion sort of <= 8)
    for (int j = i; j > 0 && order[j - 1]->last_ns < order[j]->last_ns; --j) {
      std::swap(order[j - 1], order[j]);
    }
  }
  for (int i = 0; i < n; ++i) {
    const uint64_t from = order[i]->end;
    const uint64_t to = std::min(from + order[i]->window, geo_.image_size());
    const uint64_t first = geo_.RegionOf(from);
    // The end rounded up to a whole unit: a window that moves by a small
    // read exposes whole units, so the copier reads units, not slivers.
    uint64_t end = geo_.RegionOf(to - 1) + 1;
    end = std::min(end + (unit_regions_ - end % unit_regions_) % unit_regions_, geo_.nr_regions());
    out.push_back(RegionRun{first, end - first});
  }
  return out;
}

bool ReadHints::FrontNear(RegionRun* out) const {
  std::lock_guard<std::mutex> l(mu_);
  if (near_.empty()) return false;
  *out = near_.front();
  return true;
}

void ReadHints::AdvanceNear(uint64_t from) {
  std::lock_guard<std::mutex> l(mu_);
  if (near_.empty()) return;
  RegionRun& f = near_.front();
  if (from >= f.end()) {
    near_.pop_front();
  } else if (from > f.first) {
    f.count = f.end() - from;
    f.first = from;
  }
}

size_t ReadHints::near_size() const {
  std::lock_guard<std::mutex> l(mu_);
  return near_.size();
}

int ReadHints::sequential_streams(uint64_t now_ns, Streams which) const {
  std::lock_guard<std::mutex> l(mu_);
  int n = 0;
  for (const Stream& s : streams_) n += ReadAhead(s, now_ns, which);
  return n;
}

}  // namespace clonefs
