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
#include <string>
#include <vector>

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
  kWaitCloneFailed = 3,  // the clone is read-only or failed (ro / Fail)
  kWaitDaemonGone = 4,   // the daemon went away before completion
  kWaitTimedOut = 5,     // --timeout elapsed first
  kWaitStalled = 6,      // no hydration progress for --stall-timeout seconds
};

// Exit codes of `clonefs check` (as thin_check: 0 = clean). When several
// kinds of problem are found, the first in this order wins: locked, cannot
// open, corrupt, mismatch.
enum CheckExit : int {
  kCheckClean = 0,
  kCheckError = 1,       // an unexpected error
  kCheckUsage = 2,       // bad command line
  kCheckCannotOpen = 3,  // no metadata there, permission, I/O error
  kCheckLocked = 4,      // a running daemon holds the metadata (mounted)
  kCheckCorrupt = 5,     // superblock or bitmap invalid
  kCheckMismatch = 6,    // source/dest differ from what the metadata records
};

// `clonefs info` exits 0, 1 (cannot read the metadata), 2 (bad command line)
// or kInfoMounted when the clone is mounted (use `clonefs status`).
inline constexpr int kInfoMounted = 4;

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
