// clonefs wait MOUNTPOINT [--timeout SECONDS] [--stall-timeout SECONDS]
//              [--interval SECONDS] [--quiet]
#include <algorithm>
#include <chrono>
#include <ostream>

#include "base/clock.h"
#include "control/client.h"
#include "control/command_util.h"
#include "control/commands.h"
#include "control/progress_watch.h"
#include "control/status_format.h"

namespace po = boost::program_options;

namespace clonefs::control {
namespace {

constexpr char kUsage[] =
    "clonefs wait MOUNTPOINT [--timeout SECONDS] [--stall-timeout SECONDS] [--interval SECONDS] "
    "[--quiet] [--socket PATH]";
constexpr int kBarWidth = 30;
// How often the daemon is polled, whatever the print interval.
constexpr double kMaxPollSeconds = 1.0;

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int RunWaitCommand(const std::vector<std::string>& args, const CommandIo& io) {
  std::string mountpoint, socket;
  double timeout = 0, stall_timeout = 0, interval = 0;
  po::options_description desc("Options");
  desc.add_options()
      ("help,h", "show this help")
      ("mountpoint", po::value(&mountpoint), "the clone's mountpoint")
      ("timeout,t", po::value(&timeout),
       ("give up after SECONDS (exit " + std::to_string(kWaitTimedOut) +
        "); default: wait forever").c_str())
      ("stall-timeout", po::value(&stall_timeout)->value_name("SECONDS"),
       ("give up when hydration has made no progress for SECONDS, saying why (exit " +
        std::to_string(kWaitStalled) + "); default: never").c_str())
      ("interval,i", po::value(&interval),
       "progress every SECONDS (default: 1 on a terminal, 10 otherwise)")
      ("quiet,q", "print nothing but errors")
      ("socket", po::value(&socket), "talk to this control socket instead of discovering it");
  po::positional_options_description pos;
  pos.add("mountpoint", 1);
  po::variables_map vm;
  bool help = false;
  if (!ParseArgs("wait", kUsage, args, desc, pos, &vm, io, &help)) return kWaitUsage;
  if (help) {
    io.out << "\n" << ExitCodesHelp(kWaitExitCodes);
    return kWaitDone;
  }
  if (timeout < 0 || interval < 0 || stall_timeout < 0) {
    io.err << "clonefs wait: --timeout, --stall-timeout and --interval must not be negative\n";
    return kWaitUsage;
  }
  if (interval == 0) interval = io.out_is_tty ? 1.0 : 10.0;
  const bool quiet = vm.count("quiet") != 0;
  if (mountpoint.empty() && socket.empty()) {
    io.err << "clonefs wait: MOUNTPOINT is required\nusage: " << kUsage << "\n";
    return kWaitUsage;
  }
  Result<std::string> sock = SocketFor(mountpoint, socket);
  if (!sock.ok()) {
    io.err << "clonefs wait: " << sock.status().message() << "\n";
    return kWaitError;
  }
  const Clock::time_point start = Clock::now();
  Clock::time_point last_print = start - std::chrono::hours(1);
  bool drew_bar = false;
  ProgressWatch progress;
  auto end_bar = [&] {
    if (drew_bar) io.out << "\n";
    drew_bar = false;
  };
  for (bool first = true;; first = false) {
    Result<Response> r = CallControl(*sock, {"stats-json"});
    if (!r.ok() || !r->ok) {
      end_bar();
      std::string why = r.ok() ? r->text : r.status().message();
      if (first) {
        if (!r.ok()) why = ExplainUnreachable(mountpoint, r.status());
        io.err << "clonefs wait: " << why << "\n";
        return kWaitError;
      }
      io.err << "clonefs wait: the clonefs daemon went away before hydration completed (" << why
             << ")\n";
      return kWaitDaemonGone;
    }
    Result<StatusReport> rep = ReportFromJsonText(r->text);
    if (!rep.ok()) {
      end_bar();
      io.err << "clonefs wait: bad status from daemon: " << rep.status().message() << "\n";
      return kWaitError;
    }
    const bool finished = rep->hydration_done || rep->mode != EngineMode::kReadWrite ||
                          !rep->source_change.empty() || !rep->dest_change.empty();
    if (!quiet && (finished || Since(last_print) >= interval - 1e-3)) {
      last_print = Clock::now();
      if (io.out_is_tty) {
        io.out << "\r\033[K" << FormatProgress(*rep, kBarWidth) << std::flush;
        drew_bar = true;
      } else {
        io.out << FormatProgress(*rep, 0) << std::endl;
      }
    }
    if (!rep->dest_change.empty()) {
      end_bar();
      io.err << "clonefs wait: dest changed under the clone (" << rep->dest_change
             << "); every request fails and hydration has stopped. Unmount, then restore dest, "
                "or start a new clone.\n";
      return kWaitCloneFailed;
    }
    if (!rep->source_change.empty()) {
      end_bar();
      io.err << "clonefs wait: the source changed under the clone (" << rep->source_change
             << "); hydration has stopped and cannot complete. Restore the source as it was "
                "and mount again, or start a new clone.\n";
      return kWaitCloneFailed;
    }
    if (rep->hydration_done) {
      end_bar();
      if (!quiet) io.out << "hydration complete: the destination is a complete image\n";
      return kWaitDone;
    }
    if (rep->mode != EngineMode::kReadWrite) {
      end_bar();
      io.err << "clonefs wait: the clone is in " << (rep->mode == EngineMode::kFail ? "fail" : "read-only")
             << " mode (" << ModeWord(rep->mode)
             << "); hydration cannot complete. See the daemon's log.\n";
      return kWaitCloneFailed;
    }
    const double now = Since(start);
    progress.Observe(now, rep->hydrated_bytes, rep->committed_hydrated_regions);
    if (stall_timeout > 0 && progress.StalledFor(now) >= stall_timeout) {
      end_bar();
      // The progress line without its padding, nor its health: the health
      // follows ("at  25.0% ... degraded: dest full; health: degraded: dest
      // full" said it twice).
      std::string at = FormatProgress(*rep, 0, ProgressHealth::kOmit);
      at.erase(0, std::min(at.size(), at.find_first_not_of(' ')));
      io.err << "clonefs wait: no hydration progress for " << stall_timeout << " s at " << at
             << "; health: " << (rep->health.empty() ? std::string("unknown") : rep->health)
             << "; last error: " << FormatLastError(rep->last_error, WallNowNanos());
      // A source that is down is why, though the clone itself has no error.
      const SourceHealth::State link = rep->source_health.state;
      if (link == SourceHealth::State::kReconnecting || link == SourceHealth::State::kStalled) {
        io.err << "; source link: " << FormatSourceHealth(rep->source_health, WallNowNanos());
      }
      io.err << ". See clonefs status and the daemon's log.\n";
      return kWaitStalled;
    }
    double left = timeout > 0 ? timeout - Since(start) : kMaxPollSeconds;
    if (timeout > 0 && left <= 0) {
      end_bar();
      io.err << "clonefs wait: timed out after " << timeout << " s at "
             << FormatProgress(*rep, 0) << "\n";
      return kWaitTimedOut;
    }
    double step = interval < kMaxPollSeconds ? interval : kMaxPollSeconds;
    SleepSeconds(left < step ? left : step);
  }
}

}  // namespace clonefs::control
