// CancelToken: lets a thread that waits for slow I/O (a remote or stalled
// source) give up when the request it serves is abandoned.
//
// The FUSE layer makes a token current for the duration of one request
// (ScopedCancelToken) and calls Interrupt() when the kernel sends an
// INTERRUPT for that request. The kernel sends one for any signal the
// requester gets, also one it handles and returns from (SIGUSR1, SIGALRM,
// SIGWINCH, SIGCHLD with a handler); a disk's read or write is not cut short
// by those, so an interrupt cancels only once the abandon check says the
// requester is going away (it was killed). Code that waits for
// the source (a remote source's reads, a timed file read) polls
// CurrentCancelToken() while it waits and answers IoError with EINTR once it
// is cancelled; code that does not wait ignores it. Passing the token
// through the Engine and Device signatures would touch every call between
// the FUSE handler and the source for the benefit of the one place that
// waits, so it travels with the thread instead, like errno.
//
// THREAD SAFETY: Cancel() and Interrupt() may be called from any thread
// (libfuse's interrupt callback runs on another worker); cancelled() is
// lock-free until an interrupt, then calls the abandon check, which must be
// safe to call from any thread. The current
// token is per thread; ScopedCancelToken restores the previous one, so scopes
// nest.
#pragma once

#include <atomic>
#include <functional>
#include <utility>

namespace clonefs {

class CancelToken {
 public:
  CancelToken() = default;
  // `abandoned` says whether the requester of an interrupted request is
  // going away; it is called by cancelled() after Interrupt(), from the
  // waiting thread, at most once per poll, until it returns true.
  explicit CancelToken(std::function<bool()> abandoned) : abandoned_(std::move(abandoned)) {}

  // Cancels, whatever the abandon check would say.
  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  // The requester got a signal: cancels if there is no abandon check or it
  // says so, now or at a later cancelled().
  void Interrupt() { interrupted_.store(true, std::memory_order_release); }
  bool cancelled() const {
    if (cancelled_.load(std::memory_order_acquire)) return true;
    if (!interrupted_.load(std::memory_order_acquire)) return false;
    if (abandoned_ && !abandoned_()) return false;
    cancelled_.store(true, std::memory_order_release);
    return true;
  }

 private:
  const std::function<bool()> abandoned_;
  std::atomic<bool> interrupted_{false};
  mutable std::atomic<bool> cancelled_{false};
};

// The calling thread's current token, or nullptr (never cancelled).
CancelToken* CurrentCancelToken();

// True if the calling thread has a current token and it was cancelled.
inline bool CurrentRequestCancelled() {
  CancelToken* t = CurrentCancelToken();
  return t != nullptr && t->cancelled();
}

// Makes `token` current on this thread for the scope's lifetime.
class ScopedCancelToken {
 public:
  explicit ScopedCancelToken(CancelToken* token);
  ~ScopedCancelToken();
  ScopedCancelToken(const ScopedCancelToken&) = delete;
  ScopedCancelToken& operator=(const ScopedCancelToken&) = delete;

 private:
  CancelToken* previous_;
};

}  // namespace clonefs
