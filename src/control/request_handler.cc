#include "control/request_handler.h"

#include "base/log.h"
#include "clone/settings_store.h"
#include "control/message.h"
#include "control/status_format.h"
#include "engine/engine.h"

namespace clonefs::control {
namespace {

Response Ok(std::string text) { return Response{true, std::move(text)}; }
Response Error(std::string text) { return Response{false, std::move(text)}; }

// What the engine's stats do not hold: the stored settings, the FUSE layer.
StatusReport WithSettings(const RequestContext& ctx, StatusReport r) {
  if (ctx.settings != nullptr) r.settings = ctx.settings->Current();
  if (ctx.fuse) r.fuse = ctx.fuse();
  return r;
}

// dm-clone commits before reporting status and ignores the commit's result:
// a failed commit shows up as the mode (ro/Fail) in the stats themselves.
StatusReport CommittedReport(const RequestContext& ctx) {
  Result<EngineStats> s = ctx.engine->CommitAndStats();
  EngineStats stats;
  if (s.ok()) {
    stats = *s;
  } else {
    CLONEFS_LOG_WARN("control: commit before status failed: %s", s.status().ToString().c_str());
    stats = ctx.engine->Stats();
  }
  return WithSettings(ctx, BuildLiveReport(stats, *ctx.info, ctx.pid, ctx.uptime_s));
}

// Stores the knob a message changed; "" when stored, else a sentence for the
// reply saying what this means and what to do.
std::string StoreMessage(const RequestContext& ctx, const Message& m) {
  if (ctx.settings == nullptr) return "";
  Status s = ctx.settings->Update(SettingsChangeOf(m));
  if (s.ok()) return "";
  CLONEFS_LOG_WARN("control: message '%s' applied but not stored: %s", FormatMessage(m).c_str(),
                   s.ToString().c_str());
  return "warning: applied to the running clone but not stored (" + s.message() +
         "); the next mount uses the stored setting unless you give the option again\n";
}

}  // namespace

Response HandleRequest(const RequestContext& ctx, const std::vector<std::string>& words) {
  if (words.empty()) return Error("empty request");
  const std::string& cmd = words[0];
  const bool no_args = words.size() == 1;
  if (cmd == "ping" && no_args) return Ok(std::string(kProtocolBanner) + "\n");
  if (cmd == "status" && no_args) return Ok(FormatHuman(CommittedReport(ctx)));
  if (cmd == "status-json" && no_args) return Ok(ReportToJson(CommittedReport(ctx)));
  if (cmd == "status-dm" && no_args) return Ok(FormatDmLine(CommittedReport(ctx)) + "\n");
  if (cmd == "stats-json" && no_args) {
    return Ok(ReportToJson(
        WithSettings(ctx, BuildLiveReport(ctx.engine->Stats(), *ctx.info, ctx.pid, ctx.uptime_s))));
  }
  if (cmd == "message") {
    std::vector<std::string> args(words.begin() + 1, words.end());
    Result<Message> m = ParseMessage(args);
    if (!m.ok()) return Error(m.status().message());
    std::string what = ApplyMessage(*ctx.engine, *m);
    CLONEFS_LOG_INFO("control: %s (message '%s' from uid %u)", what.c_str(),
                     FormatMessage(*m).c_str(), ctx.peer_uid);
    return Ok(what + "\n" + StoreMessage(ctx, *m));
  }
  return Error("unknown request '" + cmd +
               "' or wrong argument count; accepted: ping, status, status-json, status-dm, "
               "stats-json, message ARGS...");
}

}  // namespace clonefs::control
