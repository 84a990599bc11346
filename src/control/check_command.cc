// clonefs check DEST | --metadata DIR [--source PATH] [--dest PATH] [--quiet]
#include <unistd.h>

#include <iostream>
#include <ostream>

#include "control/command_util.h"
#include "control/commands.h"
#include "control/offline.h"

namespace po = boost::program_options;

namespace clonefs::control {
namespace {

constexpr char kUsage[] =
    "clonefs check DEST | --metadata DIR [--source PATH] [--dest PATH] [--quiet]";

const char* KindWord(ProblemKind k) {
  switch (k) {
    case ProblemKind::kCannotOpen: return "cannot open";
    case ProblemKind::kLocked: return "in use";
    case ProblemKind::kCorrupt: return "corrupt";
    case ProblemKind::kMismatch: return "mismatch";
  }
  return "?";
}

}  // namespace

int RunCheckCommand(const std::vector<std::string>& args, const CommandIo& io) {
  std::string dest_arg, metadata;
  CheckOptions o;
  po::options_description desc("Options");
  desc.add_options()
      ("help,h", "show this help")
      ("target", po::value(&dest_arg), "the clone's destination (metadata: DEST.clonefs)")
      ("metadata,m", po::value(&metadata), "the clone's metadata directory")
      ("source", po::value(&o.source),
       "compare this source file or URI (default: the recorded path; a remote source is "
       "contacted only when given here)")
      ("dest", po::value(&o.dest), "compare this dest file (default: the recorded path)")
      ("quiet,q", "print problems only");
  po::positional_options_description pos;
  pos.add("target", 1);
  po::variables_map vm;
  bool help = false;
  if (!ParseArgs("check", kUsage, args, desc, pos, &vm, io, &help)) return kCheckUsage;
  if (help) {
    io.out << "\n" << ExitCodesHelp(kCheckExitCodes);
    return kCheckClean;
  }
  Result<std::string> dir = MetadataDirFor(dest_arg, metadata);
  if (!dir.ok()) {
    io.err << "clonefs check: " << dir.status().message() << "\nusage: " << kUsage << "\n";
    return kCheckUsage;
  }
  o.metadata_dir = *dir;
  CheckResult r = CheckClone(o);
  const bool quiet = vm.count("quiet") != 0;
  if (!quiet) {
    io.out << "checking clone metadata " << o.metadata_dir << "\n";
    for (const std::string& p : r.passed) io.out << "  ok: " << p << "\n";
  }
  bool corrupt = false;
  for (const CheckProblem& p : r.problems) {
    io.out << "  " << KindWord(p.kind) << ": " << p.what << "\n";
    corrupt = corrupt || p.kind == ProblemKind::kCorrupt;
  }
  if (corrupt) io.out << "  what to do: " << DamagedStoreAdvice(o.metadata_dir) << "\n";
  int rc = r.ExitCode();
  if (!quiet || rc != kCheckClean) {
    io.out << (rc == kCheckClean ? "clean" : std::to_string(r.problems.size()) + " problem(s)")
           << "\n";
  }
  return rc;
}

int RunCheckCommand(const std::vector<std::string>& args) {
  return RunCheckCommand(args, CommandIo{std::cout, std::cerr, isatty(1) == 1});
}

}  // namespace clonefs::control
