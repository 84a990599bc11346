// Minimal leveled logging for the daemon and the libraries.
//
// Messages go to one sink chosen once at startup (stderr by default, or
// syslog, or a file). Libraries log only noteworthy events (mode changes,
// copy failures, completion); never on the I/O hot path.
//
// THREAD SAFETY: all functions are safe to call from any thread. SetLogSink /
// SetLogLevel are meant for startup but are safe at any time.
#pragma once

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

// Sinks. SetLogToFile returns a non-OK Status if the file cannot be opened
// (the previous sink stays in place).
void SetLogToStderr();
void SetLogToSyslog(const char* ident);
Status SetLogToFile(const std::string& path);

// printf-style logging; drops messages above the current level.
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define CLONEFS_LOG_ERROR(...) ::clonefs::Log(::clonefs::LogLevel::kError, __VA_ARGS__)
#define CLONEFS_LOG_WARN(...) ::clonefs::Log(::clonefs::LogLevel::kWarning, __VA_ARGS__)
#define CLONEFS_LOG_INFO(...) ::clonefs::Log(::clonefs::LogLevel::kInfo, __VA_ARGS__)
#define CLONEFS_LOG_DEBUG(...) ::clonefs::Log(::clonefs::LogLevel::kDebug, __VA_ARGS__)

}  // namespace clonefs
