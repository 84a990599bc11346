// What `clonefs --version` prints: the version (CMake's project version)
// and the commit the binary was built from (`git describe --always --dirty`
// at build time, "unknown" outside a git checkout). Generated at every build
// by cmake/build_info.cmake.
#pragma once

namespace clonefs::cli {

extern const char kVersion[];
extern const char kCommit[];

}  // namespace clonefs::cli
