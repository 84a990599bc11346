// IoErrorLog: warnings for I/O errors that reach a user request (a read,
// write or zero that failed in the source or the destination), rate-limited
// so that a failing disk cannot flood the log.
//
// Per kind of request (read, write, zero): at most one line per interval
// (1 s), saying which request failed (offset, length), the errno and the
// error; the errors of that kind not logged since the previous line are
// counted and the count is given on the next line. Errors that are not the
// devices' -- a request outside the image, the clone's read-only or fail
// mode (logged when the mode changes), shutdown -- are not logged here.
//
// THREAD SAFETY: Report may be called from any thread; mu_ guards the
// per-kind state, and the line is written after mu_ is released.
#pragma once

#include <cstdint>
#include <mutex>

#include "base/clock.h"
#include "base/status.h"

namespace clonefs {

enum class IoKind { kRead = 0, kWrite = 1, kZero = 2 };

class IoErrorLog {
 public:
  static constexpr uint64_t kIntervalNanos = 1'000'000'000;

  // Borrows `clock`; it must outlive this.
  explicit IoErrorLog(Clock* clock) : clock_(clock) {}

  // Logs at warning level (or counts as suppressed) that a `kind` request of
  // `len` bytes at `off` failed with `s`. Does nothing for OK or for a status
  // that Loggable() rejects.
  void Report(IoKind kind, uint64_t off, uint64_t len, const Status& s);

  // Whether `s` is an error of the devices (worth a warning), as opposed to
  // the request's or the clone's mode's.
  static bool Loggable(const Status& s);

 private:
  struct PerKind {
    bool logged = false;      // a line was written at last_ns
    uint64_t last_ns = 0;
    uint64_t suppressed = 0;  // errors not logged since that line
  };

  Clock* const clock_;
  std::mutex mu_;
  PerKind kinds_[3];  // GUARDED_BY(mu_); indexed by IoKind
};

}  // namespace clonefs
