// clonefs status MOUNTPOINT [--json | --dm] [--watch [SECONDS]] [--count N]
#include <ostream>

#include "control/client.h"
#include "control/command_util.h"
#include "control/commands.h"

namespace po = boost::program_options;

namespace clonefs::control {
namespace {

constexpr char kUsage[] =
    "clonefs status MOUNTPOINT [--json | --dm] [--watch [SECONDS]] [--count N] [--socket PATH]";
// ANSI: cursor home, clear screen.
constexpr char kClearScreen[] = "\033[H\033[2J";

}  // namespace

int RunStatusCommand(const std::vector<std::string>& args, const CommandIo& io) {
  std::string mountpoint, socket;
  double watch = 0;
  uint64_t count = 0;
  po::options_description desc("Options");
  desc.add_options()
      ("help,h", "show this help")
      ("mountpoint", po::value(&mountpoint), "the clone's mountpoint")
      ("json", "print the JSON document (schema in docs/control.md)")
      ("dm", "print dm-clone's status line")
      ("watch,w", po::value(&watch)->implicit_value(2.0),
       "refresh every SECONDS (default 2) until interrupted")
      ("count,n", po::value(&count), "with --watch: stop after N refreshes")
      ("socket", po::value(&socket), "talk to this control socket instead of discovering it");
  po::positional_options_description pos;
  pos.add("mountpoint", 1);
  po::variables_map vm;
  bool help = false;
  if (!ParseArgs("status", kUsage, args, desc, pos, &vm, io, &help)) return kExitUsage;
  if (help) return 0;
  const bool json = vm.count("json") != 0, dm = vm.count("dm") != 0;
  if (json && dm) {
    io.err << "clonefs status: --json and --dm are exclusive\n";
    return kExitUsage;
  }
  if (vm.count("watch") != 0 && !(watch > 0)) {
    io.err << "clonefs status: --watch needs a positive number of seconds\n";
    return kExitUsage;
  }
  if (mountpoint.empty() && socket.empty()) {
    io.err << "clonefs status: MOUNTPOINT is required\nusage: " << kUsage << "\n";
    return kExitUsage;
  }
  Result<std::string> sock = SocketFor(mountpoint, socket);
  if (!sock.ok()) {
    io.err << "clonefs status: " << sock.status().message() << "\n";
    return kExitFailure;
  }
  const std::string request = json ? "status-json" : dm ? "status-dm" : "status";
  const bool watching = vm.count("watch") != 0;
  for (uint64_t i = 0;; i++) {
    Result<Response> r = CallControl(*sock, {request});
    if (!r.ok()) {
      io.err << "clonefs status: " << r.status().message() << "\n";
      return kExitFailure;
    }
    if (!r->ok) {
      io.err << "clonefs status: " << r->text << (r->text.ends_with('\n') ? "" : "\n");
      return kExitFailure;
    }
    if (watching && io.out_is_tty) {
      io.out << kClearScreen;
    } else if (watching && i > 0 && !dm) {
      io.out << "\n";
    }
    io.out << r->text << std::flush;
    if (!watching || (count != 0 && i + 1 >= count)) break;
    SleepSeconds(watch);
  }
  return 0;
}

}  // namespace clonefs::control
