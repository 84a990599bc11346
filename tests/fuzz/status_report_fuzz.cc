// The status JSON document as `clonefs status`/`wait`/`info` read it from a
// daemon (ReportFromJsonText).
// Checks: a document that parses is reported faithfully: every field the
// report writes back (ReportToJson) holds the value the input had at the same
// place (fields computed from others, and the stored settings' canonical
// text, excepted); and the written document parses to a report that writes
// the same document again.
#include <set>
#include <string>

#include "control/json.h"
#include "control/status_report.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {
namespace {

using control::JsonValue;

// Written from other fields, not read back.
const std::set<std::string> kDerived = {
    "state",       "source_state",    "hydrated_percent",
    "bytes.total", "bytes.remaining", "metadata_space.block_size"};

const JsonValue* At(const JsonValue& root, const std::string& path) {
  const JsonValue* v = &root;
  size_t pos = 0;
  while (v != nullptr) {
    const size_t dot = path.find('.', pos);
    v = v->Find(path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos));
    if (dot == std::string::npos) return v;
    pos = dot + 1;
  }
  return nullptr;
}

// Every non-null leaf of `written` under `prefix` equals the input's leaf at
// the same path, when the input has a non-null one there.
void CheckFaithful(const JsonValue& written, const std::string& prefix, const JsonValue& input) {
  for (const auto& [key, v] : written.members()) {
    const std::string path = prefix + key;
    if (kDerived.count(path) != 0 || path == "settings") continue;
    if (v.is_object()) {
      CheckFaithful(v, path + ".", input);
      continue;
    }
    if (v.is_null()) continue;
    const JsonValue* in = At(input, path);
    if (in == nullptr || in->is_null()) continue;
    if (in->type() != v.type() || in->AsString() != v.AsString() || in->AsBool() != v.AsBool()) {
      std::fprintf(stderr, "field %s: read %s, reported %s\n", path.c_str(), in->AsString().c_str(),
                   v.AsString().c_str());
      FUZZ_CHECK(!"a field is reported with another value than it was read with");
    }
  }
}

}  // namespace

void FuzzOne(std::string_view input) {
  Result<JsonValue> doc = JsonValue::Parse(input);
  if (!doc.ok()) return;
  Result<control::StatusReport> r = control::ReportFromJson(*doc);
  if (!r.ok()) return;
  const std::string written = control::ReportToJson(*r);
  Result<JsonValue> written_doc = JsonValue::Parse(written);
  FUZZ_CHECK(written_doc.ok());
  CheckFaithful(*written_doc, "", *doc);
  Result<control::StatusReport> again = control::ReportFromJson(*written_doc);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(control::ReportToJson(*again) == written);
  FUZZ_CHECK(again->settings == r->settings);
}

}  // namespace clonefs::fuzz
