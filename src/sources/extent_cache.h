// ExtentCache: what a read-only source said about its allocation (NBD block
// status), kept for the device's lifetime so each range is asked once.
//
// An extent is a half-open byte range [start, end) that is either a hole
// (reads as zeros: never read, hydrated by zeroing) or data. Cached extents
// never overlap: Insert keeps what was cached already where a new answer
// overlaps it (the source is read-only, so two answers for one byte agree;
// keeping the old one keeps Find stable). Adjacent extents are not merged.
//
// THREAD SAFETY: all methods may be called concurrently (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

namespace clonefs {

struct Extent {
  uint64_t start = 0;
  uint64_t end = 0;  // exclusive
  bool hole = false;
};

class ExtentCache {
 public:
  // The cached extent containing `off`, if any.
  std::optional<Extent> Find(uint64_t off) const;
  // Adds extents (any order; empty ones are ignored), keeping cached bytes
  // where they overlap.
  void Insert(const std::vector<Extent>& extents);
  // Forgets every cached extent (the source changed: what it said before
  // no longer holds).
  void Clear();
  // Number of cached extents (for tests).
  size_t size() const;

 private:
  void InsertOne(Extent e);  // REQUIRES: mu_ held

  mutable std::mutex mu_;
  std::map<uint64_t, Extent> by_start_;  // GUARDED_BY(mu_); key = start
};

}  // namespace clonefs
