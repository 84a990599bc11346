// NbdSourceState: what an NbdDevice and its connections share (internal to
// nbd_device): how to reach the server, the source timeout, a sticky fatal
// error (a reconnect found another size), and the health counters.
//
// THREAD SAFETY: thread-safe. The const members are set before any
// connection starts; counters are atomics; last_error and fatal take mu_.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/clock.h"  // WallNowNanos
#include "base/status.h"

namespace clonefs {

class NbdConnection;
struct NbdPiece;

struct NbdTarget {
  std::string uri;                // nbd_aio_connect_uri, if argv is empty
  std::vector<std::string> argv;  // an nbdkit to spawn otherwise (nbdkit_child.h)
  std::string password;           // for that nbdkit, on kNbdkitPasswordFd ("" = none)
  bool spawned() const { return !argv.empty(); }
};

class NbdSourceState {
 public:
  NbdSourceState(std::string display, NbdTarget target, uint64_t timeout_ns)
      : display(std::move(display)), target(std::move(target)), timeout_ns(timeout_ns) {}

  const std::string display;
  const NbdTarget target;
  const uint64_t timeout_ns;

  // Sticky: once set, every request fails with it. The first call wins.
  void SetFatal(Status s);
  bool has_fatal() const { return has_fatal_.load(std::memory_order_acquire); }
  Status fatal() const;
  // Wall-clock time of the SetFatal that won; 0 while there is none.
  uint64_t fatal_unix_ns() const;

  // Checks the source's identity through `conn` just after it reconnected
  // (nbd_device.h, IDENTITY): reads only pieces tagged `verify_gen`, sees
  // the source as `size` bytes; OK, Mismatch naming what differs, or
  // another error if it could not tell. Empty until the device has an
  // identity check (reconnects are then not checked).
  using Verifier = std::function<Status(NbdConnection* conn, uint64_t verify_gen, uint64_t size)>;
  void SetVerifier(Verifier v);
  Verifier verifier() const;

  // Hands a piece that waits on a connection that is down to a connection
  // that is up (nbd_device.h, CONNECTIONS); returns it if none can take it.
  // Called by the down connection's I/O thread, with none of its locks held.
  // Empty until the device exists, and again once it stops its connections.
  using Rehome = std::function<std::unique_ptr<NbdPiece>(std::unique_ptr<NbdPiece>)>;
  void SetRehome(Rehome r);
  Rehome rehome() const;

  // Counts an error and keeps its message as the last one.
  void RecordError(const std::string& msg);
  void LastError(std::string* msg, uint64_t* unix_ns) const;

  // Most pieces a connection keeps in flight; set by the opener once the
  // request size is known (see nbd_device.cc).
  std::atomic<size_t> max_inflight{64};

  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> reconnects{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> bytes_read{0};

 private:
  mutable std::mutex mu_;
  Status fatal_;  // GUARDED_BY(mu_)
  uint64_t fatal_unix_ns_ = 0;  // GUARDED_BY(mu_)
  Verifier verifier_;  // GUARDED_BY(mu_)
  Rehome rehome_;      // GUARDED_BY(mu_)
  std::atomic<bool> has_fatal_{false};
  std::string last_error_;           // GUARDED_BY(mu_)
  uint64_t last_error_unix_ns_ = 0;  // GUARDED_BY(mu_)
};

}  // namespace clonefs
