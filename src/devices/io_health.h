// What status says about the devices' health besides the source's link
// (source_health.h): whether dest takes new data, and the last error the
// clone met. Filled in by the engine's HealthTracker (copier/health_tracker.h).
//
// THREAD SAFETY: value types and pure functions.
#pragma once

#include <cstdint>
#include <string>

namespace clonefs {

enum class DestCondition { kOk = 0, kFull = 1, kIoError = 2 };
// "ok", "full", "I/O error".
const char* DestConditionName(DestCondition c);

enum class ErrorKind { kNone = 0, kDestFull, kDestIo, kSource, kMetadata };
// "none", "dest-full", "dest-io", "source", "metadata".
const char* ErrorKindName(ErrorKind k);
// The inverse of ErrorKindName; false for anything else.
bool ParseErrorKind(const std::string& s, ErrorKind* out);

struct LastError {
  ErrorKind kind = ErrorKind::kNone;  // kNone: no error recorded
  // "copy write to dest at offset 4194304: No space left on device".
  std::string what;
  int err = 0;               // errno (ENOSPC, EIO, ...); 0 if none is known
  uint64_t unix_ns = 0;      // when, wall clock (ns since the Unix epoch)
  uint64_t count = 0;        // errors of this kind since start
  bool empty() const { return kind == ErrorKind::kNone; }
  bool operator==(const LastError&) const = default;
};

}  // namespace clonefs
