// OpenSource: turns a parsed SOURCE (source_spec.h) into the read-only
// Device the engine and the copier read from.
//   - kFile: OpenPosixDevice(read_only) wrapped in MakeTimedSource, so a
//     file on a stalled NFS server or a dying disk cannot hang a reader;
//   - kNbd, kHttp, kSsh: OpenNbdSource.
// Every kind gets the same source timeout.
//
// THREAD SAFETY: OpenSource may be called from any thread; the devices it
// returns are thread-safe (device.h).
#pragma once

#include <cstdint>
#include <memory>

#include "devices/device.h"
#include "sources/nbd_device.h"
#include "sources/source_spec.h"
#include "sources/timed_device.h"

namespace clonefs {

struct SourceOpenOptions {
  // The source timeout for every kind (it replaces nbd.timeout_ns).
  // Default: 30 s.
  uint64_t timeout_ns = 30'000'000'000;
  // Files: passed to PosixDeviceOptions::watch_mtime. Default: true.
  bool watch_mtime = true;
  // Files: threads of the timed reader pool. Default: 4.
  int file_threads = 4;
  // Remote sources: connections, request size, nbdkit binary.
  NbdSourceOptions nbd;
};

// Errors: those of OpenPosixDevice (NotFound, Permission, InvalidArgument)
// for a file; for a remote source, IoError "cannot connect to SOURCE:
// <libnbd's error>; check that the server is running and the URI is right"
// (no reconnect loop at open: a source that cannot be reached fails fast).
Result<std::unique_ptr<Device>> OpenSource(const SourceSpec& spec,
                                           const SourceOpenOptions& options);

}  // namespace clonefs
