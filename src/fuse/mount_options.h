// MountOptions: everything `clonefs mount` needs, as a plain struct. The
// command line turns argv into it (cli/mount_command.cc); the daemon
// (daemon.h) consumes it. No argv, no Boost here.
//
// THREAD SAFETY: a value type.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/log.h"
#include "clone/settings.h"
#include "engine/engine.h"

namespace clonefs::fuse {

struct MountOptions {
  // Read-only image (regular file or block device). Required.
  std::string source;
  // Writable destination (regular file, created sparse or extended to the
  // source's size if needed, or a block device at least as large). Required.
  std::string dest;
  // Directory to mount on. Required; must exist, be a directory and not be
  // a mount point (a stale mount of a dead clonefs daemon is detached).
  std::string mountpoint;
  // Metadata directory. Default: "" = DEST.clonefs beside a regular-file
  // dest (required for a block-device dest).
  std::string metadata_dir;
  // Name of the exposed file. Default: "" = basename of DEST.
  std::string name;
  // Region size in bytes: a power of two in [4 KiB, 1 GiB]. Used when the
  // metadata is formatted; an existing clone must be mounted with its own
  // region size. Default: 64 KiB.
  uint64_t region_size = 64 * 1024;
  // Hydration knobs (engine.h). Defaults there; --no-hydration clears
  // hydration_enabled.
  HydrationKnobs knobs;
  // Punch-hole deallocates dest space (true) or writes zeros (false).
  // Default: true.
  bool discard_passdown = true;
  // Open source and dest with O_DIRECT (no page cache: bounded memory, no
  // double caching under a loop device or VM). Falls back to buffered I/O,
  // with a warning, on file systems without O_DIRECT. Default: true.
  bool direct_io = true;
  // Start a new clone on a dest that already holds data (no metadata for
  // it exists), overwriting that data with the source. Without it such a
  // dest is refused: it may be a renamed or finished clone, or another file.
  // Default: false.
  bool overwrite_dest = false;
  // Mount with allow_other. Default: false.
  bool allow_other = false;
  // Once the clone is complete, answer new opens with FUSE passthrough to
  // dest, where the kernel allows it (Linux 6.9+, CAP_SYS_ADMIN, dest a
  // regular file): the kernel then reads and writes dest itself. Default:
  // true.
  bool passthrough = true;
  // How requests reach the daemon: io_uring where the kernel offers it
  // (auto), io_uring or refuse the mount (uring), /dev/fuse only (dev).
  // Default: "" = $CLONEFS_FUSE_TRANSPORT, else auto (ParseFuseTransport).
  std::string fuse_transport;
  // Extra FUSE mount options (-o). Default: none.
  std::vector<std::string> fuse_options;
  // Stay attached to the terminal, logging to stderr. Default: false
  // (daemonize; return once the file is usable).
  bool foreground = false;
  // Default: info.
  LogLevel log_level = LogLevel::kInfo;
  // Log file. Default: "" = METADATA/clonefs.log (besides stderr in the
  // foreground, syslog when detached).
  std::string log_file;
  // Shell command run (via /bin/sh -c) once hydration completes, with
  // CLONEFS_SOURCE, CLONEFS_DEST, CLONEFS_MOUNTPOINT and CLONEFS_METADATA in
  // its environment. Default: none.
  std::string on_complete;
  // Most FUSE worker threads. Default: 64.
  uint32_t threads = 64;
  // How long a read waits for the source (a remote source reconnecting, a
  // stalled network file system) before the reader gets EIO. Default: 30 s.
  uint64_t source_timeout_ms = clone::kDefaultSourceTimeoutMs;
  // Copy-on-read (SPEC §10). Default: unset = on for a remote source (a
  // URI), off for a file or block device.
  std::optional<bool> copy_on_read;
  // Read hints: hydrate ahead of sequential readers and near recent reads
  // first. Default: true.
  bool read_hints = true;
  // Access profile to replay as the hydration order (absolute path), and
  // where to record this clone's (written at unmount). Default: none.
  std::string profile;
  std::string record_profile;

  // --- stored settings (SPEC §5; docs/cli.md "Stored settings") ---
  // The settings given on the command line. A mount of an existing clone
  // takes every setting it does not give from the clone's stored ones
  // (ResolveStoredSettings, stored_settings.h), then stores the given ones.
  // The fields above hold the values in effect: the CLI sets both, and
  // whatever no one gave keeps its default. Default: none given.
  clone::Settings given;
  // --region-size was given: an existing clone with another region size is
  // refused. Otherwise an existing clone keeps its own and region_size only
  // formats a new one. Default: false.
  bool region_size_given = false;
  // --reset-settings: ignore the stored settings (even a damaged record) and
  // store only `given`. Default: false.
  bool reset_settings = false;
};

// Checks what can be checked without touching the filesystem and returns
// every problem found (empty = fine), each a full sentence saying what to do.
std::vector<std::string> ValidateMountOptions(const MountOptions& o);

// Why `name` cannot be the exposed file's name ("" if it can): empty, "." or
// "..", a '/', a control character, or longer than 255 bytes; each with its
// own sentence starting with `what` (e.g. "--name"), the name escaped
// (base/printable.h).
std::string NameProblem(const std::string& name, const std::string& what);

// Sets every field of `o` that `s` holds (rate -> knobs.rate_bytes_per_s,
// fuse_options -> one -o entry, or none when empty, ...); leaves the others.
void ApplySettings(const clone::Settings& s, MountOptions* o);

// Fills defaults that depend on the paths: absolute paths for source, dest,
// mountpoint and metadata_dir; name = basename(dest); metadata_dir =
// dest + ".clonefs". Lexical only (does not touch the filesystem).
// A source URI ("nbd://...", "https://...": a scheme followed by "://") is
// kept as given.
MountOptions ResolveMountDefaults(const MountOptions& o);

// Whether `source` is written as a URI (scheme "://"), not a path. Lexical.
bool IsSourceUri(const std::string& source);

}  // namespace clonefs::fuse
