// PosixDevice: a regular file or a block device reached with positional I/O.
//
// THREAD SAFETY: see device.h. LIFECYCLE: the fd is opened in Open and closed
// in the destructor.
#pragma once

#include <sys/stat.h>

#include "devices/device.h"

namespace clonefs {

struct PosixDeviceOptions {
  // Open O_RDONLY (the source: never written, whatever happens). Default: false.
  bool read_only = false;
  // Open with O_DIRECT, bouncing unaligned requests through aligned buffers.
  // Default: false.
  bool direct = false;
  // For a writable regular file: create it if missing (sparse, mode 0644).
  // Default: false.
  bool create = false;
};

// Opens `path`. Errors: NotFound, Permission (with "on a read-only file
// system" for EROFS), InvalidArgument if it is neither a regular file nor a
// block device.
Result<std::unique_ptr<Device>> OpenPosixDevice(const std::string& path,
                                                const PosixDeviceOptions& options);

}  // namespace clonefs
