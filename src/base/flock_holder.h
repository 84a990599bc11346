// Who holds an flock(2) on a file: read from /proc/locks, for messages that
// name the process a user must stop ("in use by clonefs daemon pid N").
//
// THREAD SAFETY: stateless.
#pragma once

#include <sys/types.h>

#include <string>

namespace clonefs {

// The pid holding an flock on `path` (matched by device and inode), or 0 if
// none is listed or it cannot be told.
int FlockHolderPid(const std::string& path);

// The same for the file whose device and inode are `dev` and `ino` (one
// reached by no usable path: a loop device's backing file seen from another
// mount namespace). 0 if none is listed.
int FlockHolderPid(dev_t dev, ino_t ino);

}  // namespace clonefs
