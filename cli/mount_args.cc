#include "mount_args.h"

#include <boost/program_options.hpp>
#include <sstream>

#include "size_arg.h"

namespace po = boost::program_options;

namespace clonefs::cli {
namespace {

const fuse::MountOptions kDefaults;

po::options_description Visible() {
  const HydrationKnobs& k = kDefaults.knobs;
  po::options_description clone("Clone options");
  clone.add_options()
      ("region-size", po::value<std::string>()->value_name("SIZE"),
       ("hydration unit: a power of two from 4K to 1G (suffixes K, M, G). Fixed when the clone "
        "is created; default " + std::to_string(kDefaults.region_size / 1024) + "K").c_str())
      ("metadata", po::value<std::string>()->value_name("DIR"),
       "metadata directory (default: DEST.clonefs beside DEST; required for a block-device DEST)")
      ("name", po::value<std::string>()->value_name("NAME"),
       "name of the exposed file in MOUNTPOINT (default: the basename of DEST)")
      ("no-hydration", "start with background hydration disabled (reads of uncopied regions "
       "keep going to SOURCE; writes still hydrate what they touch)")
      ("no-discard-passdown", "make discarded/punched ranges read as zeros by writing zeros "
       "into DEST instead of deallocating its space")
      ("hydration-threshold", po::value<std::string>()->value_name("N"),
       ("most regions being copied at once, write-triggered copies included; 0 stops "
        "background copying (default " + std::to_string(k.hydration_threshold) + ")").c_str())
      ("hydration-batch-size", po::value<std::string>()->value_name("N"),
       ("most contiguous regions copied as one unit (default " +
        std::to_string(k.hydration_batch_size) + ")").c_str())
      ("rate", po::value<std::string>()->value_name("BYTES"),
       "ceiling on background copying in bytes per second, e.g. 50M (default 0: unlimited)")
      ("on-complete", po::value<std::string>()->value_name("COMMAND"),
       "run COMMAND with /bin/sh -c once hydration is complete and committed; its environment "
       "has CLONEFS_SOURCE, CLONEFS_DEST, CLONEFS_MOUNTPOINT and CLONEFS_METADATA")
      ("buffered", "reach SOURCE and DEST through the page cache (default: O_DIRECT, falling "
       "back to buffered I/O where the file system has no O_DIRECT)");
  po::options_description fuse("FUSE options");
  fuse.add_options()
      ("allow-other", "let other users (root's losetup, a hypervisor's user) open the file; "
       "non-root users need user_allow_other in /etc/fuse.conf")
      (",o", po::value<std::vector<std::string>>()->value_name("OPT[,OPT...]"),
       "extra FUSE mount options (repeatable)")
      ("threads", po::value<std::string>()->value_name("N"),
       ("most threads serving requests (default " + std::to_string(kDefaults.threads) +
        ")").c_str());
  po::options_description daemon("Daemon options");
  daemon.add_options()
      ("foreground,f", "stay attached to the terminal and log to stderr (default: run in the "
       "background and return once the file is usable)")
      ("log-level", po::value<std::string>()->value_name("LEVEL"),
       "error, warning, info or debug (default info)")
      ("log-file", po::value<std::string>()->value_name("FILE"),
       "append the log to FILE (default: syslog in the background, stderr in the foreground)")
      ("help,h", "show this help");
  po::options_description all;
  all.add(clone).add(fuse).add(daemon);
  return all;
}

}  // namespace

std::string MountUsage() {
  std::ostringstream out;
  out << "Usage: clonefs mount [options] SOURCE DEST MOUNTPOINT\n\n"
         "Makes a writable clone of the read-only image SOURCE usable at once, as the file\n"
         "MOUNTPOINT/NAME. Reads of regions not yet copied come from SOURCE, writes land in\n"
         "DEST, and a throttled background copier fills DEST with the rest. Once hydration\n"
         "is complete, DEST alone is the image. DEST (a regular file, created sparse or\n"
         "extended to SOURCE's size, or a block device at least as large) and the metadata\n"
         "may be reused: mounting again resumes where the clone stopped.\n\n"
      << Visible()
      << "\nExamples:\n"
         "  clonefs mount /nfs/base.img /var/lib/vm/disk.img /mnt/clone\n"
         "  losetup --direct-io=on -f --show /mnt/clone/disk.img\n"
         "  clonefs mount --rate 100M --region-size 1M src.img dst.img /mnt/clone\n";
  return out.str();
}

ParsedMount ParseMountArgs(const Args& args) {
  po::options_description all = Visible();
  po::options_description hidden;
  hidden.add_options()("paths", po::value<std::vector<std::string>>());
  po::options_description cmdline;
  cmdline.add(all).add(hidden);
  po::positional_options_description pos;
  pos.add("paths", 3);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(cmdline).positional(pos).run(), vm);
  po::notify(vm);

  ParsedMount r;
  fuse::MountOptions& o = r.options;
  if (vm.count("help")) {
    r.help = true;
    return r;
  }
  if (vm.count("paths")) {
    auto p = vm["paths"].as<std::vector<std::string>>();
    if (p.size() > 0) o.source = p[0];
    if (p.size() > 1) o.dest = p[1];
    if (p.size() > 2) o.mountpoint = p[2];
  }
  auto str = [&](const char* name) -> const std::string* {
    return vm.count(name) ? &vm[name].as<std::string>() : nullptr;
  };
  if (auto* v = str("region-size")) {
    if (auto n = ParseSize(*v)) {
      o.region_size = *n;
    } else {
      r.problems.push_back("--region-size '" + *v + "' is not a size; use e.g. 64K or 1M");
    }
  }
  if (auto* v = str("rate")) {
    if (auto n = ParseSize(*v)) {
      o.knobs.rate_bytes_per_s = *n;
    } else {
      r.problems.push_back("--rate '" + *v + "' is not a size per second; use e.g. 50M or 0");
    }
  }
  auto count32 = [&](const char* name, uint32_t* out) {
    if (auto* v = str(name)) {
      if (auto n = ParseCount(*v, UINT32_MAX)) {
        *out = static_cast<uint32_t>(*n);
      } else {
        r.problems.push_back(std::string("--") + name + " '" + *v +
                             "' is not a whole number; use e.g. 8");
      }
    }
  };
  count32("hydration-threshold", &o.knobs.hydration_threshold);
  count32("hydration-batch-size", &o.knobs.hydration_batch_size);
  count32("threads", &o.threads);
  if (auto* v = str("log-level")) {
    if (!ParseLogLevel(*v, &o.log_level)) {
      r.problems.push_back("--log-level '" + *v + "' is unknown; use error, warning, info or debug");
    }
  }
  if (auto* v = str("metadata")) o.metadata_dir = *v;
  if (auto* v = str("name")) o.name = *v;
  if (auto* v = str("log-file")) o.log_file = *v;
  if (auto* v = str("on-complete")) o.on_complete = *v;
  if (vm.count("-o")) o.fuse_options = vm["-o"].as<std::vector<std::string>>();
  o.knobs.hydration_enabled = !vm.count("no-hydration");
  o.discard_passdown = !vm.count("no-discard-passdown");
  o.direct_io = !vm.count("buffered");
  o.allow_other = vm.count("allow-other") > 0;
  o.foreground = vm.count("foreground") > 0;
  for (auto& p : fuse::ValidateMountOptions(o)) r.problems.push_back(p);
  return r;
}

}  // namespace clonefs::cli
