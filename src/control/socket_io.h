// Small blocking-with-deadline helpers over non-blocking Unix stream sockets,
// shared by the control server and client. errno becomes Status here.
//
// THREAD SAFETY: functions of their arguments; one fd per caller.
#pragma once

#include <sys/un.h>

#include <chrono>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/status.h"

namespace clonefs::control {

using Deadline = std::chrono::steady_clock::time_point;

// The address of the Unix socket at `path`. A path too long for sun_path
// (108 bytes) is reached through its directory: opened O_PATH and named
// "/proc/self/fd/N/<last component>"; the directory's fd is then put in
// *dir_fd and must stay open until bind/connect returned (the caller closes
// it), else *dir_fd is -1. Errors: InvalidArgument (last component too long),
// the directory's open error.
Result<sockaddr_un> UnixAddress(const std::string& path, int* dir_fd);

// Connects to a Unix stream socket (any path length, see UnixAddress);
// returns a non-blocking, close-on-exec fd
// the caller owns. Errors: NotFound (no socket file), Permission (EACCES),
// IoError (ECONNREFUSED: nobody listening, and others), all naming the path.
Result<int> ConnectUnix(const std::string& path);

// Reads up to and excluding the first '\n'. Errors: InvalidArgument if no
// newline within max_bytes; Aborted on deadline or when `stop_fd` (if >= 0)
// becomes readable; IoError if the peer closes first or on a socket error.
Result<std::string> ReadLine(int fd, size_t max_bytes, Deadline deadline, int stop_fd = -1);

// Reads until EOF. Errors: InvalidArgument past max_bytes; Aborted on
// deadline; IoError on a socket error.
Result<std::string> ReadAll(int fd, size_t max_bytes, Deadline deadline);

// Writes everything (MSG_NOSIGNAL). Errors: Aborted on deadline or stop_fd;
// IoError (e.g. EPIPE) otherwise.
Status WriteAll(int fd, std::string_view data, Deadline deadline, int stop_fd = -1);

}  // namespace clonefs::control
