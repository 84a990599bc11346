// The control channel's JSON reader (JsonValue::Parse), which reads the status
// documents a daemon sends.
// Checks: a parsed value written back (strings through JsonEscape, numbers as
// their kept source text) parses to an equal value; a number that AsUint64
// accepts is exactly the decimal text it came from.
#include <string>

#include "control/json.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {
namespace {

using control::JsonValue;

void Write(const JsonValue& v, std::string* out) {
  switch (v.type()) {
    case JsonValue::Type::kNull:
      *out += "null";
      break;
    case JsonValue::Type::kBool:
      *out += v.AsBool() ? "true" : "false";
      break;
    case JsonValue::Type::kNumber:
      *out += v.AsString();
      break;
    case JsonValue::Type::kString:
      *out += '"' + control::JsonEscape(v.AsString()) + '"';
      break;
    case JsonValue::Type::kArray: {
      *out += '[';
      for (size_t i = 0; i < v.items().size(); ++i) {
        if (i > 0) *out += ',';
        Write(v.items()[i], out);
      }
      *out += ']';
      break;
    }
    case JsonValue::Type::kObject: {
      *out += '{';
      for (size_t i = 0; i < v.members().size(); ++i) {
        if (i > 0) *out += ',';
        *out += '"' + control::JsonEscape(v.members()[i].first) + "\":";
        Write(v.members()[i].second, out);
      }
      *out += '}';
      break;
    }
  }
}

bool Equal(const JsonValue& a, const JsonValue& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case JsonValue::Type::kNull:
      return true;
    case JsonValue::Type::kBool:
      return a.AsBool() == b.AsBool();
    case JsonValue::Type::kNumber:
    case JsonValue::Type::kString:
      return a.AsString() == b.AsString();
    case JsonValue::Type::kArray:
      if (a.items().size() != b.items().size()) return false;
      for (size_t i = 0; i < a.items().size(); ++i) {
        if (!Equal(a.items()[i], b.items()[i])) return false;
      }
      return true;
    case JsonValue::Type::kObject:
      if (a.members().size() != b.members().size()) return false;
      for (size_t i = 0; i < a.members().size(); ++i) {
        if (a.members()[i].first != b.members()[i].first) return false;
        if (!Equal(a.members()[i].second, b.members()[i].second)) return false;
      }
      return true;
  }
  return false;
}

void CheckNumbers(const JsonValue& v) {
  if (v.is_number()) {
    Result<uint64_t> n = v.AsUint64();
    if (n.ok()) FUZZ_CHECK(std::to_string(*n) == v.AsString());
  }
  for (const JsonValue& item : v.items()) CheckNumbers(item);
  for (const auto& m : v.members()) {
    FUZZ_CHECK(v.Find(m.first) == &m.second);  // keys are unique
    CheckNumbers(m.second);
  }
}

}  // namespace

void FuzzOne(std::string_view input) {
  Result<JsonValue> v = JsonValue::Parse(input);
  if (!v.ok()) return;
  CheckNumbers(*v);
  std::string text;
  Write(*v, &text);
  Result<JsonValue> again = JsonValue::Parse(text);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(Equal(*v, *again));
}

}  // namespace clonefs::fuzz
