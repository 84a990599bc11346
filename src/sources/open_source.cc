#include "sources/open_source.h"

#include "devices/posix_device.h"

namespace clonefs {

Result<std::unique_ptr<Device>> OpenSource(const SourceSpec& spec,
                                           const SourceOpenOptions& options) {
  if (spec.IsRemote()) {
    NbdSourceOptions nbd = options.nbd;
    nbd.timeout_ns = options.timeout_ns;
    return OpenNbdSource(spec, nbd);
  }
  PosixDeviceOptions posix;
  posix.read_only = true;
  posix.watch_mtime = options.watch_mtime;
  CLONEFS_ASSIGN_OR_RETURN(std::unique_ptr<Device> file, OpenPosixDevice(spec.uri, posix));
  TimedSourceOptions timed;
  timed.timeout_ns = options.timeout_ns;
  timed.threads = options.file_threads;
  return MakeTimedSource(std::move(file), timed);
}

}  // namespace clonefs
