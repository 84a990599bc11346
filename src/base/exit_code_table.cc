#include "base/exit_code_table.h"

namespace clonefs {

std::string ExitCodesHelp(std::span<const ExitCodeDoc> codes) {
  std::string out = "Exit codes:\n";
  for (const ExitCodeDoc& c : codes) {
    out += "  " + std::to_string(c.code) + "  " + c.meaning + "\n";
  }
  return out;
}

}  // namespace clonefs
