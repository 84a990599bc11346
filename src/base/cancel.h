// CancelToken: lets a thread that waits for slow I/O (a remote or stalled
// source) give up when the request it serves is abandoned.
//
// The FUSE layer makes a token current for the duration of one request
// (ScopedCancelToken) and cancels it when the kernel sends an INTERRUPT for
// that request (the reader was killed or got a signal). Code that waits for
// the source (a remote source's reads, a timed file read) polls
// CurrentCancelToken() while it waits and answers IoError with EINTR once it
// is cancelled; code that does not wait ignores it. Passing the token
// through the Engine and Device signatures would touch every call between
// the FUSE handler and the source for the benefit of the one place that
// waits, so it travels with the thread instead, like errno.
//
// THREAD SAFETY: Cancel() may be called from any thread (libfuse's interrupt
// callback runs on another worker); cancelled() is lock-free. The current
// token is per thread; ScopedCancelToken restores the previous one, so scopes
// nest.
#pragma once

#include <atomic>

namespace clonefs {

class CancelToken {
 public:
  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> cancelled_{false};
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
