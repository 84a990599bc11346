// The clonefs command's subcommands. Each lives in its own file
// (<name>_command.cc) and is listed once in the dispatch table in main.cc.
//
// A subcommand receives the arguments after its name, returns an exit code
// (src/fuse/exit_codes.h) and may throw boost::program_options::error for a
// malformed command line; main() catches those once and exits with
// kExitUsage.
#pragma once

#include <string>
#include <vector>

namespace clonefs::cli {

using Args = std::vector<std::string>;

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const Args& args);
};

int MountCommand(const Args& args);
int UnmountCommand(const Args& args);
int ProfileCommand(const Args& args);

}  // namespace clonefs::cli
