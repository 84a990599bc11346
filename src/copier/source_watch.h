// SourceWatch: is the clone's source still the one it was opened with?
// (SPEC §7a: a source that shrinks, grows or changes under a live clone.)
//
// Data read from a source that changed cannot be trusted, and a source that
// shrank has no data where the image does. So once a change is seen -- a
// Device::CheckUnchanged answer of Mismatch (size, or mtime where it is
// meaningful) -- the state is sticky for the life of the engine: nothing more
// is hydrated (the copier stops, hydrations that need the source fail),
// requests that would be answered from the source fail with EIO, and the
// regions already hydrated keep working from dest. The change is logged once,
// at error level, with what to do.
//
// Who checks: the Hydrator after every copy (before anything is marked) and
// after a failed source read; the engine after reading from the source; the
// background copier periodically, also when idle or disabled. A Check that
// fails for another reason (fstat itself failing) is returned but does not
// change the state.
//
// THREAD SAFETY: all methods may be called from any thread (the state is a
// ChangeLatch).
// LIFECYCLE: borrows the source; it must outlive this.
#pragma once

#include <string>

#include "base/status.h"
#include "copier/change_latch.h"
#include "devices/device.h"

namespace clonefs {

class SourceWatch {
 public:
  explicit SourceWatch(Device* source) : source_(source) {}

  // Re-examines the source. OK if unchanged; Refusal() if it changed (now
  // or before); another error if the check itself failed.
  Status Check();
  // For a failed source read: Refusal() if the source changed (the likely
  // cause of a short read), else `read_error` unchanged. A read that timed
  // out or was interrupted (ETIMEDOUT, EINTR) says nothing about a change
  // and the source did not answer it: it is returned as it is, unchecked,
  // so the caller does not wait for the source a second time.
  Status AfterReadError(const Status& read_error);

  bool changed() const { return latch_.set(); }
  // What changed ("<source> shrank from A to B bytes"); empty while unchanged.
  std::string reason() const;
  // Wall-clock time (ns since the Unix epoch) the change was recorded; 0
  // while unchanged.
  uint64_t since_unix_ns() const { return latch_.set_unix_ns(); }
  // The error for anything that needs the source once it changed:
  // IoError(EIO) naming the change and what to do.
  Status Refusal() const;

 private:
  void Record(const Status& change);

  Device* const source_;
  ChangeLatch latch_;
};

}  // namespace clonefs
