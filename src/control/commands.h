// The control subcommands of the `clonefs` command. cli/main.cc dispatches
// to these; `args` holds the words after the subcommand name. Each parses its
// own options (Boost.Program_options), prints to the given streams and
// returns the process exit code (docs/control.md, "Exit codes").
//
//   clonefs status  MOUNTPOINT [--json | --dm] [--watch [SECONDS]] [--count N]
//   clonefs message MOUNTPOINT KEYWORD [ARG]
//   clonefs wait    MOUNTPOINT [--timeout SECONDS] [--stall-timeout SECONDS]
//                   [--interval SECONDS] [--quiet]
//   clonefs info    DEST | --metadata DIR [--json]
//   clonefs check   DEST | --metadata DIR [--source PATH] [--dest PATH] [--quiet]
//
// status/message/wait also accept --socket PATH (talk to that control socket
// instead of discovering it from MOUNTPOINT).
//
// THREAD SAFETY: each call is independent; they write to the given streams.
#pragma once

#include <iosfwd>
#include <iterator>
#include <string>
#include <vector>

#include "base/exit_code_table.h"

namespace clonefs::control {

// Exit codes shared by every control subcommand, as in the rest of the
// `clonefs` command: 0 success, 1 failure, 2 bad command line.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Further exit codes of `clonefs wait`.
enum WaitExit : int {
  kWaitDone = 0,         // hydration complete and committed
  kWaitError = 1,        // not a clonefs mount, cannot connect, bad reply
  kWaitUsage = 2,        // bad command line
  kWaitCloneFailed = 3,  // read-only or failed (ro / Fail), or source or dest changed
  kWaitDaemonGone = 4,   // the daemon went away before completion
  kWaitTimedOut = 5,     // --timeout elapsed first
  kWaitStalled = 6,      // no hydration progress for --stall-timeout seconds
  kWaitExitEnd,          // one past the last code; keep it last
};

// Exit codes of `clonefs check` (as thin_check: 0 = clean). When several
// kinds of problem are found, the first in this order wins: locked, cannot
// open, corrupt, mismatch.
enum CheckExit : int {
  kCheckClean = 0,
  kCheckUsage = 2,       // bad command line
  kCheckCannotOpen = 3,  // no metadata there, permission, I/O error
  kCheckLocked = 4,      // a running daemon holds the metadata (mounted)
  kCheckCorrupt = 5,     // superblock or bitmap invalid
  kCheckMismatch = 6,    // source/dest differ from what the metadata records
  kCheckExitEnd,         // one past the last code; keep it last
};

// `clonefs info` exits 0, 1 (cannot read the metadata), 2 (bad command line)
// or kInfoMounted when the clone is mounted (use `clonefs status`).
inline constexpr int kInfoMounted = 4;

// Each command's exit codes as its --help prints them and docs/control.md
// lists them (base/exit_code_table.h). A new code goes into its command's
// table; the static_asserts catch a new last code left out.
inline constexpr ExitCodeDoc kStatusExitCodes[] = {
    {kExitOk, "printed (with --watch: after --count refreshes)"},
    {kExitFailure, "not a clonefs mount, its daemon unreachable or gone, or the request refused"},
    {kExitUsage, "bad command line"},
};
inline constexpr ExitCodeDoc kMessageExitCodes[] = {
    {kExitOk, "applied (the new setting is printed)"},
    {kExitFailure, "not a clonefs mount, its daemon unreachable, or refused by the daemon"},
    {kExitUsage, "bad command line or invalid message"},
};
inline constexpr ExitCodeDoc kWaitExitCodes[] = {
    {kWaitDone, "hydration complete and committed"},
    {kWaitError, "not a clonefs mount, cannot connect, or a bad reply"},
    {kWaitUsage, "bad command line"},
    {kWaitCloneFailed,
     "the clone is read-only or failed, or its source or dest changed: it cannot complete"},
    {kWaitDaemonGone, "the daemon went away before completion (unmounted, killed)"},
    {kWaitTimedOut, "--timeout elapsed first"},
    {kWaitStalled,
     "--stall-timeout: no hydration progress for that long (the health and last "
     "error say why)"},
};
static_assert(std::size(kWaitExitCodes) == kWaitExitEnd, "document every wait exit code");
inline constexpr ExitCodeDoc kInfoExitCodes[] = {
    {kExitOk, "printed"},
    {kExitFailure, "the metadata cannot be read"},
    {kExitUsage, "bad command line"},
    {kInfoMounted, "the clone is mounted (use clonefs status)"},
};
inline constexpr ExitCodeDoc kCheckExitCodes[] = {
    {kCheckClean, "clean"},
    {kCheckUsage, "bad command line"},
    {kCheckCannotOpen, "cannot open: no metadata there, permission denied, I/O error"},
    {kCheckLocked, "locked: a running daemon holds the metadata (mounted)"},
    {kCheckCorrupt, "corrupt: the store, superblock or bitmap is invalid"},
    {kCheckMismatch, "identity mismatch: source or dest differ from the metadata, or are missing"},
};
static_assert(kCheckExitCodes[std::size(kCheckExitCodes) - 1].code == kCheckExitEnd - 1,
              "document every check exit code");

struct CommandIo {
  std::ostream& out;
  std::ostream& err;
  // Whether `out` is a terminal (progress bars, in-place refresh).
  bool out_is_tty = false;
};

// Versions that use std::cout/std::cerr and isatty(1).
int RunStatusCommand(const std::vector<std::string>& args);
int RunMessageCommand(const std::vector<std::string>& args);
int RunWaitCommand(const std::vector<std::string>& args);
int RunInfoCommand(const std::vector<std::string>& args);
int RunCheckCommand(const std::vector<std::string>& args);

int RunStatusCommand(const std::vector<std::string>& args, const CommandIo& io);
int RunMessageCommand(const std::vector<std::string>& args, const CommandIo& io);
int RunWaitCommand(const std::vector<std::string>& args, const CommandIo& io);
int RunInfoCommand(const std::vector<std::string>& args, const CommandIo& io);
int RunCheckCommand(const std::vector<std::string>& args, const CommandIo& io);

}  // namespace clonefs::control
