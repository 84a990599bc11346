// "Did you mean": the closest of a list of words to a mistyped one, for the
// command-line messages (an unknown command: `clonefs umount` suggests
// `unmount`).
//
// THREAD SAFETY: pure function.
#pragma once

#include <string>
#include <vector>

namespace clonefs::cli {

// The word of `candidates` nearest to `typed` (Levenshtein distance), if it
// is at most 2 edits away and fewer edits than the typed word has
// characters; else "". Ties go to a word `typed` left letters out of, then
// to the first.
std::string ClosestWord(const std::string& typed, const std::vector<std::string>& candidates);

}  // namespace clonefs::cli
