// The deterministic workload of the process-crash test, shared by the child
// (which applies it to a Metadata and commits) and the parent (which replays
// it on a std::vector<bool> model to know every committed state).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "metadata/metadata.h"

namespace clonefs::metadata::testing {

// Geometry of the crash test store: 40 chunks and a partial last chunk.
inline constexpr uint64_t kCrashRegions = 40 * 32768 + 1234;

struct MarkOp {
  uint64_t start = 0;
  uint64_t count = 1;  // 1 = SetRegionHydrated, > 1 = CondSetRange
};

// The marks of commit k (k = 1, 2, ...), drawn from `rng`, which both sides
// seed identically and advance once per commit, in order.
inline std::vector<MarkOp> CommitOps(std::mt19937_64& rng, uint64_t nr_regions) {
  std::vector<MarkOp> ops;
  const int n = 1 + static_cast<int>(rng() % 40);
  for (int i = 0; i < n; ++i) {
    MarkOp op;
    op.start = rng() % nr_regions;
    const int kind = static_cast<int>(rng() % 10);
    if (kind == 0) {
      op.count = std::min<uint64_t>(nr_regions - op.start, 1 + rng() % 70000);  // spans chunks
    } else if (kind < 4) {
      op.count = std::min<uint64_t>(nr_regions - op.start, 1 + rng() % 300);
    }
    ops.push_back(op);
  }
  return ops;
}

// Options of the crash test store, identical in parent and child.
inline MetadataOptions CrashOptions(const std::string& dir) {
  MetadataOptions o;
  o.dir = dir;
  o.region_size = 4096;
  o.image_size = kCrashRegions * 4096;
  o.block_cache_bytes = 1 << 20;
  o.write_buffer_bytes = 64 << 10;  // small: flushes and compactions during the test
  return o;
}

inline void ApplyOps(const std::vector<MarkOp>& ops, std::vector<bool>* model) {
  for (const MarkOp& op : ops) {
    for (uint64_t r = op.start; r < op.start + op.count; ++r) (*model)[r] = true;
  }
}

}  // namespace clonefs::metadata::testing
