// clonefs info DEST | --metadata DIR [--json]
#include <unistd.h>

#include <iostream>
#include <ostream>

#include "control/command_util.h"
#include "control/commands.h"
#include "control/offline.h"
#include "control/status_format.h"

namespace po = boost::program_options;

namespace clonefs::control {
namespace {

constexpr char kUsage[] = "clonefs info DEST | --metadata DIR [--json]";

}  // namespace

int RunInfoCommand(const std::vector<std::string>& args, const CommandIo& io) {
  std::string dest, metadata;
  po::options_description desc("Options");
  desc.add_options()
      ("help,h", "show this help")
      ("dest", po::value(&dest), "the clone's destination (metadata: DEST.clonefs)")
      ("metadata,m", po::value(&metadata), "the clone's metadata directory")
      ("json", "print the JSON document (live-only fields are null)");
  po::positional_options_description pos;
  pos.add("dest", 1);
  po::variables_map vm;
  bool help = false;
  if (!ParseArgs("info", kUsage, args, desc, pos, &vm, io, &help)) return kExitUsage;
  if (help) {
    io.out << "\n" << ExitCodesHelp(kInfoExitCodes);
    return kExitOk;
  }
  Result<std::string> dir = MetadataDirFor(dest, metadata);
  if (!dir.ok()) {
    io.err << "clonefs info: " << dir.status().message() << "\nusage: " << kUsage << "\n";
    return kExitUsage;
  }
  Result<StatusReport> r = ReadOfflineReport(*dir);
  if (!r.ok()) {
    io.err << "clonefs info: " << r.status().message() << "\n";
    if (r.status().IsCorruption()) io.err << "what to do: " << DamagedStoreAdvice(*dir) << "\n";
    return r.status().IsBusy() ? kInfoMounted : kExitFailure;
  }
  if (vm.count("json") != 0) {
    io.out << ReportToJson(*r);
    return kExitOk;
  }
  io.out << FormatHuman(*r);
  // The verdict a mount would reach on these files (the check command's
  // comparison, which is the mount's own).
  CheckOptions co;
  co.metadata_dir = *dir;
  co.dest = dest;
  std::vector<std::string> refusals;
  for (const CheckProblem& p : CheckClone(co).problems) {
    if (p.kind == ProblemKind::kMismatch) refusals.push_back(p.what);
  }
  if (refusals.empty()) {
    io.out << "Files:        source and dest are this clone's (a mount would accept them)\n";
  } else {
    io.out << "Files:        a mount would refuse them:\n";
    for (const std::string& w : refusals) io.out << "  " << w << "\n";
  }
  return kExitOk;
}

int RunInfoCommand(const std::vector<std::string>& args) {
  return RunInfoCommand(args, CommandIo{std::cout, std::cerr, isatty(1) == 1});
}

}  // namespace clonefs::control
