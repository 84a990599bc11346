// clonefs profile show FILE: prints an access profile (SPEC §10;
// docs/profile-format.md).
#include <cinttypes>
#include <cstdio>

#include "base/hex.h"
#include "command.h"
#include "fuse/exit_codes.h"
#include "profile/profile.h"

namespace clonefs::cli {
namespace {

const char kUsage[] =
    "Usage: clonefs profile show FILE\n\n"
    "Prints the access profile FILE, written by `clonefs mount --record-profile FILE`: the\n"
    "source it belongs to, and the runs of regions in the order the workload first read\n"
    "or wrote them (the order `clonefs mount --profile FILE` hydrates them in).\n\n"
    "Options:\n"
    "  -h [ --help ]         show this help\n\n";

std::string Bytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char out[32];
  std::snprintf(out, sizeof out, u == 0 ? "%.0f %s" : "%.2f %s", v, units[u]);
  return out;
}

}  // namespace

int ProfileCommand(const Args& in) {
  // `show --help` asks for help too, and `show -- FILE` names a FILE that
  // starts with '-'.
  Args args = in;
  const bool help_asked =
      (!args.empty() && (args[0] == "--help" || args[0] == "-h")) ||
      (args.size() == 2 && args[0] == "show" && (args[1] == "--help" || args[1] == "-h"));
  if (help_asked) {
    fputs(kUsage, stdout);
    fputs(ExitCodesHelp(kProfileExitCodes).c_str(), stdout);
    return kExitOk;
  }
  if (args.size() == 3 && args[0] == "show" && args[1] == "--") args.erase(args.begin() + 1);
  if (args.size() == 2 && args[0] == "show" && args[1].size() > 1 && args[1][0] == '-') {
    fprintf(stderr,
            "clonefs: error: unknown option '%s'; usage: clonefs profile show FILE (a FILE "
            "starting with '-': clonefs profile show -- FILE)\n",
            args[1].c_str());
    return kExitUsage;
  }
  if (args.size() != 2 || args[0] != "show") {
    fprintf(stderr, "clonefs: error: %s; usage: clonefs profile show FILE\n",
            args.empty() ? "no subcommand given" : "expected 'show FILE'");
    return kExitUsage;
  }
  const std::string& path = args[1];
  auto p = profile::Load(path);
  if (!p.ok()) {
    fprintf(stderr, "clonefs: error: %s\n", p.status().message().c_str());
    return kExitFailure;
  }
  const uint64_t rs = p->region_size;
  printf("Profile:      %s\n", path.c_str());
  printf("Source:       %" PRIu64 " bytes (%s), fingerprints %s %s\n", p->source.size,
         Bytes(p->source.size).c_str(), FingerprintHex(p->source.fp1).c_str(),
         FingerprintHex(p->source.fp2).c_str());
  printf("Region size:  %s\n", Bytes(rs).c_str());
  printf("Regions:      %" PRIu64 " (%s) in %zu runs\n", p->regions(),
         Bytes(p->regions() * rs).c_str(), p->runs.size());
  printf("Runs, in the order first touched (first region, regions, bytes of the image):\n");
  for (size_t i = 0; i < p->runs.size(); ++i) {
    const RegionRun& r = p->runs[i];
    printf("  %6zu  %" PRIu64 " +%" PRIu64 "  [%" PRIu64 ", %" PRIu64 ")\n", i + 1, r.first,
           r.count, r.first * rs, r.end() * rs);
  }
  return kExitOk;
}

}  // namespace clonefs::cli
