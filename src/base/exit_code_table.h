// A command's exit codes, written once: each command keeps a table of
// ExitCodeDoc next to its exit-code constants, its --help prints that table
// (ExitCodesHelp), and tests/mount/exit_codes_test.cc checks that --help,
// docs/cli.md and docs/control.md list exactly these codes and that the real
// command returns each of them. A new exit code therefore goes into the
// table, the docs and that test together.
//
// THREAD SAFETY: pure.
#pragma once

#include <span>
#include <string>

namespace clonefs {

struct ExitCodeDoc {
  int code;
  const char* meaning;  // a short phrase, e.g. "--timeout elapsed first"
};

// "Exit codes:\n  0  success\n  2  bad command line\n" (the codes in the
// table's order; one line each).
std::string ExitCodesHelp(std::span<const ExitCodeDoc> codes);

}  // namespace clonefs
