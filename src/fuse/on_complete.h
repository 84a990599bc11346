// OnCompleteCommand: the user's --on-complete command (docs/cli.md), run
// once when the clone is complete, with its output in the daemon's log.
//
// THE COMMAND runs as `/bin/sh -c COMMAND`, in `/`, with stdin from
// /dev/null, stdout and stderr into a pipe the daemon reads, every signal
// unblocked, in a session of its own (so signals aimed at the daemon's
// terminal or process group do not reach it), and the environment given.
// The daemon does not wait for it.
//
// ITS OUTPUT is logged line by line ("on-complete[PID]: LINE", info level):
// at most `max_lines` lines of at most `max_line_bytes` bytes each (longer
// ones are cut, control characters escaped); beyond that it is read and
// discarded, so a chatty command never blocks on a full pipe nor grows the
// log without bound. When the command ends, how is logged: "exited with 0"
// (info), or "exited with 3", "killed by SIGKILL" (warning), with the number
// of lines not logged.
//
// LIFETIME: the command is not stopped by unmounting or by this object's
// destruction. If it still runs then, that is logged, and its output pipe
// is handed to a `cat >/dev/null` started for the purpose (in the command's
// session), so that the command's later writes neither block nor fail.
//
// THREAD SAFETY: Start may be called from any thread (the engine's
// committer calls it); one thread of this object follows the command. The
// destructor must not race with Start.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace clonefs::fuse {

// How a process ended, from its wait status: "exited with 3", "killed by
// SIGKILL", "killed by SIGSEGV (core dumped)", "stopped by SIGSTOP".
std::string DescribeWaitStatus(int status);

struct OnCompleteOptions {
  // The shell command. Required.
  std::string command;
  // The complete environment ("NAME=value" strings). Default: none.
  std::vector<std::string> env;
  // Output lines logged at most; the rest is counted. Default: 100.
  size_t max_lines = 100;
  // Bytes of a line logged at most; the rest of the line is cut. Default: 1000.
  size_t max_line_bytes = 1000;
};

class OnCompleteCommand {
 public:
  explicit OnCompleteCommand(OnCompleteOptions options);
  // Stops following the command (see LIFETIME); joins the thread.
  ~OnCompleteCommand();
  OnCompleteCommand(const OnCompleteCommand&) = delete;
  OnCompleteCommand& operator=(const OnCompleteCommand&) = delete;

  // Starts the command, once; later calls do nothing. A command that cannot
  // be started is logged (error level).
  void Start();

  // For tests: waits until the command has ended and its output has been
  // logged; returns its wait status (-1 if it never started).
  int WaitForTesting();

 private:
  void Follow(pid_t pid, int out_fd);

  const OnCompleteOptions options_;
  int stop_fds_[2] = {-1, -1};  // a pipe: the destructor writes to end Follow
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool started_ = false;  // GUARDED_BY(mu_)
  bool ended_ = false;    // GUARDED_BY(mu_)
  int status_ = -1;       // GUARDED_BY(mu_)
};

}  // namespace clonefs::fuse
