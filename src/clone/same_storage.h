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

// OK if writing `dest` cannot change `source`'s content. A dest that does
// not exist yet is judged by the directory it would be created in (a file
// system stored on the source). InvalidArgument with the reason and what to
// do otherwise. Errors: the source's stat error.
Status CheckDistinctStorage(const std::string& source, const std::string& dest);

// OK unless `path`, a file or directory the clone writes besides dest (its
// metadata directory, its log file), is or would be stored on `source`:
// judged by `path` if it exists, else by its nearest existing ancestor.
// `what` names it in the message ("metadata directory"), `option` says what
// to change ("--metadata"). InvalidArgument otherwise. Errors: the source's
// stat error.
Status CheckNotStoredOnSource(const std::string& source, const std::string& path,
                              const std::string& what, const std::string& option);

}  // namespace clonefs::clone
