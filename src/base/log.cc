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

// REQUIRES: g_mu held, g_fd >= 0.
void WriteFileLine(const std::string& line) {
  if (g_size > 0 && g_size + line.size() > g_max) {
    Rotate();
    if (g_fd < 0) return;
  }
  ssize_t n = write(g_fd, line.data(), line.size());
  if (n < 0) {
    ReportFileErrorOnce("write", errno);
    return;
  }
  g_size += static_cast<uint64_t>(n);
}

std::string Timestamp() {
  time_t now = time(nullptr);
  struct tm tm;
  localtime_r(&now, &tm);
  char ts[32];
  strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S ", &tm);
  return ts;
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
