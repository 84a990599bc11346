// The client's end of the control channel: one request, one response.
//
// THREAD SAFETY: thread-safe (no shared state).
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "control/protocol.h"

namespace clonefs::control {

// Default time allowed for one request; a status request commits, which may
// wait for a dest fdatasync. Default: 60 s.
inline constexpr int kDefaultRequestTimeoutMs = 60000;

// Connects to `socket_path`, sends `words` as one request line and returns
// the daemon's response: ok with the payload, or !ok with the daemon's error
// text (e.g. a refused message). Errors (transport only): NotFound /
// Permission / IoError from connecting, Aborted on timeout, InvalidArgument
// for a bad request or a malformed/truncated response.
Result<Response> CallControl(const std::string& socket_path, const std::vector<std::string>& words,
                             int timeout_ms = kDefaultRequestTimeoutMs);

}  // namespace clonefs::control
