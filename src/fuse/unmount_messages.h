// What `clonefs unmount` tells the user when it cannot unmount (the exposed
// file is in use, or the mount belongs to another user) or when the daemon
// does not exit in time after the unmount. Pure, so that each case's
// wording is tested without a mount.
//
// THREAD SAFETY: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace clonefs::fuse {

// The refusal when the kernel says the mount at `mountpoint` is busy:
// `file` (the exposed file) is in use, by the loop devices `loops` if any,
// and how to free it. `daemon_alive` says whether a daemon still serves the
// mount: the --force hint says it keeps serving the open users only then
// (a dead daemon's users just get errors until they close the file).
std::string InUseMessage(const std::string& mountpoint, const std::string& file,
                         const std::vector<std::string>& loops, bool daemon_alive);

// Why the user `euid` may not unmount a FUSE mount owned by `owner` (the
// mount's user_id=), or "" if it may: root may unmount any mount, the owner
// its own; an unknown owner is left to the kernel.
std::string UnmountOwnerProblem(const std::string& mountpoint, std::optional<uint32_t> owner,
                                uint32_t euid);

// What a daemon that is still stopping says about itself (its status, asked
// over the control socket, which it serves until it exits).
struct StoppingDaemon {
  std::string source;                   // as the daemon shows it (no password)
  bool source_is_remote = false;        // NBD, HTTP(S), SSH: every read has a deadline
  std::string source_state;             // "connected", "reconnecting", "stalled", "changed"
  uint64_t source_since_unix_ns = 0;    // when that state began; 0 if connected
  uint64_t oldest_request_unix_ns = 0;  // the oldest unanswered source request; 0: none
  std::string source_last_error;
  uint64_t source_timeout_ms = 0;  // the clone's --source-timeout
  uint64_t hydrating_regions = 0;
  std::string health;  // "ok", "degraded: ...", "failed: ..."
};

// The error when daemon `pid` has not exited `waited_s` seconds after its
// mount at `mountpoint` was unmounted (the mount is gone; the daemon
// finishes its work, then makes the final commit and exits). `daemon`:
// what it says about itself, or nullopt if it could not be asked (`why_not`
// says why). The message names the cause -- reads from a source that has
// not answered for a second or more (the hydrations in flight wait for a
// remote source's reads up to the source timeout, and for a file source's
// until its storage answers), or else the work in flight and the final
// commit -- and what to do; `now_unix_ns` (wall clock) dates the source's
// silence; `log_file` ("" if none) is where to follow it.
std::string StillStoppingMessage(const std::string& mountpoint, int64_t pid, uint32_t waited_s,
                                 const std::string& log_file,
                                 const std::optional<StoppingDaemon>& daemon,
                                 const std::string& why_not, uint64_t now_unix_ns);

}  // namespace clonefs::fuse
