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

std::string ShellWord(std::string_view v) {
  if (!v.empty() &&
      v.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                          "_-.,/:=+@%") == std::string_view::npos) {
    return std::string(v);
  }
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace clonefs
