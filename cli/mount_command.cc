// clonefs mount: parse, validate (every problem at once), run the daemon.
#include <cstdio>

#include "command.h"
#include "fuse/daemon.h"
#include "fuse/exit_codes.h"
#include "mount_args.h"

namespace clonefs::cli {

int MountCommand(const Args& args) {
  ParsedMount p = ParseMountArgs(args);
  if (p.help) {
    fputs(MountUsage().c_str(), stdout);
    return kExitOk;
  }
  if (!p.problems.empty()) {
    for (const auto& m : p.problems) fprintf(stderr, "clonefs: error: %s\n", m.c_str());
    fprintf(stderr, "usage: clonefs mount [options] SOURCE DEST MOUNTPOINT (see clonefs mount --help)\n");
    return kExitUsage;
  }
  return fuse::RunMount(p.options);
}

}  // namespace clonefs::cli
