#include "base/log.h"

#include <syslog.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <ctime>
#include <mutex>
#include <strings.h>

namespace clonefs {
namespace {

enum class Sink { kStderr, kSyslog, kFile };

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mu;                 // guards g_sink and g_file
Sink g_sink = Sink::kStderr;     // GUARDED_BY(g_mu)
FILE* g_file = nullptr;          // GUARDED_BY(g_mu)

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

void SetLogToStderr() {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_file) fclose(g_file);
  g_file = nullptr;
  g_sink = Sink::kStderr;
}

void SetLogToSyslog(const char* ident) {
  std::lock_guard<std::mutex> l(g_mu);
  if (g_file) fclose(g_file);
  g_file = nullptr;
  openlog(ident, LOG_PID, LOG_DAEMON);
  g_sink = Sink::kSyslog;
}

Status SetLogToFile(const std::string& path) {
  FILE* f = fopen(path.c_str(), "ae");
  if (!f) return Status::FromErrno(errno, "open log file " + path);
  setvbuf(f, nullptr, _IOLBF, 0);
  std::lock_guard<std::mutex> l(g_mu);
  if (g_file) fclose(g_file);
  g_file = f;
  g_sink = Sink::kFile;
  return Status::OK();
}

void Log(LogLevel level, const char* fmt, ...) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed)) return;
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);

  std::lock_guard<std::mutex> l(g_mu);
  if (g_sink == Sink::kSyslog) {
    syslog(SyslogPriority(level), "%s", msg);
    return;
  }
  FILE* out = g_sink == Sink::kFile && g_file ? g_file : stderr;
  char ts[32] = "";
  if (g_sink == Sink::kFile) {
    time_t now = time(nullptr);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S ", &tm);
  }
  fprintf(out, "%sclonefs: %s: %s\n", ts, LevelName(level), msg);
}

}  // namespace clonefs
