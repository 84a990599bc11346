// Test support: the seed of a randomized test. Tests print it (SCOPED_TRACE)
// so that a failure can be replayed with CLONEFS_TEST_SEED=<n>.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <random>

namespace clonefs::test {

// $CLONEFS_TEST_SEED if set, else random.
inline uint64_t TestSeed() {
  if (const char* s = std::getenv("CLONEFS_TEST_SEED")) return std::strtoull(s, nullptr, 0);
  return std::random_device{}() * 0x100000001ull ^ std::random_device{}();
}

}  // namespace clonefs::test
