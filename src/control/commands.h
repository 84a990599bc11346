// The control subcommands of the `clonefs` command. cli/main.cc dispatches
// to these; `args` holds the words after the subcommand name. Each parses its
// own options (Boost.Program_options), prints to the given streams and
// returns the process exit code (docs/control.md, "Exit codes").
//
//   clonefs status  MOUNTPOINT [--json | --dm] [--watch [SECONDS]] [--count N]
//   clonefs message MOUNTPOINT KEYWORD [ARG]
//   clonefs wait    MOUNTPOINT [--timeout SECONDS] [--interval SECONDS] [--quiet]
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

// Exit codes of `clonefs wait`.
enum WaitExit : int {
  kWaitDone = 0,         // hydration complete and committed
  kWaitError = 1,        // usage error, not a clonefs mount, cannot connect
  kWaitTimedOut = 2,     // --timeout elapsed first
  kWaitCloneFailed = 3,  // the clone is read-only or failed (ro / Fail)
  kWaitDaemonGone = 4,   // the daemon went away before completion
};

// Exit codes of `clonefs check` (like thin_check: 0 = clean).
enum CheckExit : int {
  kCheckClean = 0,
  kCheckUsage = 1,       // bad arguments or an unexpected error
  kCheckCannotOpen = 2,  // no metadata there, permission, I/O error
  kCheckLocked = 3,      // a running daemon holds the metadata (mounted)
  kCheckCorrupt = 4,     // superblock or bitmap invalid
  kCheckMismatch = 5,    // source/dest differ from what the metadata records
};

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
