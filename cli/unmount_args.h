// `clonefs unmount` command line -> fuse::UnmountOptions.
#pragma once

#include <string>
#include <vector>

#include "command.h"
#include "fuse/unmount.h"

namespace clonefs::cli {

struct ParsedUnmount {
  fuse::UnmountOptions options;
  bool help = false;
  std::vector<std::string> problems;
};

// Throws boost::program_options::error for a malformed command line.
ParsedUnmount ParseUnmountArgs(const Args& args);
// The complete `clonefs unmount --help` text.
std::string UnmountUsage();
// The one usage line printed after a bad command line: every option.
std::string UnmountShortUsage();

}  // namespace clonefs::cli
