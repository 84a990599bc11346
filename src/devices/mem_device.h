// MemDevice: an image held in memory, for component tests and benchmarks.
// Tracks holes at a 4 KiB granularity so NextData/NextHole and kPunch behave
// like a sparse file: a block is a hole until written; kPunch turns the
// blocks it covers completely (the last block counts as complete up to
// Size()) into holes and zeroes partly covered ones, which keep their
// allocation; kWriteZeros writes zeros and leaves the blocks allocated.
// Storage is allocated in 64 KiB chunks on first write and freed when all
// their blocks are holes again, so a large, mostly-hole device (say 64 GiB
// holding 1 GiB) costs only its data. Flush does nothing; Name() is `name`.
//
// THREAD SAFETY: see device.h. Operations on different 64 KiB chunks run in
// parallel (striped locks); a request spanning chunks is not atomic.
// Concurrent writes to overlapping ranges give an unspecified mix, as with a
// file.
#pragma once

#include <vector>

#include "devices/device.h"

namespace clonefs {

// A zero-filled (all hole) device of `size` bytes.
std::unique_ptr<Device> NewMemDevice(uint64_t size, bool read_only = false,
                                     std::string name = "mem");
// A device holding a copy of `content`; every 4 KiB block that is all zeros is
// a hole.
std::unique_ptr<Device> NewMemDeviceFrom(const std::vector<uint8_t>& content,
                                         bool read_only = false, std::string name = "mem");

}  // namespace clonefs
