// `clonefs mount` command line -> fuse::MountOptions.
#pragma once

#include <string>
#include <vector>

#include "command.h"
#include "fuse/mount_options.h"

namespace clonefs::cli {

struct ParsedMount {
  fuse::MountOptions options;
  bool help = false;
  // Every bad value and every failed validation, each a full sentence.
  std::vector<std::string> problems;
};

// Parses the arguments after "mount". Values are converted and validated
// here so that all problems are reported at once. Throws
// boost::program_options::error for a malformed command line (unknown
// option, missing value, too many arguments).
ParsedMount ParseMountArgs(const Args& args);

// The complete `clonefs mount --help` text.
std::string MountUsage();

}  // namespace clonefs::cli
