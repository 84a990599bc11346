#include "base/log.h"

#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <vector>

namespace clonefs {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

// Everything below is guarded by g_mu.
std::mutex g_mu;
LogSinks g_sinks{/*to_stderr=*/true, "", false};
std::string g_ident;  // the string syslog(3) keeps a pointer to while open
bool g_syslog_open = false;
bool g_stderr_is_journal = false;  // stderr is the journal's stream: "<N>" prefixes
int g_fd = -1;  // the log file, O_APPEND
std::string g_path;
uint64_t g_max = kDefaultLogFileMaxBytes;
uint64_t g_size = 0;  // bytes in the current file
bool g_file_error_reported = false;
std::vector<std::string> g_held;  // formatted file lines, oldest first
uint64_t g_held_bytes = 0;
uint64_t g_held_dropped = 0;
// What the open file could not take (see UNWRITTEN in log.h): the bytes, in
// order, of the lines (or the tail of a line) a write failed on, written
// before anything newer; the lines in it, those dropped beyond
// kLogHoldBytes, and the first failure.
std::string g_unwritten;
uint64_t g_unwritten_lines = 0;
uint64_t g_unwritten_dropped = 0;
int g_unwritten_errno = 0;
time_t g_unwritten_since = 0;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kError: return "error";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kInfo: return "info";
    case LogLevel::kDebug: return "debug";
  }
  return "?";
}

int SyslogPriority(LogLevel l) {
  switch (l) {
    case LogLevel::kError: return LOG_ERR;
    case LogLevel::kWarning: return LOG_WARNING;
    case LogLevel::kInfo: return LOG_INFO;
    case LogLevel::kDebug: return LOG_DEBUG;
  }
  return LOG_INFO;
}

// True if fd 2 is the stream systemd connected to the journal: systemd sets
// JOURNAL_STREAM to its "device:inode" (systemd.exec(5)); a redirected
// stderr no longer matches it.
bool StderrIsJournal() {
  const char* js = getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st;
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

int OpenAppend(const std::string& path) {
  return open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

// REQUIRES: g_mu held.
void ReportFileErrorOnce(const std::string& what, int err) {
  if (g_file_error_reported) return;
  g_file_error_reported = true;
  fprintf(stderr, "clonefs: warning: log file %s: %s: %s; messages go to the other sinks only\n",
          g_path.c_str(), what.c_str(), std::strerror(err));
}

// REQUIRES: g_mu held.
void CloseFile() {
  if (g_fd >= 0) close(g_fd);
  g_fd = -1;
  g_path.clear();
  g_size = 0;
}

// Starts a new file, keeping the current one as PATH.1. REQUIRES: g_mu held,
// g_fd >= 0.
void Rotate() {
  close(g_fd);
  g_fd = -1;
  g_size = 0;
  if (rename(g_path.c_str(), (g_path + ".1").c_str()) != 0) {
    ReportFileErrorOnce("rename to " + g_path + ".1", errno);
  }
  g_fd = OpenAppend(g_path);
  if (g_fd < 0) ReportFileErrorOnce("reopen after rotation", errno);
}

std::string FormatTime(time_t t, const char* fmt) {
  struct tm tm;
  localtime_r(&t, &tm);
  char ts[32];
  strftime(ts, sizeof(ts), fmt, &tm);
  return ts;
}

std::string Timestamp() { return FormatTime(time(nullptr), "%Y-%m-%d %H:%M:%S "); }

// Appends what is left of a line to the unwritten bytes (a line's tail
// always, so the file never keeps half a line; whole lines within
// kLogHoldBytes). REQUIRES: g_mu held.
void HoldUnwritten(std::string_view rest, bool whole_line, int err) {
  if (g_unwritten.empty() && g_unwritten_lines == 0) {
    g_unwritten_errno = err;
    g_unwritten_since = time(nullptr);
  }
  if (!whole_line || g_unwritten.size() + rest.size() <= kLogHoldBytes) {
    g_unwritten.append(rest);
    g_unwritten_lines++;
  } else {
    g_unwritten_dropped++;
  }
}

// Writes all of `data` to the file; returns the bytes written, and sets
// *err on a failure. REQUIRES: g_mu held, g_fd >= 0.
size_t WriteAll(std::string_view data, int* err) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(g_fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *err = n < 0 ? errno : EIO;
      break;
    }
    done += static_cast<size_t>(n);
  }
  g_size += done;
  return done;
}

// Writes the unwritten bytes, then (if any line was dropped, or any were
// held at all) a line saying so. Returns true once nothing is left held.
// REQUIRES: g_mu held, g_fd >= 0.
bool FlushUnwritten() {
  if (g_unwritten.empty() && g_unwritten_lines == 0) return true;
  int err = 0;
  const size_t done = WriteAll(g_unwritten, &err);
  g_unwritten.erase(0, done);
  if (!g_unwritten.empty()) return false;
  std::string note = Timestamp() + "clonefs: warning: the log file could not be written from " +
                     FormatTime(g_unwritten_since, "%Y-%m-%d %H:%M:%S") + " (" +
                     std::strerror(g_unwritten_errno) + "): the " +
                     std::to_string(g_unwritten_lines) + " messages before this one were held " +
                     "in memory and written late";
  if (g_unwritten_dropped > 0) {
    note += ", and " + std::to_string(g_unwritten_dropped) + " more were dropped (more than " +
            std::to_string(kLogHoldBytes) + " bytes held)";
  }
  note += "\n";
  g_unwritten_lines = 0;
  g_unwritten_dropped = 0;
  if (WriteAll(note, &err) != note.size()) {
    ReportFileErrorOnce("write", err);
  }
  return true;
}

// REQUIRES: g_mu held, g_fd >= 0.
void WriteFileLine(const std::string& line) {
  if (!FlushUnwritten()) {
    HoldUnwritten(line, /*whole_line=*/true, g_unwritten_errno);
    return;
  }
  if (g_size > 0 && g_size + line.size() > g_max) {
    Rotate();
    if (g_fd < 0) return;
  }
  int err = 0;
  const size_t done = WriteAll(line, &err);
  if (done < line.size()) {
    ReportFileErrorOnce("write", err);
    HoldUnwritten(std::string_view(line).substr(done), /*whole_line=*/done == 0, err);
  }
}

// REQUIRES: g_mu held.
void SetSyslog(const std::string& ident) {
  if (g_syslog_open) closelog();
  g_syslog_open = false;
  g_ident = ident;
  if (!g_ident.empty()) {
    openlog(g_ident.c_str(), LOG_PID, LOG_DAEMON);
    g_syslog_open = true;
  }
}

}  // namespace

bool ParseLogLevel(std::string_view s, LogLevel* out) {
  struct { const char* name; LogLevel l; } table[] = {
      {"error", LogLevel::kError}, {"warning", LogLevel::kWarning},
      {"warn", LogLevel::kWarning}, {"info", LogLevel::kInfo}, {"debug", LogLevel::kDebug}};
  for (auto& e : table) {
    if (s.size() == std::strlen(e.name) && strncasecmp(s.data(), e.name, s.size()) == 0) {
      *out = e.l;
      return true;
    }
  }
  return false;
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

void ConfigureLog(const LogSinks& sinks) {
  std::lock_guard<std::mutex> l(g_mu);
  CloseFile();
  SetSyslog(sinks.syslog_ident);
  g_sinks = sinks;
  g_stderr_is_journal = sinks.to_stderr && StderrIsJournal();
  if (!sinks.hold_for_file) {
    g_held.clear();
    g_held_bytes = 0;
    g_held_dropped = 0;
    g_unwritten.clear();
    g_unwritten_lines = 0;
    g_unwritten_dropped = 0;
  }
}

Status OpenLogFile(const std::string& path, uint64_t max_bytes) {
  if (max_bytes == 0) return Status::InvalidArgument("log file cap must be positive");
  int fd = OpenAppend(path);
  if (fd < 0) return Status::FromErrno(errno, "open log file " + path);
  struct stat st;
  const uint64_t size = fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  std::lock_guard<std::mutex> l(g_mu);
  CloseFile();
  g_fd = fd;
  g_path = path;
  g_max = max_bytes;
  g_size = size;
  g_file_error_reported = false;
  FlushUnwritten();
  for (const std::string& line : g_held) {
    if (g_fd >= 0) WriteFileLine(line);
  }
  if (g_held_dropped > 0 && g_fd >= 0) {
    WriteFileLine(Timestamp() + "clonefs: warning: " + std::to_string(g_held_dropped) +
                  " earlier messages were dropped (more than " +
                  std::to_string(kLogHoldBytes) + " bytes before the log file was open)\n");
  }
  g_held.clear();
  g_held_bytes = 0;
  g_held_dropped = 0;
  return Status::OK();
}

std::string LogFileTrouble() {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_unwritten.empty() && g_unwritten_lines == 0) return "";
  if (g_fd >= 0 && FlushUnwritten()) return "";
  std::string s = std::string("cannot be written since ") +
                  FormatTime(g_unwritten_since, "%Y-%m-%d %H:%M:%S") + " (" +
                  std::strerror(g_unwritten_errno) + "); " + std::to_string(g_unwritten_lines) +
                  " messages held in memory until it can";
  if (g_unwritten_dropped > 0) s += ", " + std::to_string(g_unwritten_dropped) + " dropped";
  return s;
}

Status ReopenLogFile() {
  std::string path;
  uint64_t max;
  {
    std::lock_guard<std::mutex> l(g_mu);
    if (g_fd < 0 && g_path.empty()) return Status::OK();
    path = g_path;
    max = g_max;
  }
  return OpenLogFile(path, max);
}

std::string LogFilePath() {
  std::lock_guard<std::mutex> l(g_mu);
  return g_path;
}

bool SyslogAvailable() {
  struct stat st;
  return stat("/dev/log", &st) == 0 && S_ISSOCK(st.st_mode);
}

void SetLogToStderr() { ConfigureLog(LogSinks{/*to_stderr=*/true, "", false}); }

void SetLogToSyslog(const char* ident) { ConfigureLog(LogSinks{false, ident, false}); }

Status SetLogToFile(const std::string& path, uint64_t max_bytes) {
  {
    // Probe first: a file that cannot be opened leaves the sinks alone.
    int fd = OpenAppend(path);
    if (fd < 0) return Status::FromErrno(errno, "open log file " + path);
    close(fd);
  }
  ConfigureLog(LogSinks{});
  return OpenLogFile(path, max_bytes);
}

void Log(LogLevel level, const char* fmt, ...) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed)) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);

  std::lock_guard<std::mutex> l(g_mu);
  if (g_sinks.to_stderr) {
    if (g_stderr_is_journal) {
      // sd-daemon(3) priority prefix: journald files the line at that level.
      fprintf(stderr, "<%d>clonefs: %s: %s\n", SyslogPriority(level), LevelName(level), msg);
    } else {
      fprintf(stderr, "clonefs: %s: %s\n", LevelName(level), msg);
    }
  }
  if (g_syslog_open) syslog(SyslogPriority(level), "%s", msg);
  if (g_fd < 0 && !g_sinks.hold_for_file) return;
  std::string line = Timestamp() + "clonefs: " + LevelName(level) + ": " + msg + "\n";
  if (g_fd >= 0) {
    WriteFileLine(line);
  } else if (g_held_bytes + line.size() <= kLogHoldBytes) {
    g_held_bytes += line.size();
    g_held.push_back(std::move(line));
  } else {
    g_held_dropped++;
  }
}

}  // namespace clonefs
