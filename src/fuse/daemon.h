// The clonefs daemon: `clonefs mount` from checked options to a served
// mount, and back to a clean exit.
//
// SEQUENCE (RunMount)
//   detached (default): fork; the parent waits on a pipe while the child
//     (new session, cwd "/") does everything below and reports notes,
//     errors and finally "mounted" through the pipe. The parent then checks
//     that the exposed file answers getattr (the daemon itself never touches
//     its own mount) and exits 0; on any error it prints the child's message
//     and exits non-zero.
//   --foreground: the same steps in this process; messages go to stderr.
// In the serving process:
//   1. PR_SET_IO_FLUSHER (before any thread exists; a warning if refused),
//      SIGTERM/SIGINT/SIGHUP blocked in every thread, SIGPIPE ignored.
//   2. Checks and opening (preflight.h): paths, mount point (a stale clonefs
//      mount is detached), the clone's stored settings (stored_settings.h:
//      the options in effect from here on), source, dest, metadata (locked
//      for the daemon's whole life: the Metadata object lives in the
//      engine), then the merged settings are stored.
//   3. Engine::Open + Start, dest opened once more as the passthrough backing
//      file (passthrough.h; unless --no-passthrough), FuseServer::Mount, the
//      daemon record in the metadata directory (runtime_info.h), the signal
//      thread, "mounted".
//   4. Serve until unmounted. The FUSE destroy operation shuts the engine
//      down (final commit). Exit 0 if that commit succeeded.
//
// LOGGING: --log-file FILE, or else METADATA/clonefs.log (size-capped,
// rotated once to clonefs.log.1), plus syslog where /dev/log exists
// (detached) or stderr (--foreground). Messages logged before the metadata
// directory exists are held and written once it does (after OpenClone; at
// once for an existing clone). The log's path is in the mount message, the
// daemon record and `clonefs status`.
//
// SIGNALS (one thread, sigwait): SIGTERM/SIGINT try a plain unmount; while
// the exposed file is open (loop device, VM) the kernel refuses, and the
// daemon logs that it keeps serving and that `clonefs unmount` (after
// detaching the users) is the way to stop. SIGHUP reopens the log file
// (after an outside rotation).
// libfuse's own signal handlers are not installed.
#pragma once

#include <functional>
#include <string>

#include "base/status.h"
#include "clone/settings_store.h"
#include "engine/engine.h"
#include "fuse/fuse_fs_options.h"
#include "fuse/mount_options.h"

namespace clonefs::fuse {

// What the serving process knows once the engine runs.
struct ServeContext {
  const MountOptions* options = nullptr;  // resolved: absolute paths, defaults
  std::string uuid;                       // the clone's UUID (superblock)
  // The clone's stored settings, for `clonefs message` to update. Valid
  // until DaemonHooks::stop has returned.
  clone::SettingsStore* settings = nullptr;
  // The FUSE layer's passthrough state and request counters, callable from
  // any thread until DaemonHooks::stop has returned (before the mount
  // exists: passthrough "starting", counters 0).
  std::function<FuseStats()> fuse_stats;
};

// Extension points for services that run beside the FUSE mount in the
// daemon (the control channel), so this library does not depend on them.
// Both run in the serving process, on its main thread.
struct DaemonHooks {
  // After the engine started, before the mount is announced. A failure
  // aborts the mount with that message. Default: none.
  std::function<Status(Engine* engine, const ServeContext& ctx)> start;
  // Once the exposed file is usable (the mount is announced). Default: none.
  std::function<void()> mounted;
  // After serving ended (engine shut down, not yet destroyed). Default: none.
  std::function<void()> stop;
};

// Runs `clonefs mount`. REQUIRES: ValidateMountOptions(options) is empty;
// no other thread exists in this process (it may fork). Returns the exit
// code (exit_codes.h). Detached: returns in the parent once the file is
// usable; the child never returns (it _exits). Foreground: returns after
// the mount has been served and unmounted.
int RunMount(const MountOptions& options, const DaemonHooks& hooks = {});

}  // namespace clonefs::fuse
