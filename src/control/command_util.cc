#include "control/command_util.h"

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "control/discovery.h"

namespace po = boost::program_options;

namespace clonefs::control {

Result<std::string> SocketFor(const std::string& mountpoint, const std::string& socket_opt) {
  if (!socket_opt.empty()) return socket_opt;
  if (mountpoint.empty()) return Status::InvalidArgument("MOUNTPOINT is required");
  return ResolveControlSocket(mountpoint);
}

std::string ExplainUnreachable(const std::string& mountpoint, const Status& s) {
  if (mountpoint.empty()) return s.message() + "; is the clonefs daemon running?";
  Result<std::string> again = ResolveControlSocket(mountpoint);
  if (!again.ok()) return again.status().message();
  const std::string dir = again->substr(0, again->rfind('/'));
  return "the clonefs daemon serving " + mountpoint + " does not answer (" + s.message() +
         "); see its log (" + dir + "/clonefs.log, unless it was mounted with --log-file)";
}

bool ParseArgs(const char* cmd, const char* usage_line, const std::vector<std::string>& args,
               const po::options_description& desc, const po::positional_options_description& pos,
               po::variables_map* vm, const CommandIo& io, bool* help) {
  *help = false;
  // The help lists the options, not the arguments: an option that only
  // carries a positional argument (MOUNTPOINT, DEST) is in the usage line.
  po::options_description visible("Options");
  for (const auto& opt : desc.options()) {
    bool positional = false;
    for (unsigned i = 0; i < pos.max_total_count() && i < 8; ++i) {
      positional = positional || pos.name_for_position(i) == opt->long_name();
    }
    if (!positional) visible.add(opt);
  }
  try {
    po::store(po::command_line_parser(args).options(desc).positional(pos).run(), *vm);
    po::notify(*vm);
  } catch (const po::error& e) {
    io.err << "clonefs " << cmd << ": " << e.what() << "\nusage: " << usage_line << "\n"
           << visible;
    return false;
  }
  if (vm->count("help") != 0) {
    io.out << "usage: " << usage_line << "\n" << visible;
    *help = true;
  }
  return true;
}

void SleepSeconds(double seconds) {
  if (seconds <= 0) return;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
}

int RunStatusCommand(const std::vector<std::string>& args) {
  return RunStatusCommand(args, CommandIo{std::cout, std::cerr, isatty(1) == 1});
}
int RunMessageCommand(const std::vector<std::string>& args) {
  return RunMessageCommand(args, CommandIo{std::cout, std::cerr, isatty(1) == 1});
}
int RunWaitCommand(const std::vector<std::string>& args) {
  return RunWaitCommand(args, CommandIo{std::cout, std::cerr, isatty(1) == 1});
}
}  // namespace clonefs::control
