// "Is dest the source under another name?" (SPEC §7a). The source is never
// written, whatever path leads to it: a hard link or bind-mounted path to
// the source file, a loop device backed by it, a block device that holds the
// source's file system or a partition/device-mapper device over the source
// device, a source that lives inside dest -- all are refused before dest is
// opened for writing.
//
// THREAD SAFETY: stateless.
#pragma once

#include <string>

#include "base/status.h"

namespace clonefs::clone {

// OK if writing `dest` cannot change `source`'s content (or dest does not
// exist yet). InvalidArgument with the reason and what to do otherwise.
// Errors: the source's stat error.
Status CheckDistinctStorage(const std::string& source, const std::string& dest);

}  // namespace clonefs::clone
