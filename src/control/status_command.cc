// clonefs status MOUNTPOINT [--json | --dm] [--watch [SECONDS]] [--count N]
#include <cstdlib>
#include <ostream>
#include <string>
#include <vector>

#include "control/client.h"
#include "control/command_util.h"
#include "control/commands.h"
#include "control/units.h"

namespace po = boost::program_options;

namespace clonefs::control {
namespace {

constexpr char kUsage[] =
    "clonefs status MOUNTPOINT [--json | --dm] [--watch [SECONDS]] [--count N] [--socket PATH]";
// ANSI: cursor home, clear screen.
constexpr char kClearScreen[] = "\033[H\033[2J";
// --watch without SECONDS.
constexpr double kDefaultWatchSeconds = 2;

bool IsNumber(const std::string& s) {
  char* end = nullptr;
  std::strtod(s.c_str(), &end);
  return !s.empty() && end == s.c_str() + s.size();
}

// boost reads the word after an option with an optional value as that
// value, also when it is the MOUNTPOINT (`clonefs status --watch /mnt/c`).
// So a --watch (-w) followed by a word that is neither a number nor an
// option is given its default here, and the word stays an argument.
std::vector<std::string> WatchTakesOnlyANumber(std::vector<std::string> args) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    const std::string& next = args[i + 1];
    if ((args[i] == "--watch" || args[i] == "-w") && next.rfind('-', 0) != 0 && !IsNumber(next)) {
      args[i] = "--watch=" + std::to_string(kDefaultWatchSeconds);
    }
  }
  return args;
}

}  // namespace

int RunStatusCommand(const std::vector<std::string>& args, const CommandIo& io) {
  std::string mountpoint, socket;
  double watch = 0;
  std::string count_text;
  uint64_t count = 0;  // 0: until interrupted
  po::options_description desc("Options");
  // clang-format off
  desc.add_options()
      ("help,h", "show this help")
      ("mountpoint", po::value(&mountpoint), "the clone's mountpoint")
      ("json", "print the JSON document (schema in docs/control.md)")
      ("dm", "print dm-clone's status line")
      ("watch,w", po::value(&watch)->implicit_value(kDefaultWatchSeconds),
       "refresh every SECONDS (default 2) until interrupted, or --count times")
      ("count,n", po::value(&count_text)->value_name("N"),
       "with --watch: stop after N refreshes (N >= 1)")
      ("socket", po::value(&socket), "talk to this control socket instead of discovering it");
  // clang-format on
  po::positional_options_description pos;
  pos.add("mountpoint", 1);
  po::variables_map vm;
  bool help = false;
  if (!ParseArgs("status", kUsage, WatchTakesOnlyANumber(args), desc, pos, &vm, io, &help)) {
    return kExitUsage;
  }
  if (help) {
    io.out << "\n" << ExitCodesHelp(kStatusExitCodes);
    return kExitOk;
  }
  const bool json = vm.count("json") != 0, dm = vm.count("dm") != 0;
  if (json && dm) {
    io.err << "clonefs status: --json and --dm are exclusive\n";
    return kExitUsage;
  }
  const bool watching = vm.count("watch") != 0;
  if (watching && !(watch > 0)) {
    io.err << "clonefs status: --watch needs a positive number of seconds\n";
    return kExitUsage;
  }
  if (vm.count("count") != 0 && !watching) {
    io.err << "clonefs status: --count counts the refreshes of --watch; add --watch [SECONDS] "
              "(or leave --count out for a single status)\n";
    return kExitUsage;
  }
  if (vm.count("count") != 0) {
    Result<uint64_t> n = ParseDecimal(count_text);
    if (!n.ok()) {
      io.err << "clonefs status: --count: " << n.status().message() << "\n";
      return kExitUsage;
    }
    count = *n;
  }
  if (vm.count("count") != 0 && count == 0) {
    io.err << "clonefs status: --count must be at least 1; leave it out to refresh until "
              "interrupted\n";
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
  for (uint64_t i = 0;; i++) {
    Result<Response> r = CallControl(*sock, {request});
    if (!r.ok()) {
      if (watching && io.out_is_tty && i > 0) io.out << "\n";
      io.err << "clonefs status: " << (i > 0 ? "the clone stopped answering: " : "")
             << ExplainUnreachable(mountpoint, r.status()) << "\n";
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
    if (!watching || (count != 0 && i + 1 >= count)) break;  // count 0: not given
    SleepSeconds(watch);
  }
  return 0;
}

}  // namespace clonefs::control
