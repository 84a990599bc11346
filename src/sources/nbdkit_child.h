// NbdkitChild: the nbdkit that one connection of an http(s):// or ssh://
// source starts (internal to nbd_connection). clonefs starts it itself
// rather than through nbd_aio_connect_command so that
//   - its standard error comes back on a pipe: nbdkit's plugin says there
//     why it cannot open the URL (an HTTP status, no range support, a
//     redirect loop), which libnbd only sees as "no export" on the NBD side;
//     the daemon's own standard error is /dev/null;
//   - a password from the URL reaches it on a pipe at kNbdkitPasswordFd
//     (source_spec.h), never on its command line.
// It serves one NBD connection on a socketpair's end as its stdin/stdout
// (-s); the other end is for nbd_aio_connect_socket.
//
// THREAD SAFETY: none; owned by one connection's I/O thread.
// LIFECYCLE: Start spawns; the destructor (or Kill) kills it with SIGKILL
// and reaps it, and closes the pipe. --exit-with-parent in its arguments
// ends it if clonefs dies (the parent being the I/O thread that spawned it).
#pragma once

#include <sys/types.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace clonefs {

class NbdkitChild {
 public:
  ~NbdkitChild();
  NbdkitChild(const NbdkitChild&) = delete;
  NbdkitChild& operator=(const NbdkitChild&) = delete;

  // Spawns argv (argv[0] looked up in PATH), with `password` readable on
  // kNbdkitPasswordFd if not empty. On success *sock is the client end of
  // the connection, owned by the caller. Errors: IoError naming the failed
  // call (socketpair, pipe, posix_spawn).
  static Result<std::unique_ptr<NbdkitChild>> Start(const std::vector<std::string>& argv,
                                                    const std::string& password, int* sock);

  // The read end of nbdkit's standard error (non-blocking), -1 after EOF.
  int stderr_fd() const { return err_; }
  // Reads what nbdkit has written on standard error so far, without
  // blocking; returns the lines completed since the last call (a partial
  // last line is returned at EOF). Each is also kept in recent().
  std::vector<std::string> ReadLines();
  // The last few lines read (at most 8), oldest first.
  const std::deque<std::string>& recent() const { return recent_; }

  // SIGKILL and reap; closes the pipe. Idempotent.
  void Kill();

 private:
  NbdkitChild() = default;
  pid_t pid_ = -1;
  int err_ = -1;
  std::string partial_;
  std::deque<std::string> recent_;
};

// What nbdkit's lines say, for a message: the last (at most 3) non-empty
// lines, without nbdkit's prefixes ("nbdkit: ", "curl[1]: ", "error: "),
// joined by "; ". "" if there are none.
std::string NbdkitSaid(const std::deque<std::string>& lines);

// Advice for a failed connect to an http(s):// source given what nbdkit
// said: what went wrong in plain words and what to do ("" if nothing in it
// is recognised).
std::string NbdkitAdvice(const std::string& said);

}  // namespace clonefs
