#include "copier/source_backoff.h"

#include <algorithm>

namespace clonefs {

void SourceBackoff::Enter(State s, uint64_t now_ns, const std::string& why) {
  state_ = s;
  since_ns_ = s == State::kRunning ? 0 : now_ns;
  reason_ = s == State::kRunning ? std::string() : why;
  consecutive_ = 0;
  probe_in_flight_ = false;
  delay_ns_ = s == State::kFailing ? kInitialNanos : 0;
  next_probe_ns_ = s == State::kFailing ? now_ns + delay_ns_ : 0;
}

bool SourceBackoff::RecordSuccess(uint64_t now_ns) {
  consecutive_ = 0;
  if (state_ != State::kFailing) return false;
  Enter(State::kRunning, now_ns, {});
  return true;
}

bool SourceBackoff::RecordFailure(uint64_t now_ns, const std::string& why) {
  if (state_ != State::kRunning) return false;
  if (++consecutive_ < kFailuresToBackOff) return false;
  Enter(State::kFailing, now_ns, why);
  return true;
}

void SourceBackoff::RecordProbeFailure(uint64_t now_ns) {
  if (state_ != State::kFailing) return;
  delay_ns_ = std::min(delay_ns_ * 2, kCapNanos);
  next_probe_ns_ = now_ns + delay_ns_;
}

bool SourceBackoff::RecordDown(uint64_t now_ns, const std::string& why) {
  if (state_ == State::kDown) return false;
  Enter(State::kDown, now_ns, why);
  return true;
}

bool SourceBackoff::RecordUp(uint64_t now_ns) {
  if (state_ != State::kDown) return false;
  Enter(State::kRunning, now_ns, {});
  return true;
}

bool SourceBackoff::ProbeDue(uint64_t now_ns) const {
  return state_ == State::kFailing && !probe_in_flight_ && now_ns >= next_probe_ns_;
}

const char* SourceBackoffStateName(SourceBackoff::State s) {
  switch (s) {
    case SourceBackoff::State::kRunning:
      return "running";
    case SourceBackoff::State::kDown:
      return "source down";
    case SourceBackoff::State::kFailing:
      return "source failing";
  }
  return "unknown";
}

}  // namespace clonefs
