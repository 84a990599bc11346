// UnopenedSource: the stand-in for the source of a complete clone that is
// mounted again while its source cannot be opened (a remote server taken
// down, a file moved away once hydration had finished). A complete clone
// never reads its source (SPEC §4: dest alone is the image), so the mount
// goes ahead with this in its place (fuse/preflight.cc, OpenClone).
//
// Size() is the image size the clone recorded; Name() the source as named;
// Health() is kReleased since the device was made, with `why` (the reason
// the source could not be opened) as its last error; Read, ReadAsync and
// block status fail with EIO saying the source was not opened; Write, Zero
// and Flush fail with Permission (a source is read-only); CheckUnchanged
// is OK (there is nothing to compare).
//
// THREAD SAFETY: immutable after construction; every method may be called
// from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "devices/device.h"

namespace clonefs {

std::unique_ptr<Device> MakeUnopenedSource(std::string name, uint64_t size, std::string why);

}  // namespace clonefs
