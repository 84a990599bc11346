#include "size_arg.h"

#include <cctype>

namespace clonefs::cli {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

std::optional<uint64_t> ParseCount(const std::string& text, uint64_t max) {
  if (text.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (d > max || v > (max - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<uint64_t> ParseSeconds(const std::string& text) {
  constexpr uint64_t kMaxMs = 86'400'000;
  std::string s = Lower(text);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "ms") == 0) {
    auto n = ParseCount(s.substr(0, s.size() - 2), kMaxMs);
    return n;
  }
  if (s.size() > 1 && s.back() == 's') s.pop_back();
  const size_t dot = s.find('.');
  const std::string whole = s.substr(0, dot);
  std::string frac = dot == std::string::npos ? "" : s.substr(dot + 1);
  if (frac.size() > 3 || (dot != std::string::npos && frac.empty())) return std::nullopt;
  auto w = ParseCount(whole, kMaxMs / 1000);
  if (!w) return std::nullopt;
  uint64_t ms = *w * 1000;
  if (!frac.empty()) {
    while (frac.size() < 3) frac += '0';
    auto f = ParseCount(frac, 999);
    if (!f) return std::nullopt;
    ms += *f;
  }
  if (ms > kMaxMs) return std::nullopt;
  return ms;
}

std::optional<uint64_t> ParseSize(const std::string& text) {
  std::string s = Lower(text);
  if (s.size() > 2 && s.compare(s.size() - 2, 2, "/s") == 0) s.resize(s.size() - 2);
  size_t digits = 0;
  while (digits < s.size() && std::isdigit(static_cast<unsigned char>(s[digits]))) ++digits;
  if (digits == 0) return std::nullopt;
  const std::string suffix = s.substr(digits);
  int shift = 0;
  if (suffix.empty() || suffix == "b") {
    shift = 0;
  } else {
    const char unit = suffix[0];
    const std::string rest = suffix.substr(1);
    if (!(rest.empty() || rest == "b" || rest == "ib")) return std::nullopt;
    switch (unit) {
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      case 'p': shift = 50; break;
      default: return std::nullopt;
    }
  }
  auto n = ParseCount(s.substr(0, digits), UINT64_MAX >> shift);
  if (!n) return std::nullopt;
  return *n << shift;
}

}  // namespace clonefs::cli
