// SourceBackoff: the background copier's view of the source as a whole
// (SPEC §9, Reconnect), so that a source that is down or failing costs a few
// failed reads, not one per region.
//
// STATES
//   kRunning  copying as usual. Isolated failures are the per-region
//             RetryBackoff's business.
//   kDown     the source says it cannot serve (SourceHealth not connected):
//             no reads at all; the copier re-checks the source's health
//             about every 50 ms and resumes at once when it is up.
//   kFailing  the source says it is up, but kFailuresToBackOff reads failed
//             in a row with no success in between (e.g. a server answering
//             EIO to everything): one probe read at a time, each at least
//             `delay` after the previous one failed; the delay starts at
//             kInitialNanos and doubles per failed probe up to kCapNanos.
//
//   kRunning --RecordFailure x kFailuresToBackOff--> kFailing
//   kFailing --RecordSuccess--> kRunning    (any read succeeding, probe or not)
//   kFailing --RecordProbeFailure--> kFailing, delay doubled
//   kRunning, kFailing --RecordDown--> kDown --RecordUp--> kRunning
//
// Pure bookkeeping over caller-supplied time (the Clock seam).
//
// THREAD SAFETY: not thread-safe; the copier guards it with its mutex.
#pragma once

#include <cstdint>
#include <string>

namespace clonefs {

class SourceBackoff {
 public:
  enum class State { kRunning, kDown, kFailing };
  static constexpr uint64_t kInitialNanos = 100'000'000;  // 100 ms
  static constexpr uint64_t kCapNanos = 1'000'000'000;    // 1 s
  static constexpr uint32_t kFailuresToBackOff = 8;

  // Each Record* returns true if it changed the state (the copier logs once
  // per change, never per region). `why` is the error or health that caused
  // the change; it is kept as reason() while the state lasts.

  // A source read succeeded. Ends kFailing; resets the run of failures.
  bool RecordSuccess(uint64_t now_ns);
  // A read failed while the source says it is up (not a probe, not a retry
  // of a region that failed before). Enters kFailing after
  // kFailuresToBackOff of them in a row.
  bool RecordFailure(uint64_t now_ns, const std::string& why);
  // The probe of kFailing failed: the next one waits twice as long (capped).
  void RecordProbeFailure(uint64_t now_ns);
  // The source says it is down. Enters kDown (from any state).
  bool RecordDown(uint64_t now_ns, const std::string& why);
  // The source says it is up again. Leaves kDown for kRunning.
  bool RecordUp(uint64_t now_ns);

  // kFailing only: whether a probe may start at now_ns (none in flight, and
  // the delay since the last failure has passed).
  bool ProbeDue(uint64_t now_ns) const;
  void SetProbeInFlight(bool in_flight) { probe_in_flight_ = in_flight; }
  bool probe_in_flight() const { return probe_in_flight_; }
  // kFailing: when the next probe may start (0 if at once).
  uint64_t next_probe_ns() const { return next_probe_ns_; }

  State state() const { return state_; }
  // When the current state began (caller's clock); 0 in kRunning.
  uint64_t since_ns() const { return since_ns_; }
  // Why the copier paused; empty in kRunning.
  const std::string& reason() const { return reason_; }
  // kFailing: the current probe delay.
  uint64_t delay_ns() const { return delay_ns_; }
  uint32_t consecutive_failures() const { return consecutive_; }

 private:
  void Enter(State s, uint64_t now_ns, const std::string& why);

  State state_ = State::kRunning;
  uint64_t since_ns_ = 0;
  std::string reason_;
  uint32_t consecutive_ = 0;
  uint64_t delay_ns_ = 0;
  uint64_t next_probe_ns_ = 0;
  bool probe_in_flight_ = false;
};

// "running", "source down", "source failing".
const char* SourceBackoffStateName(SourceBackoff::State s);

}  // namespace clonefs
