// The mount(8) form of `clonefs mount`, for /etc/fstab and `mount -t
// fuse.clonefs`:
//
//   SOURCE  MOUNTPOINT  fuse.clonefs  dest=DEST[,OPTION[=VALUE]...]  0 0
//
// mount(8) runs mount.fuse3, which runs `clonefs SOURCE MOUNTPOINT -o
// OPTIONS`. FstabToMountArgs turns that into the arguments of `clonefs
// mount` (docs/integration.md):
//   - dest=DEST is DEST (required);
//   - every other `clonefs mount` long option is written with `_` or `-`:
//     rate=100M, region_size=1M, no_hydration, allow_other, metadata=DIR ...;
//   - the options of the mount itself (ro, nodev, nosuid, noexec, noatime,
//     sync, dirsync ...) go to FUSE (`-o`);
//   - what only mount(8), systemd or fstab read (defaults, auto, noauto,
//     user, users, nouser, owner, group, _netdev, nofail, rw, x-*,
//     comment=*) is ignored.
//
// THREAD SAFETY: pure functions.
#pragma once

#include "base/result.h"
#include "command.h"

namespace clonefs::cli {

// `args`: everything after the program name (SOURCE MOUNTPOINT and any
// number of `-o LIST`). Errors: InvalidArgument saying what is wrong (no
// dest=, a missing SOURCE or MOUNTPOINT, an extra argument, an empty option).
// Options unknown to `clonefs mount` pass through as --NAME and are refused
// by its parser with the rest. Each option becomes one --NAME[=VALUE]
// argument after the paths, so a value given to a flag (allow_other=1) or
// left out (rate) is refused by that parser naming the option.
Result<Args> FstabToMountArgs(const Args& args);

}  // namespace clonefs::cli
