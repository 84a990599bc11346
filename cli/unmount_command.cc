// clonefs unmount: final commit and a clean unmount.
#include <cstdio>

#include "command.h"
#include "fuse/exit_codes.h"
#include "fuse/unmount.h"
#include "unmount_args.h"
#ifdef CLONEFS_WITH_CONTROL
#include "clone/settings.h"
#include "control/client.h"
#include "control/discovery.h"
#include "control/status_report.h"
#include "sources/source_spec.h"
#endif

namespace clonefs::cli {
namespace {

#ifdef CLONEFS_WITH_CONTROL
// A stopping daemon still answers on its control socket: its stats say
// whether its source has gone silent. "stats-json" rather than
// "status-json", which commits first (a slow dest would hold the answer).
constexpr int kAskTimeoutMs = 5000;

Result<fuse::StoppingDaemon> AskStoppingDaemon(const std::string& metadata_dir) {
  CLONEFS_ASSIGN_OR_RETURN(control::Response resp,
                           control::CallControl(control::ControlSocketPath(metadata_dir),
                                                {"stats-json"}, kAskTimeoutMs));
  if (!resp.ok) return Status::IoError("its control socket answered: " + resp.text);
  CLONEFS_ASSIGN_OR_RETURN(control::StatusReport r, control::ReportFromJsonText(resp.text));
  fuse::StoppingDaemon d;
  d.source = r.info.source;
  // The display form of a URI (password redacted) parses as the URI did.
  Result<SourceSpec> spec = ParseSource(r.info.source);
  d.source_is_remote =
      spec.ok() ? spec->IsRemote() : r.info.source.find("://") != std::string::npos;
  d.source_state = SourceStateName(r.source_health.state);
  d.source_since_unix_ns = r.source_health.since_unix_ns;
  d.oldest_request_unix_ns = r.source_health.oldest_request_unix_ns;
  d.source_last_error = r.source_health.last_error;
  d.source_timeout_ms = r.settings.source_timeout_ms.value_or(clone::kDefaultSourceTimeoutMs);
  d.hydrating_regions = r.hydrating_regions;
  d.health = r.health;
  return d;
}
#endif

}  // namespace

int UnmountCommand(const Args& args) {
  ParsedUnmount p = ParseUnmountArgs(args);
  if (p.help) {
    fputs(UnmountUsage().c_str(), stdout);
    return kExitOk;
  }
  if (!p.problems.empty()) {
    for (const auto& m : p.problems) fprintf(stderr, "clonefs: error: %s\n", m.c_str());
    fprintf(stderr, "%s\n", UnmountShortUsage().c_str());
    return kExitUsage;
  }
#ifdef CLONEFS_WITH_CONTROL
  p.options.ask_daemon = AskStoppingDaemon;
#endif
  return fuse::RunUnmount(p.options);
}

}  // namespace clonefs::cli
