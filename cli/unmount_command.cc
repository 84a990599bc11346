// clonefs unmount: final commit and a clean unmount.
#include <cstdio>

#include "command.h"
#include "fuse/exit_codes.h"
#include "fuse/unmount.h"
#include "unmount_args.h"

namespace clonefs::cli {

int UnmountCommand(const Args& args) {
  ParsedUnmount p = ParseUnmountArgs(args);
  if (p.help) {
    fputs(UnmountUsage().c_str(), stdout);
    return kExitOk;
  }
  if (!p.problems.empty()) {
    for (const auto& m : p.problems) fprintf(stderr, "clonefs: error: %s\n", m.c_str());
    fprintf(stderr, "usage: clonefs unmount [--force] MOUNTPOINT (see clonefs unmount --help)\n");
    return kExitUsage;
  }
  return fuse::RunUnmount(p.options);
}

}  // namespace clonefs::cli
