// HealthTracker: what the engine knows about the health of the destination,
// and the last device or metadata error it met, for status and the log
// (SPEC §7a: a full dest shows as the last error, the log says it).
//
// DEST CONDITION
//   kOk -> kFull      a dest write, punch or flush failed with ENOSPC or
//                     EDQUOT (background copies, write-triggered copies and
//                     users' writes all report here);
//   kOk -> kIoError   it failed with any other device error;
//   kFull <-> kIoError as the errors change;
//   back to kOk       on evidence that dest takes new data again: a copy
//                     into unhydrated regions succeeded (DestHydrated), or,
//                     once nothing is left to hydrate, any successful write
//                     (DestWrote with `complete`) -- in both cases only an
//                     operation that started after the last dest error
//                     (DestErrors() taken at its start is still current):
//                     copies in flight when dest filled up may still land in
//                     space they had, and a user's overwrite of hydrated
//                     data may succeed on a full file system; counting them
//                     would make the condition flap.
//   Each change is logged once (warning when it leaves kOk, info when it
//   returns, with the number of errors meanwhile), never once per region.
//
// LAST ERROR: the most recent error, with what failed (a short text), its
// errno, its wall-clock time and how many errors of the same kind were
// recorded since start. Errors that are not the devices' (a request outside
// the image, the read-only or fail mode refusing, shutdown, a reader's
// interrupt) are not recorded.
//
// THREAD SAFETY: every method may be called from any thread. mu_ guards the
// state; DestWrote/DestHydrated read an atomic first and take mu_ only while
// the condition is not kOk, so the I/O paths pay one relaxed load. Log lines
// are written after mu_ is released.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/status.h"
#include "devices/io_health.h"

namespace clonefs {

class HealthTracker {
 public:
  // `dest_name` names dest in log lines.
  explicit HealthTracker(std::string dest_name) : dest_name_(std::move(dest_name)) {}
  HealthTracker(const HealthTracker&) = delete;
  HealthTracker& operator=(const HealthTracker&) = delete;

  // A dest operation `op` ("copy write to dest", "write to dest", "dest
  // flush", ...) at `off` failed with `s`: recorded as the last error, and
  // the dest condition becomes kFull or kIoError (logged if it changed).
  // Ignored for an OK or non-device status.
  void DestFailed(const char* op, uint64_t off, const Status& s);
  // Dest errors recorded so far; an operation takes it when it starts.
  uint64_t DestErrors() const { return dest_errors_.load(std::memory_order_acquire); }
  // A copy into unhydrated regions reached dest; `errors_at_start`: what
  // DestErrors() said when it began. The condition returns to kOk (logged)
  // if no dest error was recorded since.
  void DestHydrated(uint64_t errors_at_start);
  // A user's write or zero reached dest. `complete`: no region is left to
  // hydrate (then it is the only evidence there will be).
  void DestWrote(bool complete, uint64_t errors_at_start) {
    if (complete) DestHydrated(errors_at_start);
  }
  // A source read `op` at `off` failed with `s` (recorded, not logged here:
  // the reader or the copier logs it).
  void SourceFailed(const char* op, uint64_t off, const Status& s);
  // A commit failed (`what`: the step) with `s`.
  void MetadataFailed(const std::string& what, const Status& s);

  DestCondition dest() const {
    return static_cast<DestCondition>(dest_.load(std::memory_order_relaxed));
  }
  LastError last_error() const;

  // Whether `s` is an error of a device or of the metadata store, worth
  // recording (not a refusal by the request's or the clone's own rules).
  static bool Recordable(const Status& s);

 private:
  void Record(ErrorKind kind, std::string what, int err);

  const std::string dest_name_;
  std::atomic<int> dest_{0};  // DestCondition; written under mu_
  std::atomic<uint64_t> dest_errors_{0};  // written under mu_
  mutable std::mutex mu_;
  LastError last_;                    // GUARDED_BY(mu_)
  uint64_t counts_[5] = {};           // GUARDED_BY(mu_); by ErrorKind
  uint64_t errors_at_change_ = 0;     // GUARDED_BY(mu_); dest errors when it left kOk
};

}  // namespace clonefs
