// A dm-clone message as words (what `clonefs message` and the daemon both
// parse with ParseMessage). The input is split at spaces, tabs and newlines.
// Checks: a parsed message's values are in their documented ranges, and its
// canonical form (FormatMessage) parses back to the same message.
#include <string>
#include <vector>

#include "control/message.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {
namespace {

std::vector<std::string> Words(std::string_view in) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : in) {
    if (c == ' ' || c == '\t' || c == '\n') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace

void FuzzOne(std::string_view input) {
  using control::Message;
  Result<Message> m = control::ParseMessage(Words(input));
  if (!m.ok()) return;
  switch (m->kind) {
    case Message::Kind::kHydrationThreshold:
      FUZZ_CHECK(m->value <= UINT32_MAX);
      break;
    case Message::Kind::kHydrationBatchSize:
      FUZZ_CHECK(m->value >= 1 && m->value <= UINT32_MAX);
      break;
    case Message::Kind::kCopyOnRead:
    case Message::Kind::kReadHints:
      FUZZ_CHECK(m->value <= 1);
      break;
    case Message::Kind::kEnableHydration:
    case Message::Kind::kDisableHydration:
      FUZZ_CHECK(m->value == 0);
      break;
    case Message::Kind::kRate:
      break;
  }
  Result<Message> again = control::ParseMessage(Words(control::FormatMessage(*m)));
  FUZZ_CHECK(again.ok() && *again == *m);
}

}  // namespace clonefs::fuzz
