// Exit codes of the clonefs command, and the tables of those that mount,
// unmount and profile return (their --help prints them; docs/cli.md, "Exit
// codes", lists the same; tests/mount/exit_codes_test.cc checks all three
// against the real command). The control commands' tables are in
// src/control/commands.h.
#pragma once

#include "base/exit_code_table.h"

namespace clonefs {

inline constexpr int kExitOk = 0;
// A check failed (SPEC §7) or something went wrong at run time.
inline constexpr int kExitFailure = 1;
// The command line is wrong (unknown option, bad value, missing argument).
inline constexpr int kExitUsage = 2;
// unmount: the exposed file is still in use (loop device, VM, open file).
inline constexpr int kExitBusy = 3;

inline constexpr ExitCodeDoc kMountExitCodes[] = {
    {kExitOk, "mounted: the file is usable (or --help)"},
    {kExitFailure, "refused (the message says why and what to do) or failed"},
    {kExitUsage, "bad command line (every problem is listed)"},
};

inline constexpr ExitCodeDoc kUnmountExitCodes[] = {
    {kExitOk, "unmounted, final commit done (or detached with --force)"},
    {kExitFailure,
     "not a clonefs mount, another user's mount, the final commit failed, or the daemon had "
     "not exited within --timeout"},
    {kExitUsage, "bad command line"},
    {kExitBusy, "the exposed file is still in use (loop device, VM, open file)"},
};

inline constexpr ExitCodeDoc kProfileExitCodes[] = {
    {kExitOk, "printed"},
    {kExitFailure, "FILE cannot be read or is not a profile"},
    {kExitUsage, "bad command line"},
};

}  // namespace clonefs
