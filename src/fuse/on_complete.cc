#include "fuse/on_complete.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/log.h"

namespace clonefs::fuse {
namespace {

constexpr int kPollMillis = 100;
// Reads of what is left in the pipe once the command has exited (a
// process it left behind may keep writing).
constexpr int kMaxDrainReads = 64;

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

// The command's output, line by line into the log, bounded.
class OutputLog {
 public:
  OutputLog(pid_t pid, size_t max_lines, size_t max_line_bytes)
      : pid_(pid), max_lines_(max_lines), max_bytes_(max_line_bytes) {}

  void Add(const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      const unsigned char c = static_cast<unsigned char>(p[i]);
      if (c == '\n') {
        EndLine();
      } else if (line_.size() < max_bytes_) {
        in_line_ = true;
        if (c < 0x20 || c == 0x7f) {
          char esc[8];
          std::snprintf(esc, sizeof(esc), "\\x%02x", c);
          line_ += esc;
        } else {
          line_ += static_cast<char>(c);
        }
      } else {
        cut_ = true;
      }
    }
  }
  // The last line, if it had no newline.
  void Flush() {
    if (in_line_ || cut_) EndLine();
  }
  size_t not_logged() const { return not_logged_; }

 private:
  void EndLine() {
    if (logged_ < max_lines_) {
      CLONEFS_LOG_INFO("on-complete[%d]: %s%s", static_cast<int>(pid_), line_.c_str(),
                       cut_ ? " [line cut]" : "");
      if (++logged_ == max_lines_) {
        CLONEFS_LOG_INFO("on-complete[%d]: %zu lines logged; further output is not logged",
                         static_cast<int>(pid_), max_lines_);
      }
    } else {
      ++not_logged_;
    }
    line_.clear();
    in_line_ = cut_ = false;
  }

  const pid_t pid_;
  const size_t max_lines_, max_bytes_;
  std::string line_;
  bool in_line_ = false, cut_ = false;
  size_t logged_ = 0, not_logged_ = 0;
};

// Reads what `fd` (non-blocking) holds now, into `out`. Returns true at
// end of file.
bool Drain(int fd, OutputLog* out) {
  char buf[4096];
  for (int i = 0; i < kMaxDrainReads; ++i) {
    const ssize_t r = read(fd, buf, sizeof(buf));
    if (r > 0) {
      out->Add(buf, static_cast<size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
  }
  return false;
}

// Gives the read end of a pipe that processes still write to a reader that
// outlives the daemon: `cat >/dev/null`, detached through a shell that exits
// at once (so nothing is left for us to reap). Closes `fd`.
void HandOff(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // cat would stop at EAGAIN
  if (fd == 3) fcntl(fd, F_SETFD, 0);  // dup2(3, 3) keeps close-on-exec
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fd, 3);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
  // Through fd 3: an asynchronous list's stdin is /dev/null.
  const char* argv[] = {"sh", "-c", "cat <&3 3<&- >/dev/null &", nullptr};
  char path[] = "PATH=/usr/bin:/bin";
  char* envp[] = {path, nullptr};
  pid_t sh;
  int rc = posix_spawn(&sh, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv), envp);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  close(fd);
  if (rc != 0) {
    CLONEFS_LOG_WARN("on-complete: cannot start a reader for the command's further output (%s); "
                     "its writes to stdout/stderr will fail",
                     std::strerror(rc));
    return;
  }
  int status;
  while (waitpid(sh, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "killed by " + SignalName(WTERMSIG(status)) +
           (WCOREDUMP(status) ? " (core dumped)" : "");
  }
  if (WIFSTOPPED(status)) return "stopped by " + SignalName(WSTOPSIG(status));
  return "ended with wait status " + std::to_string(status);
}

OnCompleteCommand::OnCompleteCommand(OnCompleteOptions options) : options_(std::move(options)) {}

OnCompleteCommand::~OnCompleteCommand() {
  if (thread_.joinable()) {
    const char b = 1;
    ssize_t n = write(stop_fds_[1], &b, 1);
    (void)n;
    thread_.join();
  }
  for (int fd : stop_fds_) {
    if (fd >= 0) close(fd);
  }
}

void OnCompleteCommand::Start() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (started_) return;
    started_ = true;
  }
  int out[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(stop_fds_, O_CLOEXEC) != 0) {
    CLONEFS_LOG_ERROR("on-complete: cannot run '%s': pipe: %s", options_.command.c_str(),
                      std::strerror(errno));
    for (int fd : out) {
      if (fd >= 0) close(fd);
    }
    std::lock_guard<std::mutex> l(mu_);
    ended_ = true;
    cv_.notify_all();
    return;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, out[1], STDERR_FILENO);
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The daemon blocks its signals in every thread (they are taken with
  // sigwait); the command must not inherit that.
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t deflt;
  sigemptyset(&deflt);
  sigaddset(&deflt, SIGPIPE);  // the daemon ignores it
  posix_spawnattr_setsigdefault(&attr, &deflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETSID);
  std::vector<char*> envp;
  std::vector<std::string> env = options_.env;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const char* argv[] = {"sh", "-c", options_.command.c_str(), nullptr};
  pid_t pid;
  const int rc = posix_spawn(&pid, "/bin/sh", &fa, &attr, const_cast<char* const*>(argv),
                             envp.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    CLONEFS_LOG_ERROR("on-complete: cannot run /bin/sh: %s", std::strerror(rc));
    std::lock_guard<std::mutex> l(mu_);
    ended_ = true;
    cv_.notify_all();
    return;
  }
  fcntl(out[0], F_SETFL, fcntl(out[0], F_GETFL) | O_NONBLOCK);
  CLONEFS_LOG_INFO("on-complete: started '%s' (pid %d, in /); its output follows in this log",
                   options_.command.c_str(), static_cast<int>(pid));
  thread_ = std::thread(&OnCompleteCommand::Follow, this, pid, out[0]);
}

void OnCompleteCommand::Follow(pid_t pid, int fd) {
  OutputLog log(pid, options_.max_lines, options_.max_line_bytes);
  bool eof = false, exited = false, stop = false;
  int status = 0;
  while (!exited && !stop) {
    pollfd p[2] = {{eof ? -1 : fd, POLLIN, 0}, {stop_fds_[0], POLLIN, 0}};
    const int n = poll(p, 2, kPollMillis);
    if (n > 0 && p[1].revents != 0) stop = true;
    if (n > 0 && !eof && p[0].revents != 0) eof = Drain(fd, &log);
    const pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid || (w < 0 && errno == ECHILD)) exited = true;
  }
  if (!eof) eof = Drain(fd, &log);  // what the command wrote before it exited
  log.Flush();
  if (exited) {
    const std::string how = DescribeWaitStatus(status);
    const std::string more = log.not_logged() == 0
                                 ? std::string()
                                 : " (" + std::to_string(log.not_logged()) +
                                       " more lines of output not logged)";
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      CLONEFS_LOG_INFO("on-complete: command (pid %d) %s%s", static_cast<int>(pid), how.c_str(),
                       more.c_str());
    } else {
      CLONEFS_LOG_WARN("on-complete: command (pid %d) failed: %s%s", static_cast<int>(pid),
                       how.c_str(), more.c_str());
    }
  } else {
    CLONEFS_LOG_INFO("on-complete: command (pid %d) is still running as the daemon stops; it "
                     "keeps running, and its further output is not logged",
                     static_cast<int>(pid));
  }
  if (eof) {
    close(fd);
  } else {
    HandOff(fd);  // the command, or what it left running, still writes
  }
  std::lock_guard<std::mutex> l(mu_);
  ended_ = true;
  status_ = exited ? status : -1;
  cv_.notify_all();
}

int OnCompleteCommand::WaitForTesting() {
  std::unique_lock<std::mutex> l(mu_);
  if (!started_) return -1;
  cv_.wait(l, [&] { return ended_; });
  return status_;
}

}  // namespace clonefs::fuse
