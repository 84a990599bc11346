// MemDevice: an image held in memory, for component tests and benchmarks.
// Tracks holes at a 4 KiB granularity so NextData/NextHole and kPunch behave
// like a sparse file.
//
// THREAD SAFETY: see device.h; concurrent writes to overlapping ranges give
// an unspecified mix, as with a file.
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
