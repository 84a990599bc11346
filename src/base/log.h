// Minimal leveled logging for the daemon and the libraries.
//
// SINKS. A message goes to every configured sink: stderr, syslog, and a
// size-capped log file. ConfigureLog picks stderr/syslog and whether to hold
// messages until a file is opened; OpenLogFile adds the file. The one-sink
// helpers (SetLogToStderr, SetLogToSyslog, SetLogToFile) remain for simple
// callers. Libraries log only noteworthy events (mode changes, copy
// failures, completion); never on the I/O hot path.
//
// THE FILE. Lines are "YYYY-MM-DD HH:MM:SS clonefs: LEVEL: message", each
// written with one append. When a line would take the file past its cap, the
// file is renamed to PATH.1 (replacing an older one) and a new PATH is
// started, so the log never holds more than about twice the cap. If the file
// cannot be reopened after rotation, the message still reaches the other
// sinks; the failure is reported once on stderr.
//
// UNWRITTEN. A write the open file refuses (its file system full, an I/O
// error) loses nothing: what it could not take (a cut line's tail, then
// whole lines, at most kLogHoldBytes; beyond that they are counted) is held
// in memory and written, in order, before the next line once the file takes
// writes again, followed by a warning line that says when the trouble
// started and how many messages were written late (or dropped).
// LogFileTrouble says so meanwhile (the daemon's status shows it: with no
// syslog socket the file may be the only sink).
//
// HOLDING. With LogSinks::hold_for_file, messages (formatted, at most
// kLogHoldBytes; beyond that they are counted, and the count is written)
// are kept in memory until OpenLogFile, which writes them first, so a
// daemon loses nothing it logged before it knew where its log goes.
// ConfigureLog without hold_for_file discards what is held.
//
// THREAD SAFETY: all functions are safe to call from any thread; one mutex
// serialises the sinks (and rotation) so lines never interleave.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "base/status.h"

namespace clonefs {

enum class LogLevel : int { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };

// Parses "error", "warning"/"warn", "info", "debug" (case-insensitive).
// Returns false (and leaves *out alone) on anything else.
bool ParseLogLevel(std::string_view s, LogLevel* out);

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// Default cap of a log file: 4 MiB.
inline constexpr uint64_t kDefaultLogFileMaxBytes = 4ull << 20;
// Most bytes of messages held for a file not yet open: 1 MiB.
inline constexpr uint64_t kLogHoldBytes = 1ull << 20;

struct LogSinks {
  bool to_stderr = false;
  // Non-empty: also syslog(3) under this ident (LOG_DAEMON, with the pid).
  std::string syslog_ident;
  // Keep messages in memory until OpenLogFile (see HOLDING above).
  bool hold_for_file = false;
};

// Replaces every sink (closes an open file). Default before any call:
// stderr only. When stderr is the journal's stream (systemd's JOURNAL_STREAM
// names fd 2's device and inode), stderr lines carry the syslog priority
// prefix "<N>" of sd-daemon(3), so journald files each at its level.
void ConfigureLog(const LogSinks& sinks);

// Adds the file sink at `path` (appending; created 0644), replacing an open
// one, and writes the held messages to it. `max_bytes` > 0. Errors: the
// open's (the other sinks stay; held messages stay held).
Status OpenLogFile(const std::string& path, uint64_t max_bytes = kDefaultLogFileMaxBytes);

// Closes and reopens the file sink at its path (after an outside rotation;
// the daemon does this on SIGHUP). OK if there is no file sink.
Status ReopenLogFile();

// The open log file's path, or "" if none.
std::string LogFilePath();

// "" if the log file has taken every line; otherwise what is wrong
// ("cannot be written since T (No space left on device); 33 messages held in
// memory until it can", see UNWRITTEN). Tries to write the held lines first.
std::string LogFileTrouble();

// True if syslog can deliver: /dev/log is a socket (a syslog daemon or the
// journal listens there). glibc drops messages silently otherwise.
bool SyslogAvailable();

// One-sink helpers. SetLogToFile returns a non-OK Status if the file cannot
// be opened (the previous sinks then stay in place).
void SetLogToStderr();
void SetLogToSyslog(const char* ident);
Status SetLogToFile(const std::string& path, uint64_t max_bytes = kDefaultLogFileMaxBytes);

// printf-style logging; drops messages above the current level.
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define CLONEFS_LOG_ERROR(...) ::clonefs::Log(::clonefs::LogLevel::kError, __VA_ARGS__)
#define CLONEFS_LOG_WARN(...) ::clonefs::Log(::clonefs::LogLevel::kWarning, __VA_ARGS__)
#define CLONEFS_LOG_INFO(...) ::clonefs::Log(::clonefs::LogLevel::kInfo, __VA_ARGS__)
#define CLONEFS_LOG_DEBUG(...) ::clonefs::Log(::clonefs::LogLevel::kDebug, __VA_ARGS__)

}  // namespace clonefs
