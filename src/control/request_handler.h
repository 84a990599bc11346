// The daemon's side of each control request, without the socket: turns a
// request (already split into words) into a Response. The ControlServer calls
// it once per connection.
//
// Requests (docs/control.md):
//   ping                   "clonefs-control 1"
//   status                 commit, then the human-readable status
//   status-json            commit, then the JSON document
//   status-dm              commit, then dm-clone's status line
//   stats-json             the JSON document without committing (cheap;
//                          for `clonefs wait` polling)
//   message ARGS...        dm-clone message (message.h), validated again here;
//                          the changed knob is stored with the clone
//
// THREAD SAFETY: HandleRequest is safe to call from any thread (Engine
// methods are thread-safe); the server calls it from its one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "control/protocol.h"
#include "control/status_report.h"

namespace clonefs {
class Engine;
namespace clone {
class SettingsStore;
}
}  // namespace clonefs

namespace clonefs::control {

inline constexpr char kProtocolBanner[] = "clonefs-control 1";

struct RequestContext {
  Engine* engine = nullptr;  // not owned; never null
  const ControlInfo* info = nullptr;
  uint64_t pid = 0;
  uint64_t uptime_s = 0;
  uint32_t peer_uid = 0;  // for the log line of a message
  // The clone's stored settings: shown in status, updated by messages.
  // nullptr: none (messages then change the running clone only).
  clone::SettingsStore* settings = nullptr;
  // The FUSE layer's part of the status. Empty: none.
  std::function<FuseReport()> fuse;
};

Response HandleRequest(const RequestContext& ctx, const std::vector<std::string>& words);

}  // namespace clonefs::control
