#include "mount_args.h"

#include <boost/program_options.hpp>
#include <filesystem>
#include <optional>
#include <sstream>

#include "base/byte_size.h"
#include "fuse/exit_codes.h"
#include "size_arg.h"

namespace po = boost::program_options;

namespace clonefs::cli {
namespace {

const fuse::MountOptions kDefaults;

po::options_description Visible() {
  const HydrationKnobs& k = kDefaults.knobs;
  po::options_description clone(
      "Clone options (stored with the clone, except --metadata, --overwrite-dest and "
      "--reset-settings: a later mount of it uses them unless given again)");
  // clang-format off
  clone.add_options()
      ("region-size", po::value<std::string>()->value_name("SIZE"),
       ("hydration unit: a power of two from 4K to 1G (suffixes K, M, G). Fixed when the clone "
        "is created (default " + std::to_string(kDefaults.region_size / 1024) + "K); an existing "
        "clone keeps its own").c_str())
      ("metadata", po::value<std::string>()->value_name("DIR"),
       "metadata directory (default: DEST.clonefs beside DEST; required for a block-device DEST)")
      ("name", po::value<std::string>()->value_name("NAME"),
       "name of the exposed file in MOUNTPOINT (default: the basename of DEST)")
      ("no-hydration", "start with background hydration disabled (reads of uncopied regions "
       "keep going to SOURCE, with read-ahead for sequential readers, and with copy-on-read "
       "what they read is kept in DEST; writes still hydrate what they touch)")
      ("hydration", "start with background hydration enabled (the default; undoes a stored "
       "--no-hydration)")
      ("no-discard-passdown", "make discarded/punched ranges read as zeros by writing zeros "
       "into DEST instead of deallocating its space")
      ("discard-passdown", "deallocate DEST's space for discarded/punched ranges (the default; "
       "undoes a stored --no-discard-passdown)")
      ("hydration-threshold", po::value<std::string>()->value_name("N"),
       ("most regions being copied at once, write-triggered copies included; 0 stops "
        "background copying, not the read-ahead of sequential readers (default " +
        std::to_string(k.hydration_threshold) + ")").c_str())
      ("hydration-batch-size", po::value<std::string>()->value_name("N"),
       ("most contiguous regions copied as one unit (default " +
        std::to_string(k.hydration_batch_size) + ")").c_str())
      ("rate", po::value<std::string>()->value_name("RATE"),
       "ceiling on background copying in bytes per second, e.g. 50M or 50M/s (K, M, G, ... are "
       "powers of 1024; default 0: unlimited); the read-ahead of sequential readers is not "
       "limited")
      ("copy-on-read", "keep what users read from SOURCE: whole regions read from it are "
       "written to DEST and count as hydrated, so nothing is fetched twice (default: on for a "
       "remote SOURCE, off for a file or device)")
      ("no-copy-on-read", "reads of uncopied regions leave DEST alone")
      ("read-hints", "hydrate ahead of sequential readers and around recent reads before "
       "anything else (the default)")
      ("no-read-hints", "hydrate in profile and bitmap order only")
      ("profile", po::value<std::string>()->value_name("FILE"),
       "hydrate the regions listed in the access profile FILE first, in its order (one "
       "recorded with --record-profile from a clone of the same source; --profile '' removes "
       "a stored one)")
      ("record-profile", po::value<std::string>()->value_name("FILE"),
       "record the order in which this clone's regions are first read or written into FILE, "
       "written at unmount (clonefs profile show FILE prints it; --record-profile '' stops "
       "recording)")
      ("source-timeout", po::value<std::string>()->value_name("SECONDS"),
       "how long a read waits for an unresponsive source (a remote source reconnecting, a "
       "stalled network file system) before the reader gets EIO, e.g. 30, 2.5s or 500ms "
       "(default 30; a killed reader never waits)")
      ("on-complete", po::value<std::string>()->value_name("COMMAND"),
       "run COMMAND with /bin/sh -c once hydration is complete and committed; its environment "
       "has CLONEFS_SOURCE, CLONEFS_DEST, CLONEFS_MOUNTPOINT and CLONEFS_METADATA "
       "(--on-complete '' removes a stored command)")
      ("overwrite-dest", "start a new clone even though DEST already holds data and no clone "
       "is recorded for it: that data is overwritten with SOURCE (without it such a DEST is "
       "refused; it may be a renamed or finished clone; not stored)")
      ("buffered", "reach SOURCE and DEST through the page cache (default: O_DIRECT, falling "
       "back to buffered I/O where the file system has no O_DIRECT)")
      ("direct-io", "reach SOURCE and DEST with O_DIRECT (the default; undoes a stored "
       "--buffered)")
      ("reset-settings", "forget the clone's stored settings (also a damaged record) and store "
       "only the options given now");
  // clang-format on
  po::options_description fuse("FUSE options (stored with the clone as well)");
  // clang-format off
  fuse.add_options()
      ("allow-other", "let other users (root's losetup, a hypervisor's user) open the file; "
       "non-root users need user_allow_other in /etc/fuse.conf")
      ("no-allow-other", "only the mounting user may open the file (the default; undoes a "
       "stored --allow-other)")
      ("no-passthrough", "keep serving every open through the daemon, also once the clone is "
       "complete (default: opens made after completion are served by the kernel from DEST, "
       "FUSE passthrough, where Linux 6.9+ and root allow it)")
      ("passthrough", "use FUSE passthrough once the clone is complete (the default; undoes a "
       "stored --no-passthrough)")
      ("fuse-transport", po::value<std::string>()->value_name("MODE"),
       "how the kernel hands requests to the daemon: auto (the default; io_uring where the "
       "kernel offers it, else /dev/fuse), uring (io_uring, or refuse to mount) or dev "
       "(/dev/fuse only). io_uring needs Linux 6.14+ with the fuse module's enable_uring "
       "parameter on (docs/cli.md)")
      (",o", po::value<std::vector<std::string>>()->value_name("OPT[,OPT...]"),
       "extra FUSE mount options (repeatable; given again, they replace the stored ones; "
       "-o '' removes them)")
      ("threads", po::value<std::string>()->value_name("N"),
       ("most threads serving requests (default " + std::to_string(kDefaults.threads) +
        "; while every one has been busy for half a second, up to 8 more are added so that "
        "killed readers are still answered)").c_str());
  // clang-format on
  po::options_description daemon("Daemon options (this mount only)");
  // clang-format off
  daemon.add_options()
      ("foreground,f", "stay attached to the terminal and log to stderr (default: run in the "
       "background and return once the file is usable)")
      ("log-level", po::value<std::string>()->value_name("LEVEL"),
       "error, warning, info or debug (default info)")
      ("log-file", po::value<std::string>()->value_name("FILE"),
       "append the log to FILE (default: METADATA/clonefs.log; syslog as well in the "
       "background, stderr in the foreground; capped at 4 MiB, rotated once to FILE.1)")
      ("help,h", "show this help");
  // clang-format on
  po::options_description all;
  all.add(clone).add(fuse).add(daemon);
  return all;
}

// An on/off setting with an option for each value; both given is a problem.
void OnOff(const po::variables_map& vm, const char* on, const char* off,
           std::optional<bool>* out, std::vector<std::string>* problems) {
  const bool has_on = vm.count(on) > 0, has_off = vm.count(off) > 0;
  if (has_on && has_off) {
    problems->push_back(std::string("--") + on + " and --" + off + " contradict each other; "
                        "give one of them");
  } else if (has_on || has_off) {
    *out = has_on;
  }
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
         "may be reused: mounting again resumes where the clone stopped, with the settings\n"
         "stored in the clone (`clonefs mount SOURCE DEST MOUNTPOINT` is enough; an option\n"
         "given again overrides and is stored; `clonefs info DEST` shows them).\n\n"
      << Visible()
      << "\nExamples:\n"
         "  clonefs mount /nfs/base.img /var/lib/vm/disk.img /mnt/clone\n"
         "  losetup --direct-io=on -f --show /mnt/clone/disk.img\n"
         "  clonefs mount --rate 100M --region-size 1M src.img dst.img /mnt/clone\n\n"
      << ExitCodesHelp(kMountExitCodes);
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
  clone::Settings& g = o.given;
  if (auto* v = str("region-size")) {
    o.region_size_given = true;
    if (Result<uint64_t> n = ParseSize(*v); n.ok()) {
      o.region_size = *n;
    } else {
      r.problems.push_back("--region-size " + n.status().message());
    }
  }
  if (auto* v = str("rate")) {
    if (Result<uint64_t> n = ParseRate(*v); n.ok()) {
      g.rate_bytes_per_s = *n;
    } else {
      r.problems.push_back("--rate " + n.status().message());
    }
  }
  auto count32 = [&](const char* name, std::optional<uint32_t>* out) {
    if (auto* v = str(name)) {
      if (auto n = ParseCount(*v, UINT32_MAX)) {
        *out = static_cast<uint32_t>(*n);
      } else {
        r.problems.push_back(std::string("--") + name + " '" + *v +
                             "' is not a whole number; use e.g. 8");
      }
    }
  };
  count32("hydration-threshold", &g.hydration_threshold);
  count32("hydration-batch-size", &g.hydration_batch_size);
  count32("threads", &g.threads);
  if (auto* v = str("source-timeout")) {
    auto ms = ParseSeconds(*v);
    if (ms && *ms >= clone::kMinSourceTimeoutMs) {
      g.source_timeout_ms = *ms;
    } else {
      r.problems.push_back("--source-timeout '" + *v +
                           "' is not a duration between 0.1 s and a day; use e.g. 30 or 2.5s");
    }
  }
  if (auto* v = str("log-level")) {
    if (!ParseLogLevel(*v, &o.log_level)) {
      r.problems.push_back("--log-level '" + *v + "' is unknown; use error, warning, info or debug");
    }
  }
  if (auto* v = str("metadata")) o.metadata_dir = *v;
  if (auto* v = str("name")) g.name = *v;
  if (auto* v = str("log-file")) o.log_file = *v;
  if (auto* v = str("on-complete")) g.on_complete = *v;
  auto path = [&](const char* name, std::optional<std::string>* out) {
    if (auto* v = str(name)) {
      // Absolute: the daemon runs from /.
      *out = v->empty() ? std::string() : std::filesystem::absolute(*v).lexically_normal().string();
    }
  };
  if (vm.count("fuse-transport")) g.fuse_transport = vm["fuse-transport"].as<std::string>();
  path("profile", &g.profile);
  path("record-profile", &g.record_profile);
  if (vm.count("-o")) {
    // Empty values only say "-o was given": -o '' clears the stored options.
    std::string joined;
    for (const auto& one : vm["-o"].as<std::vector<std::string>>()) {
      if (!one.empty()) joined += (joined.empty() ? "" : ",") + one;
    }
    g.fuse_options = joined;
  }
  OnOff(vm, "hydration", "no-hydration", &g.hydration_enabled, &r.problems);
  OnOff(vm, "discard-passdown", "no-discard-passdown", &g.discard_passdown, &r.problems);
  OnOff(vm, "direct-io", "buffered", &g.direct_io, &r.problems);
  OnOff(vm, "allow-other", "no-allow-other", &g.allow_other, &r.problems);
  OnOff(vm, "passthrough", "no-passthrough", &g.passthrough, &r.problems);
  OnOff(vm, "copy-on-read", "no-copy-on-read", &g.copy_on_read, &r.problems);
  OnOff(vm, "read-hints", "no-read-hints", &g.read_hints, &r.problems);
  o.reset_settings = vm.count("reset-settings") > 0;
  o.overwrite_dest = vm.count("overwrite-dest") > 0;
  o.foreground = vm.count("foreground") > 0;
  fuse::ApplySettings(g, &o);
  for (auto& p : fuse::ValidateMountOptions(o)) r.problems.push_back(p);
  return r;
}

}  // namespace clonefs::cli
