// Exit codes of the clonefs command (documented in docs/cli.md).
#pragma once

namespace clonefs {

inline constexpr int kExitOk = 0;
// A check failed (SPEC §7) or something went wrong at run time.
inline constexpr int kExitFailure = 1;
// The command line is wrong (unknown option, bad value, missing argument).
inline constexpr int kExitUsage = 2;
// unmount: the exposed file is still in use (loop device, VM, open file).
inline constexpr int kExitBusy = 3;

}  // namespace clonefs
