// The status JSON document as `clonefs status`/`wait`/`info` read it from a
// daemon (ReportFromJsonText: nlohmann/json parses the text, our reader
// takes the fields).
// Checks: any bytes give a Status, never an escaping exception (a number
// beyond a double, deep nesting, bad UTF-8); a document that reads is
// reported faithfully: every field the report writes back (ReportToJson)
// holds the value the input had at the same place (fields computed from
// others, and the stored settings' canonical text, excepted); and the
// written document reads to a report that writes the same document again.
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "control/status_report.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {
namespace {

using Json = nlohmann::json;

// Written from other fields, not read back.
const std::set<std::string> kDerived = {
    "state",       "source_state",    "hydrated_percent",
    "bytes.total", "bytes.remaining", "metadata_space.block_size"};

const Json* At(const Json& root, const std::string& path) {
  const Json* v = &root;
  size_t pos = 0;
  while (v != nullptr && v->is_object()) {
    const size_t dot = path.find('.', pos);
    auto it = v->find(path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos));
    v = it == v->end() ? nullptr : &*it;
    if (dot == std::string::npos) return v;
    pos = dot + 1;
  }
  return nullptr;
}

// Every non-null leaf of `written` under `prefix` equals the input's leaf at
// the same path, when the input has a non-null one there.
void CheckFaithful(const Json& written, const std::string& prefix, const Json& input) {
  for (const auto& [key, v] : written.items()) {
    const std::string path = prefix + key;
    if (kDerived.count(path) != 0 || path == "settings") continue;
    if (v.is_object()) {
      CheckFaithful(v, path + ".", input);
      continue;
    }
    if (v.is_null()) continue;
    const Json* in = At(input, path);
    if (in == nullptr || in->is_null()) continue;
    if (*in != v || in->type() != v.type()) {
      std::fprintf(stderr, "field %s: read %s, reported %s\n", path.c_str(), in->dump().c_str(),
                   v.dump().c_str());
      FUZZ_CHECK(!"a field is reported with another value than it was read with");
    }
  }
}

}  // namespace

void FuzzOne(std::string_view input) {
  // An exception escaping here aborts the run: ReportFromJsonText must turn
  // every problem into a Status.
  Result<control::StatusReport> r = control::ReportFromJsonText(std::string(input));
  if (!r.ok()) return;
  const Json doc = Json::parse(input);  // it read, so it is JSON
  const std::string written = control::ReportToJson(*r);
  const Json written_doc = Json::parse(written, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(!written_doc.is_discarded());
  CheckFaithful(written_doc, "", doc);
  Result<control::StatusReport> again = control::ReportFromJsonText(written);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(control::ReportToJson(*again) == written);
  FUZZ_CHECK(again->settings == r->settings);
}

}  // namespace clonefs::fuzz
