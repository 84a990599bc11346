// XXH3-64: the 64-bit XXH3 hash (xxHash 0.8), with seed 0 and the default
// secret. RocksDB's table files are protected by its lower 32 bits
// (ChecksumType kXXH3, RocksDB's default), so table_check.h needs it to
// verify a table's blocks without letting RocksDB parse them.
//
// A plain portable implementation: table_check.h hashes only the few small
// blocks RocksDB reads when it opens a table, so speed matters little; having
// no dependency does (as for crc32c.h). The output is XXH3's, frozen since
// xxHash 0.8.0; tests/metadata/table_check_test.cc checks it against the
// copy inside librocksdb.
//
// THREAD SAFETY: pure function.
#pragma once

#include <cstddef>
#include <cstdint>

namespace clonefs::metadata {

// XXH3_64bits(data, n): seed 0, default secret. Xxh3_64(nullptr, 0) is
// defined (the hash of no bytes).
uint64_t Xxh3_64(const void* data, size_t n);

}  // namespace clonefs::metadata
