#include "base/printable.h"

#include <cstdio>

namespace clonefs {
namespace {

bool IsControl(unsigned char c) { return c < 0x20 || c == 0x7f; }

}  // namespace

std::string Printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (IsControl(c)) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

bool HasControlCharacter(std::string_view s) {
  for (unsigned char c : s) {
    if (IsControl(c)) return true;
  }
  return false;
}

}  // namespace clonefs
