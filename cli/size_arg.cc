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

}  // namespace clonefs::cli
