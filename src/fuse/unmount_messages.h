// What `clonefs unmount` tells the user when it cannot unmount: the exposed
// file is in use, or the mount belongs to another user. Pure, so that each
// case's wording is tested without a mount.
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

}  // namespace clonefs::fuse
