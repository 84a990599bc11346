// CRC-32C (Castagnoli), the checksum of the superblock encoding.
//
// A plain table-driven software implementation: the superblock is checked once
// per Open, so speed does not matter; having no dependency does.
//
// THREAD SAFETY: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

namespace clonefs::metadata {

// CRC-32C of data[0, n), continuing from `crc` (0 to start). Standard
// reflected polynomial 0x82F63B78 with initial and final inversion, so
// Crc32c(0, "123456789", 9) == 0xE3069283.
uint32_t Crc32c(uint32_t crc, const void* data, size_t n);

}  // namespace clonefs::metadata
