#include "unmount_args.h"

#include <boost/program_options.hpp>
#include <sstream>

#include "fuse/exit_codes.h"
#include "size_arg.h"

namespace po = boost::program_options;

namespace clonefs::cli {
namespace {

po::options_description Visible() {
  po::options_description d("Options");
  d.add_options()(
      "force",
      "detach lazily even while the file is in use: the mount leaves the namespace at "
      "once, the daemon keeps serving the open users and makes its final commit when the last "
      "one closes the file")(
      "timeout", po::value<std::string>()->value_name("SECONDS"),
      "longest wait for the daemon to exit: it finishes the hydrations in flight (whose "
      "reads wait for a remote source up to the source timeout, and for a stalled file "
      "source until its storage answers), then makes its final commit (default 600)")("help,h", "show this help");
  return d;
}

}  // namespace

std::string UnmountUsage() {
  std::ostringstream out;
  out << "Usage: clonefs unmount [options] MOUNTPOINT\n\n"
         "Unmounts a clone cleanly: the daemon makes its final metadata commit and exits, and\n"
         "this command returns once it has. Refused while the exposed file is in use; the\n"
         "message names the loop devices to detach. Tear down in this order: umount the file\n"
         "system on the loop device, losetup -d the loop device, then clonefs unmount.\n\n"
      << Visible() << "\n"
      << ExitCodesHelp(kUnmountExitCodes);
  return out.str();
}

std::string UnmountShortUsage() {
  return "usage: clonefs unmount [--force] [--timeout SECONDS] MOUNTPOINT (see clonefs unmount "
         "--help)";
}

ParsedUnmount ParseUnmountArgs(const Args& args) {
  po::options_description all = Visible();
  po::options_description cmdline;
  cmdline.add(all).add_options()("mountpoint", po::value<std::string>());
  po::positional_options_description pos;
  pos.add("mountpoint", 1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(cmdline).positional(pos).run(), vm);
  po::notify(vm);
  ParsedUnmount r;
  if (vm.count("help")) {
    r.help = true;
    return r;
  }
  if (vm.count("mountpoint")) {
    r.options.mountpoint = vm["mountpoint"].as<std::string>();
  } else {
    r.problems.push_back("MOUNTPOINT is missing; give the directory the clone is mounted on");
  }
  r.options.force = vm.count("force") > 0;
  if (vm.count("timeout")) {
    const std::string& v = vm["timeout"].as<std::string>();
    if (auto n = ParseCount(v, 86400 * 7)) {
      r.options.wait_seconds = static_cast<uint32_t>(*n);
    } else {
      r.problems.push_back("--timeout '" + v + "' is not a number of seconds");
    }
  }
  return r;
}

}  // namespace clonefs::cli
