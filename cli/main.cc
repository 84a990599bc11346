// clonefs: the command. Thin: finds the subcommand in the table below and
// runs it; command-line errors are caught here, once.
#include <boost/program_options/errors.hpp>
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "build_info.h"
#include "command.h"
#include "fstab_args.h"
#include "suggest.h"
#include "fuse/exit_codes.h"
#ifdef CLONEFS_WITH_CONTROL
#include "control/commands.h"
#include "sources/uri_parts.h"
#endif

namespace clonefs::cli {
namespace {

// The whole command surface. Control subcommands (status, message, wait,
// info, check) each add one line here, from their own <name>_command.cc.
const Command kCommands[] = {
    {"mount",   "clone SOURCE into DEST and expose it as a file in MOUNTPOINT", MountCommand},
    {"unmount", "final commit and clean unmount of a clone",                    UnmountCommand},
    {"profile", "show an access profile recorded with mount --record-profile",  ProfileCommand},
#ifdef CLONEFS_WITH_CONTROL
    {"status",  "show a mounted clone's status (--json, --dm, --watch)",       control::RunStatusCommand},
    {"message", "change a knob of a mounted clone (dm-clone messages, rate)",  control::RunMessageCommand},
    {"wait",    "wait until hydration is complete and committed",             control::RunWaitCommand},
    {"info",    "show the status of a clone that is not mounted",             control::RunInfoCommand},
    {"check",   "validate a clone's metadata and file identities",            control::RunCheckCommand},
#endif
};

void PrintHelp(FILE* out) {
  fprintf(out,
          "Usage: clonefs COMMAND [options] [arguments]\n\n"
          "clonefs makes a writable copy of a large read-only image usable at once: a FUSE\n"
          "file whose unread regions come from the source while a background copier fills\n"
          "the destination (Linux's dm-clone, in user space, at file level).\n\n"
          "Commands:\n");
  for (const auto& c : kCommands) fprintf(out, "  %-10s %s\n", c.name, c.summary);
  fprintf(out,
          "\nRun 'clonefs COMMAND --help' for a command's options, 'clonefs --version' for\n"
          "the version. mount(8) and fstab use the form 'clonefs SOURCE MOUNTPOINT -o\n"
          "dest=DEST[,OPTION...]' (FSTAB in clonefs(8)).\n"
          "Exit codes: 0 success, 1 failure, 2 bad command line; some commands have more\n"
          "(each command's --help lists its own).\n");
}

// Overwrites, in the process's own argument strings, every secret of an
// argument that holds a URI (its password, and query values such as a
// signed URL's signature: SecretSpans) with '*'s, so that
// /proc/PID/cmdline (readable by every user, and inherited by the daemon,
// which is a fork of this process) never shows them. The arguments were
// copied before; the copy keeps the secrets for connecting.
void HideSecretsFromProcessList(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    for (const auto& [begin, end] : SecretSpans(argv[i])) {
      std::memset(argv[i] + begin, '*', end - begin);
    }
  }
}

}  // namespace
}  // namespace clonefs::cli

int main(int argc, char** argv) {
  using namespace clonefs::cli;
  if (argc < 2) {
    PrintHelp(stderr);
    return clonefs::kExitUsage;
  }
  // Every use of the arguments goes through this copy (see below).
  const Args all(argv, argv + argc);
  HideSecretsFromProcessList(argc, argv);
  const std::string name = all[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintHelp(stdout);
    return clonefs::kExitOk;
  }
  if (name == "--version") {
    printf("clonefs %s (commit %s)\n", kVersion, kCommit);
    return clonefs::kExitOk;
  }
  for (const auto& c : kCommands) {
    if (name != c.name) continue;
    try {
      return c.run(Args(all.begin() + 2, all.end()));
    } catch (const boost::program_options::error& e) {
      fprintf(stderr, "clonefs: error: %s; see: clonefs %s --help\n", e.what(), c.name);
      return clonefs::kExitUsage;
    }
  }
  // mount(8), through mount.fuse3, runs `clonefs SOURCE MOUNTPOINT -o
  // dest=DEST,...` for an fstab line or `mount -t fuse.clonefs`.
  const Args rest(all.begin() + 1, all.end());
  if (std::any_of(rest.begin(), rest.end(), [](const std::string& a) { return a.rfind("-o", 0) == 0; })) {
    clonefs::Result<Args> m = FstabToMountArgs(rest);
    if (!m.ok()) {
      fprintf(stderr, "clonefs: error: %s; see FSTAB in clonefs(8)\n", m.status().message().c_str());
      return clonefs::kExitUsage;
    }
    try {
      return MountCommand(*m);
    } catch (const boost::program_options::error& e) {
      fprintf(stderr, "clonefs: error: %s (from the -o options); see FSTAB in clonefs(8)\n",
              e.what());
      return clonefs::kExitUsage;
    }
  }
  std::vector<std::string> names;
  for (const auto& c : kCommands) names.emplace_back(c.name);
  const std::string near = ClosestWord(name, names);
  if (!near.empty()) {
    fprintf(stderr, "clonefs: error: unknown command '%s'; did you mean '%s'? see: clonefs --help\n",
            name.c_str(), near.c_str());
  } else {
    fprintf(stderr, "clonefs: error: unknown command '%s'; see: clonefs --help\n", name.c_str());
  }
  return clonefs::kExitUsage;
}
