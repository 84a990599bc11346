#include "suggest.h"

#include <algorithm>

namespace clonefs::cli {
namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// Whether every character of `a` appears in `b` in order (letters left out).
bool IsSubsequence(const std::string& a, const std::string& b) {
  size_t i = 0;
  for (char c : b) {
    if (i < a.size() && a[i] == c) ++i;
  }
  return i == a.size();
}

}  // namespace

std::string ClosestWord(const std::string& typed, const std::vector<std::string>& candidates) {
  constexpr size_t kMaxEdits = 2;
  std::string best;
  size_t best_d = kMaxEdits + 1;
  bool best_omits = false;
  for (const std::string& c : candidates) {
    const size_t d = EditDistance(typed, c);
    if (d > kMaxEdits || d >= typed.size()) continue;
    // Equally near: a word the typed one left letters out of wins
    // ("umount" is "unmount" less a letter, not "mount" plus one).
    const bool omits = IsSubsequence(typed, c);
    if (d < best_d || (d == best_d && omits && !best_omits)) {
      best = c;
      best_d = d;
      best_omits = omits;
    }
  }
  return best;
}

}  // namespace clonefs::cli
