// clonefs mount: parse, validate (every problem at once), run the daemon
// with the services that run beside the mount (the control channel, when
// built in).
#include <cstdio>
#include <memory>

#include "base/log.h"
#include "command.h"
#include "fuse/daemon.h"
#include "fuse/exit_codes.h"
#include "mount_args.h"
#include "sources/source_spec.h"

#ifdef CLONEFS_WITH_CONTROL
#include "control/server.h"
#include "control/service_notify.h"
#endif

namespace clonefs::cli {
namespace {

fuse::DaemonHooks ServiceHooks() {
  fuse::DaemonHooks hooks;
#ifdef CLONEFS_WITH_CONTROL
  auto server = std::make_shared<control::ControlServer>();
  // Under systemd (Type=notify): READY=1 once the file is usable, then live
  // progress in STATUS=.
  auto notifier = std::make_shared<control::ServiceNotifier>();
  auto started = std::make_shared<std::pair<Engine*, control::ControlInfo>>();
  hooks.start = [server, started](Engine* engine, const fuse::ServeContext& ctx) {
    const fuse::MountOptions& o = *ctx.options;
    control::ControlInfo info;
    info.mountpoint = o.mountpoint;
    info.source = RedactSource(o.source);  // status shows it
    info.dest = o.dest;
    info.metadata_dir = o.metadata_dir;
    info.uuid = ctx.uuid;
    info.log_file = LogFilePath();  // the daemon's, open by now
    info.name = o.name;
    control::ControlServerOptions so;
    so.settings = ctx.settings;
    so.fuse = [stats = ctx.fuse_stats] {
      control::FuseReport r;
      if (!stats) return r;
      const fuse::FuseStats s = stats();
      r.passthrough = s.passthrough;
      r.opens = s.opens;
      r.passthrough_opens = s.passthrough_opens;
      r.read_requests = s.read_requests;
      r.write_requests = s.write_requests;
      r.transport = s.transport;
      r.uring_requests = s.uring_requests;
      r.uring_direct = s.uring_direct;
      return r;
    };
    *started = {engine, info};
    return server->Start(engine, info, so).WithContext("cannot start the control channel");
  };
  hooks.mounted = [notifier, started] { notifier->Ready(started->first, started->second); };
  hooks.stop = [server, notifier] {
    notifier->Stopping("unmounted");
    server->Stop();
  };
#endif
  return hooks;
}

}  // namespace

int MountCommand(const Args& args) {
  ParsedMount p = ParseMountArgs(args);
  if (p.help) {
    fputs(MountUsage().c_str(), stdout);
    return kExitOk;
  }
  if (!p.problems.empty()) {
    for (const auto& m : p.problems) fprintf(stderr, "clonefs: error: %s\n", m.c_str());
    fprintf(stderr,
            "usage: clonefs mount [options] SOURCE DEST MOUNTPOINT (see clonefs mount --help)\n");
    return kExitUsage;
  }
  return fuse::RunMount(p.options, ServiceHooks());
}

}  // namespace clonefs::cli
