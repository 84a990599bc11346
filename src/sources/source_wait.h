// SourceWait: how a caller of a remote or timed source waits for its answer
// -- up to the source timeout, and no longer than the reader it serves
// wants (the thread's CancelToken, base/cancel.h) -- and the errors it
// answers when it stops waiting. Shared by nbd_device and timed_device so
// both say the same thing.
//
// THREAD SAFETY: WaitForDone is called with the caller's lock on the mutex
// that guards `done`; the error builders are pure.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/cancel.h"
#include "base/clock.h"
#include "base/status.h"

namespace clonefs {

// How often a waiter looks at its CancelToken: 50 ms.
inline constexpr uint64_t kCancelPollNs = 50'000'000;

enum class WaitEnd { kDone, kTimedOut, kCancelled };

// Waits on `cv` until done() is true (kDone), the monotonic clock
// (Clock::Real) reaches `deadline_ns` (kTimedOut) or `token` is cancelled
// (kCancelled), checking the token at least every kCancelPollNs. done() is
// checked first, so an answer that arrived in time always wins.
// REQUIRES: `lock` holds the mutex that guards what done() reads and that
// the notifier holds when it changes it.
template <typename Done>
WaitEnd WaitForDone(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                    uint64_t deadline_ns, const CancelToken* token, Done done) {
  for (;;) {
    if (done()) return WaitEnd::kDone;
    if (token != nullptr && token->cancelled()) return WaitEnd::kCancelled;
    uint64_t now = Clock::Real()->NowNanos();
    if (now >= deadline_ns) return WaitEnd::kTimedOut;
    cv.wait_for(lock, std::chrono::nanoseconds(std::min(deadline_ns - now, kCancelPollNs)));
  }
}

// "30 s", "1500 ms": a timeout for messages.
std::string FormatTimeout(uint64_t timeout_ns);

// IoError(ETIMEDOUT): "<what> from <source> timed out after <timeout> (the
// source timeout)". `what` is e.g. "read of 4096 bytes at 0".
Status SourceTimedOut(const std::string& what, const std::string& source, uint64_t timeout_ns);

// IoError(EINTR): "<what> from <source>: read interrupted".
Status SourceInterrupted(const std::string& what, const std::string& source);

// "read of <len> bytes at <off>".
std::string ReadWhat(uint64_t off, uint64_t len);

}  // namespace clonefs
