#include "sources/extent_cache.h"

namespace clonefs {

std::optional<Extent> ExtentCache::Find(uint64_t off) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = by_start_.upper_bound(off);
  if (it == by_start_.begin()) return std::nullopt;
  --it;
  if (it->second.end > off) return it->second;
  return std::nullopt;
}

void ExtentCache::Insert(const std::vector<Extent>& extents) {
  std::lock_guard<std::mutex> l(mu_);
  for (const Extent& e : extents) {
    if (e.end > e.start) InsertOne(e);
  }
}

void ExtentCache::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  by_start_.clear();
}

size_t ExtentCache::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return by_start_.size();
}

void ExtentCache::InsertOne(Extent e) {
  // Walk the cached extents that overlap [e.start, e.end) in order, adding
  // the gaps between them.
  auto it = by_start_.upper_bound(e.start);
  if (it != by_start_.begin() && std::prev(it)->second.end > e.start) --it;
  uint64_t pos = e.start;
  while (pos < e.end) {
    if (it == by_start_.end() || it->second.start >= e.end) {
      by_start_.emplace(pos, Extent{pos, e.end, e.hole});
      return;
    }
    if (it->second.start > pos) {
      by_start_.emplace(pos, Extent{pos, it->second.start, e.hole});
    }
    pos = std::max(pos, it->second.end);
    ++it;
  }
}

}  // namespace clonefs
