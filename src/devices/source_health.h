// SourceHealth: what a source device can say about its reachability, for
// the copier (pause as a whole while the source is down) and for status.
//
// THREAD SAFETY: a value type.
#pragma once

#include <cstdint>
#include <string>

namespace clonefs {

struct SourceHealth {
  enum class State {
    kConnected,     // serving (or, for a file, not known to be stuck)
    kReconnecting,  // the connection dropped; re-establishing it with backoff
    kStalled,       // connected, but a request has waited longer than the
                    // source timeout without an answer
    kChanged,       // the source is not the one the clone was made from (its
                    // size or content fingerprints differ, SPEC §7a): every
                    // request fails from then on, for the life of the device
    kReleased,      // the clone is complete and no longer reads the source:
                    // its connections are closed (Device::Release)
  };
  State state = State::kConnected;
  // Wall-clock time (ns since the Unix epoch) the state was entered; 0 if
  // the source never left kConnected (or, for kChanged, if unknown).
  uint64_t since_unix_ns = 0;
  // kChanged only: what differs ("its size changed from A to B bytes", a
  // fingerprint); empty otherwise.
  std::string change;
  // Wall-clock time the oldest request still waiting for the source's
  // answer was sent (a remote source's piece in flight on a connection that
  // is up, a file source's read in progress); 0 when none waits. Long
  // before the source timeout makes the state kStalled, it says how long
  // the source has been silent.
  uint64_t oldest_request_unix_ns = 0;
  // The most recent error the source returned or the transport saw, with
  // its wall-clock time (0 if none), and how many errors in all.
  std::string last_error;
  uint64_t last_error_unix_ns = 0;
  uint64_t errors = 0;
  // Requests issued again (after a reconnect, or a retried error).
  uint64_t retries = 0;
  // Connections re-established after a drop.
  uint64_t reconnects = 0;
  // Remote sources: requests sent to the server (retries included) and
  // bytes it answered successfully. 0 for local devices.
  uint64_t requests = 0;
  uint64_t bytes_read = 0;
  // The precondition every request carries, which makes the server refuse
  // requests for another version of the source (an http(s) file's
  // "If-Match: ETAG", http_validator.h); empty if none (then a source
  // replaced under the same name is found only by the identity re-checks).
  std::string guard;

  // Serving: kConnected. A changed source is not "down" (nothing comes
  // back): callers that wait for the source to return check for kChanged.
  // A released one is not needed (the clone is complete).
  bool up() const { return state == State::kConnected; }
};

// "connected", "reconnecting", "stalled", "changed", "released".
const char* SourceStateName(SourceHealth::State s);

}  // namespace clonefs
