#include "control/status_report.h"

#include <time.h>

#include <cstring>
#include <algorithm>

#include "control/json.h"
#include "control/units.h"
#include "metadata/metadata.h"

namespace clonefs::control {

const char* ModeWord(EngineMode m) {
  switch (m) {
    case EngineMode::kReadWrite: return "rw";
    case EngineMode::kReadOnly: return "ro";
    case EngineMode::kFail: return "Fail";
  }
  return "?";
}

double StatusReport::HydratedPercent() const {
  return static_cast<double>(FlooredPercent(hydrated_bytes, image_size, 4)) / 10000.0;
}

std::string StatusReport::State() const {
  if (!live) return hydration_done ? "complete" : "incomplete";
  if (mode == EngineMode::kFail) return "failed";
  if (!source_change.empty()) return "source-changed";
  if (mode == EngineMode::kReadOnly) return "read-only";
  if (hydration_done) return "complete";
  if (!knobs.hydration_enabled || knobs.hydration_threshold == 0) return "paused";
  return "hydrating";
}

namespace {

uint64_t CeilDiv(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

}  // namespace

Eta EstimateEta(const EngineStats& s) {
  const uint64_t remaining = s.image_size > s.hydrated_bytes ? s.image_size - s.hydrated_bytes : 0;
  if (remaining == 0 || s.hydration_done) return Eta{0, ""};
  if (!s.copy_stopped.empty()) return Eta{std::nullopt, s.copy_stopped};
  const uint64_t to_copy = std::min(s.remaining_copy_bytes, remaining);
  const uint64_t to_zero = remaining - to_copy;
  uint64_t rate = s.copy_rate_bytes_per_s;
  if (s.knobs.rate_bytes_per_s != 0) rate = std::min(rate, s.knobs.rate_bytes_per_s);
  uint64_t secs = s.zero_rate_bytes_per_s != 0 ? CeilDiv(to_zero, s.zero_rate_bytes_per_s) : 0;
  if (to_copy == 0) return Eta{secs, ""};
  if (rate == 0) {
    return Eta{std::nullopt, s.copy_failures != 0 ? "copies failing, retrying" : "measuring"};
  }
  return Eta{secs + CeilDiv(to_copy, rate), ""};
}

std::string HealthOf(const EngineStats& s) {
  if (s.mode == EngineMode::kFail) return "failed: metadata failed";
  if (!s.source_change.empty()) return "failed: source changed";
  if (s.mode == EngineMode::kReadOnly) return "degraded: metadata read-only";
  if (s.dest_condition == DestCondition::kFull) return "degraded: dest full";
  if (s.dest_condition == DestCondition::kIoError) return "degraded: dest I/O error";
  if (s.source_health.state == SourceHealth::State::kReconnecting ||
      s.copier_pause == "source down") {
    return "degraded: source unreachable";
  }
  if (s.source_health.state == SourceHealth::State::kStalled) return "degraded: source stalled";
  if (s.copier_pause == "source failing") return "degraded: source read errors";
  return "ok";
}

StatusReport BuildLiveReport(const EngineStats& s, const ControlInfo& info, uint64_t pid,
                             uint64_t uptime_s) {
  StatusReport r;
  r.live = true;
  r.pid = pid;
  r.uptime_s = uptime_s;
  r.info = info;
  r.mode = s.mode;
  r.image_size = s.image_size;
  r.region_size = s.region_size;
  r.nr_regions = s.nr_regions;
  r.hydrated_regions = s.hydrated_regions;
  r.committed_hydrated_regions = s.committed_hydrated_regions;
  r.hydrating_regions = s.hydrating_regions;
  r.hydrated_bytes = s.hydrated_bytes;
  r.bytes_copied = s.bytes_copied;
  r.bytes_zeroed = s.bytes_zeroed;
  r.copy_rate_bytes_per_s = s.copy_rate_bytes_per_s;
  r.zero_rate_bytes_per_s = s.zero_rate_bytes_per_s;
  r.copy_rate_window_s = s.copy_rate_window_ns / 1'000'000'000ull;
  r.remaining_copy_bytes = s.remaining_copy_bytes;
  r.hydration_done = s.hydration_done;
  r.knobs = s.knobs;
  r.discard_passdown = s.discard_passdown;
  r.copy_failures = s.copy_failures;
  r.commit_failures = s.commit_failures;
  r.commits = s.commits;
  r.metadata_used_blocks = s.metadata_space.used_blocks;
  r.metadata_total_blocks = s.metadata_space.total_blocks;
  uint64_t remaining = s.image_size > s.hydrated_bytes ? s.image_size - s.hydrated_bytes : 0;
  r.source_change = s.source_change;
  r.source_health = s.source_health;
  r.health = HealthOf(s);
  r.last_error = s.last_error;
  const Eta eta = EstimateEta(s);
  r.eta_s = eta.seconds;
  r.eta_reason = eta.reason;
  ReadDrivenReport& d = r.read_driven;
  d.copy_on_read = s.copy_on_read;
  d.read_hints = s.read_hints;
  d.user_source_bytes = s.user_source_bytes;
  d.copier_source_bytes = s.copier_source_bytes;
  d.ahead_source_bytes = s.ahead_source_bytes;
  d.near_source_bytes = s.near_source_bytes;
  d.ahead_regions = s.ahead_regions;
  d.near_regions = s.near_regions;
  d.profile_regions = s.profile_regions;
  d.cursor_regions = s.cursor_regions;
  d.cor_regions = s.cor_regions;
  d.sequential_readers = s.sequential_readers;
  d.near_hints = s.near_hints;
  d.profile_hydrated = s.profile_hydrated;
  d.profile_total = s.profile_total;
  d.record_profile = s.record_profile_path;
  d.profile_recorded = s.profile_recorded;
  if (!r.source_change.empty() && remaining != 0 && r.eta_s.has_value()) {
    r.eta_s.reset();  // copying has stopped
    r.eta_reason = "source changed";
  }
  return r;
}

namespace {

void OptString(JsonWriter& w, const char* key, const std::string& v) {
  w.Key(key);
  if (v.empty()) {
    w.Null();
  } else {
    w.String(v);
  }
}

// Live-only unsigned field: the value when live, null offline.
void LiveUint(JsonWriter& w, bool live, const char* key, uint64_t v) {
  w.Key(key);
  if (live) {
    w.Uint(v);
  } else {
    w.Null();
  }
}

// "2026-11-28T21:05:23Z" (ISO 8601, UTC, whole seconds).
std::string IsoTime(uint64_t unix_ns) {
  const time_t t = static_cast<time_t>(unix_ns / 1'000'000'000ull);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The inverse of IsoTime; false if `s` is not in that form.
bool ParseIsoTime(const std::string& s, uint64_t* unix_ns) {
  struct tm tm;
  std::memset(&tm, 0, sizeof(tm));
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0') return false;
  const time_t t = timegm(&tm);
  if (t < 0) return false;
  *unix_ns = static_cast<uint64_t>(t) * 1'000'000'000ull;
  return true;
}

void WriteLastError(JsonWriter& w, const LastError& e) {
  if (e.empty()) {
    w.Null();
    return;
  }
  w.BeginObject();
  w.Key("kind").String(ErrorKindName(e.kind));
  w.Key("what").String(e.what);
  w.Key("errno").Int(e.err);
  const char* name = e.err != 0 ? strerrorname_np(e.err) : nullptr;
  w.Key("errno_name");
  if (name != nullptr) {
    w.String(name);
  } else {
    w.Null();
  }
  w.Key("time").String(IsoTime(e.unix_ns));
  w.Key("count").Uint(e.count);
  w.EndObject();
}

}  // namespace

std::string ReportToJson(const StatusReport& r, int indent) {
  JsonWriter w(indent);
  const bool L = r.live;
  w.BeginObject();
  w.Key("schema_version").Int(r.schema_version);
  w.Key("live").Bool(L);
  LiveUint(w, L, "pid", r.pid);
  LiveUint(w, L, "uptime_seconds", r.uptime_s);
  OptString(w, "mountpoint", r.info.mountpoint);
  OptString(w, "source", r.info.source);
  OptString(w, "dest", r.info.dest);
  OptString(w, "metadata", r.info.metadata_dir);
  OptString(w, "uuid", r.info.uuid);
  OptString(w, "log", r.info.log_file);
  OptString(w, "name", r.info.name);
  w.Key("mode");
  if (L) {
    w.String(ModeWord(r.mode));
  } else {
    w.Null();
  }
  w.Key("state").String(r.State());
  w.Key("source_state");
  if (L) {
    w.String(r.SourceState());
  } else {
    w.Null();
  }
  OptString(w, "source_change", r.source_change);
  w.Key("source_connection");
  if (L) {
    const SourceHealth& h = r.source_health;
    w.BeginObject();
    w.Key("state").String(SourceStateName(h.state));
    w.Key("since_unix_s");
    if (h.since_unix_ns != 0 && !h.up()) {
      w.Uint(h.since_unix_ns / 1'000'000'000ull);
    } else {
      w.Null();
    }
    OptString(w, "last_error", h.last_error);
    w.Key("last_error_unix_s");
    if (h.last_error_unix_ns != 0) {
      w.Uint(h.last_error_unix_ns / 1'000'000'000ull);
    } else {
      w.Null();
    }
    w.Key("errors").Uint(h.errors);
    w.Key("retries").Uint(h.retries);
    w.Key("reconnects").Uint(h.reconnects);
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("health");
  if (L) {
    w.String(r.health);
  } else {
    w.Null();
  }
  w.Key("last_error");
  if (L) {
    WriteLastError(w, r.last_error);
  } else {
    w.Null();
  }
  w.Key("hydration_done").Bool(r.hydration_done);
  w.Key("image_size").Uint(r.image_size);
  w.Key("region_size").Uint(r.region_size);
  w.Key("regions").BeginObject();
  w.Key("total").Uint(r.nr_regions);
  w.Key("hydrated").Uint(r.hydrated_regions);
  w.Key("committed").Uint(r.committed_hydrated_regions);
  LiveUint(w, L, "hydrating", r.hydrating_regions);
  w.EndObject();
  w.Key("bytes").BeginObject();
  w.Key("total").Uint(r.image_size);
  w.Key("hydrated").Uint(r.hydrated_bytes);
  w.Key("remaining").Uint(r.image_size > r.hydrated_bytes ? r.image_size - r.hydrated_bytes : 0);
  LiveUint(w, L, "copied", r.bytes_copied);
  LiveUint(w, L, "zeroed", r.bytes_zeroed);
  LiveUint(w, L, "remaining_copy", r.remaining_copy_bytes);
  w.EndObject();
  w.Key("hydrated_percent").Double(r.HydratedPercent());
  LiveUint(w, L, "copy_rate_bytes_per_s", r.copy_rate_bytes_per_s);
  LiveUint(w, L, "zero_rate_bytes_per_s", r.zero_rate_bytes_per_s);
  LiveUint(w, L, "copy_rate_window_seconds", r.copy_rate_window_s);
  w.Key("eta_seconds");
  if (L && r.eta_s.has_value()) {
    w.Uint(*r.eta_s);
  } else {
    w.Null();
  }
  OptString(w, "eta_reason", L ? r.eta_reason : std::string());
  w.Key("knobs");
  if (L) {
    w.BeginObject();
    w.Key("hydration_enabled").Bool(r.knobs.hydration_enabled);
    w.Key("hydration_threshold").Uint(r.knobs.hydration_threshold);
    w.Key("hydration_batch_size").Uint(r.knobs.hydration_batch_size);
    w.Key("rate_bytes_per_s").Uint(r.knobs.rate_bytes_per_s);
    w.Key("discard_passdown").Bool(r.discard_passdown);
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("failures");
  if (L) {
    w.BeginObject();
    w.Key("copy").Uint(r.copy_failures);
    w.Key("commit").Uint(r.commit_failures);
    w.EndObject();
  } else {
    w.Null();
  }
  LiveUint(w, L, "commits", r.commits);
  w.Key("read_driven");
  if (L) {
    const ReadDrivenReport& d = r.read_driven;
    w.BeginObject();
    w.Key("copy_on_read").Bool(d.copy_on_read);
    w.Key("read_hints").Bool(d.read_hints);
    w.Key("source_bytes").BeginObject();
    w.Key("users").Uint(d.user_source_bytes);
    w.Key("copier").Uint(d.copier_source_bytes);
    w.Key("copier_read_ahead").Uint(d.ahead_source_bytes);
    w.Key("copier_near_reads").Uint(d.near_source_bytes);
    w.EndObject();
    w.Key("regions_hydrated_by").BeginObject();
    w.Key("read_ahead").Uint(d.ahead_regions);
    w.Key("near_reads").Uint(d.near_regions);
    w.Key("profile").Uint(d.profile_regions);
    w.Key("cursor").Uint(d.cursor_regions);
    w.Key("copy_on_read").Uint(d.cor_regions);
    w.EndObject();
    w.Key("sequential_readers").Uint(d.sequential_readers);
    w.Key("near_hints").Uint(d.near_hints);
    w.Key("profile");
    if (d.profile_total != 0) {
      w.BeginObject();
      w.Key("hydrated_regions").Uint(d.profile_hydrated);
      w.Key("total_regions").Uint(d.profile_total);
      w.EndObject();
    } else {
      w.Null();
    }
    w.Key("recording_profile");
    if (!d.record_profile.empty()) {
      w.BeginObject();
      w.Key("path").String(d.record_profile);
      w.Key("regions").Uint(d.profile_recorded);
      w.EndObject();
    } else {
      w.Null();
    }
    w.EndObject();
  } else {
    w.Null();
  }
  // The FUSE layer: null offline and from a daemon that does not say.
  const bool has_fuse = L && !r.fuse.passthrough.empty();
  OptString(w, "passthrough", has_fuse ? r.fuse.passthrough : std::string());
  w.Key("fuse");
  if (has_fuse) {
    w.BeginObject();
    w.Key("opens").Uint(r.fuse.opens);
    w.Key("passthrough_opens").Uint(r.fuse.passthrough_opens);
    w.Key("read_requests").Uint(r.fuse.read_requests);
    w.Key("write_requests").Uint(r.fuse.write_requests);
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("metadata_space").BeginObject();
  w.Key("block_size").Uint(metadata::kMetadataBlockSize);
  w.Key("used_blocks").Uint(r.metadata_used_blocks);
  w.Key("total_blocks").Uint(r.metadata_total_blocks);
  w.EndObject();
  w.Key("settings").BeginObject();
  for (const auto& [k, v] : clone::ToPairs(r.settings)) w.Key(k).String(v);
  w.EndObject();
  OptString(w, "settings_error", r.settings_error);
  w.EndObject();
  std::string out = w.str();
  out += '\n';
  return out;
}

namespace {

// Field readers: each fails with the dotted path of the field.
class Reader {
 public:
  explicit Reader(const JsonValue& root) : root_(root) {}

  const JsonValue* Get(const JsonValue& obj, const std::string& path, const char* key) {
    const JsonValue* v = obj.Find(key);
    if (v == nullptr && status_.ok()) {
      status_ = Status::InvalidArgument("status JSON: missing field '" + path + key + "'");
    }
    return v;
  }
  uint64_t U64(const JsonValue& obj, const std::string& path, const char* key) {
    const JsonValue* v = Get(obj, path, key);
    if (v == nullptr) return 0;
    Result<uint64_t> n = v->AsUint64();
    if (!n.ok()) {
      Fail(path + key, "an unsigned integer");
      return 0;
    }
    return *n;
  }
  // Null allowed (returns nullopt).
  std::optional<uint64_t> OptU64(const JsonValue& obj, const std::string& path, const char* key) {
    const JsonValue* v = Get(obj, path, key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    return U64(obj, path, key);
  }
  // A wall-clock time in seconds (null allowed: 0), as nanoseconds; a time
  // whose nanoseconds do not fit 64 bits is not one this clonefs writes.
  uint64_t OptSecondsAsNs(const JsonValue& obj, const std::string& path, const char* key) {
    constexpr uint64_t kNs = 1'000'000'000ull;
    const uint64_t s = OptU64(obj, path, key).value_or(0);
    if (s > UINT64_MAX / kNs) {
      Fail(path + key, "a time in seconds since 1970 (at most 18446744073)");
      return 0;
    }
    return s * kNs;
  }
  bool Bool(const JsonValue& obj, const std::string& path, const char* key) {
    const JsonValue* v = Get(obj, path, key);
    if (v == nullptr) return false;
    if (!v->is_bool()) Fail(path + key, "a boolean");
    return v->AsBool();
  }
  std::string OptStr(const JsonValue& obj, const std::string& path, const char* key) {
    const JsonValue* v = Get(obj, path, key);
    if (v == nullptr || v->is_null()) return "";
    if (!v->is_string()) Fail(path + key, "a string");
    return v->AsString();
  }
  const JsonValue* Obj(const JsonValue& obj, const std::string& path, const char* key,
                       bool nullable) {
    const JsonValue* v = Get(obj, path, key);
    if (v == nullptr) return nullptr;
    if (nullable && v->is_null()) return nullptr;
    if (!v->is_object()) {
      Fail(path + key, "an object");
      return nullptr;
    }
    return v;
  }
  void Fail(const std::string& field, const char* expected) {
    if (status_.ok()) {
      status_ = Status::InvalidArgument("status JSON: field '" + field + "' is not " + expected);
    }
  }
  const Status& status() const { return status_; }
  const JsonValue& root() const { return root_; }

 private:
  const JsonValue& root_;
  Status status_;
};

}  // namespace

Result<StatusReport> ReportFromJson(const JsonValue& doc) {
  if (!doc.is_object()) return Status::InvalidArgument("status JSON: not an object");
  Reader rd(doc);
  StatusReport r;
  uint64_t version = rd.U64(doc, "", "schema_version");
  if (!rd.status().ok()) return rd.status();
  if (version > static_cast<uint64_t>(kStatusSchemaVersion)) {
    return Status::NotSupported("status JSON schema_version " + std::to_string(version) +
                                " is newer than this client understands (" +
                                std::to_string(kStatusSchemaVersion) + ")");
  }
  r.schema_version = static_cast<int>(version);
  r.live = rd.Bool(doc, "", "live");
  r.pid = rd.OptU64(doc, "", "pid").value_or(0);
  r.uptime_s = rd.OptU64(doc, "", "uptime_seconds").value_or(0);
  r.info.mountpoint = rd.OptStr(doc, "", "mountpoint");
  r.info.source = rd.OptStr(doc, "", "source");
  r.info.dest = rd.OptStr(doc, "", "dest");
  r.info.metadata_dir = rd.OptStr(doc, "", "metadata");
  r.info.uuid = rd.OptStr(doc, "", "uuid");
  r.info.log_file = rd.OptStr(doc, "", "log");
  std::string mode = rd.OptStr(doc, "", "mode");
  if (mode == "rw" || mode.empty()) {
    r.mode = EngineMode::kReadWrite;
  } else if (mode == "ro") {
    r.mode = EngineMode::kReadOnly;
  } else if (mode == "Fail") {
    r.mode = EngineMode::kFail;
  } else {
    rd.Fail("mode", "one of rw, ro, Fail");
  }
  // Added after schema 1 was published: absent from older daemons' documents.
  if (doc.Find("source_change") != nullptr) r.source_change = rd.OptStr(doc, "", "source_change");
  if (const JsonValue* v = doc.Find("source_connection"); v != nullptr && !v->is_null()) {
    if (const JsonValue* o = rd.Obj(doc, "", "source_connection", false)) {
      SourceHealth& h = r.source_health;
      const std::string state = rd.OptStr(*o, "source_connection.", "state");
      if (state == "connected") {
        h.state = SourceHealth::State::kConnected;
      } else if (state == "reconnecting") {
        h.state = SourceHealth::State::kReconnecting;
      } else if (state == "stalled") {
        h.state = SourceHealth::State::kStalled;
      } else {
        rd.Fail("source_connection.state", "one of connected, reconnecting, stalled");
      }
      h.since_unix_ns = rd.OptSecondsAsNs(*o, "source_connection.", "since_unix_s");
      h.last_error = rd.OptStr(*o, "source_connection.", "last_error");
      h.last_error_unix_ns = rd.OptSecondsAsNs(*o, "source_connection.", "last_error_unix_s");
      h.errors = rd.U64(*o, "source_connection.", "errors");
      h.retries = rd.U64(*o, "source_connection.", "retries");
      h.reconnects = rd.U64(*o, "source_connection.", "reconnects");
    }
  }
  // Schema 2: absent from older daemons' documents.
  if (doc.Find("health") != nullptr) r.health = rd.OptStr(doc, "", "health");
  if (const JsonValue* v = doc.Find("last_error"); v != nullptr && !v->is_null()) {
    if (const JsonValue* o = rd.Obj(doc, "", "last_error", false)) {
      LastError& e = r.last_error;
      const std::string p = "last_error.";
      if (!ParseErrorKind(rd.OptStr(*o, p, "kind"), &e.kind) || e.kind == ErrorKind::kNone) {
        rd.Fail("last_error.kind", "one of dest-full, dest-io, source, metadata");
      }
      e.what = rd.OptStr(*o, p, "what");
      const uint64_t err = rd.U64(*o, p, "errno");
      if (err > 4095) rd.Fail("last_error.errno", "an errno value");
      e.err = static_cast<int>(err);
      const std::string when = rd.OptStr(*o, p, "time");
      if (!ParseIsoTime(when, &e.unix_ns)) rd.Fail("last_error.time", "an ISO 8601 UTC time");
      e.count = rd.U64(*o, p, "count");
    }
  }
  r.hydration_done = rd.Bool(doc, "", "hydration_done");
  r.image_size = rd.U64(doc, "", "image_size");
  r.region_size = rd.U64(doc, "", "region_size");
  if (const JsonValue* o = rd.Obj(doc, "", "regions", false)) {
    r.nr_regions = rd.U64(*o, "regions.", "total");
    r.hydrated_regions = rd.U64(*o, "regions.", "hydrated");
    r.committed_hydrated_regions = rd.U64(*o, "regions.", "committed");
    r.hydrating_regions = rd.OptU64(*o, "regions.", "hydrating").value_or(0);
  }
  if (const JsonValue* o = rd.Obj(doc, "", "bytes", false)) {
    r.hydrated_bytes = rd.U64(*o, "bytes.", "hydrated");
    r.bytes_copied = rd.OptU64(*o, "bytes.", "copied").value_or(0);
    r.bytes_zeroed = rd.OptU64(*o, "bytes.", "zeroed").value_or(0);
    // Version 2; a version-1 document counts every remaining byte.
    r.remaining_copy_bytes = o->Find("remaining_copy") != nullptr
                                 ? rd.OptU64(*o, "bytes.", "remaining_copy").value_or(0)
                                 : (r.image_size > r.hydrated_bytes ? r.image_size - r.hydrated_bytes
                                                                    : 0);
  }
  r.copy_rate_bytes_per_s = rd.OptU64(doc, "", "copy_rate_bytes_per_s").value_or(0);
  // Version 2 (absent from version-1 documents).
  if (doc.Find("zero_rate_bytes_per_s") != nullptr) {
    r.zero_rate_bytes_per_s = rd.OptU64(doc, "", "zero_rate_bytes_per_s").value_or(0);
  }
  if (doc.Find("copy_rate_window_seconds") != nullptr) {
    r.copy_rate_window_s = rd.OptU64(doc, "", "copy_rate_window_seconds").value_or(0);
  }
  r.eta_s = rd.OptU64(doc, "", "eta_seconds");
  if (doc.Find("eta_reason") != nullptr) r.eta_reason = rd.OptStr(doc, "", "eta_reason");
  if (const JsonValue* o = rd.Obj(doc, "", "knobs", true)) {
    r.knobs.hydration_enabled = rd.Bool(*o, "knobs.", "hydration_enabled");
    uint64_t t = rd.U64(*o, "knobs.", "hydration_threshold");
    uint64_t b = rd.U64(*o, "knobs.", "hydration_batch_size");
    if (t > UINT32_MAX) rd.Fail("knobs.hydration_threshold", "a 32-bit value");
    if (b > UINT32_MAX) rd.Fail("knobs.hydration_batch_size", "a 32-bit value");
    r.knobs.hydration_threshold = static_cast<uint32_t>(t);
    r.knobs.hydration_batch_size = static_cast<uint32_t>(b);
    r.knobs.rate_bytes_per_s = rd.U64(*o, "knobs.", "rate_bytes_per_s");
    r.discard_passdown = rd.Bool(*o, "knobs.", "discard_passdown");
  }
  if (const JsonValue* o = rd.Obj(doc, "", "failures", true)) {
    r.copy_failures = rd.U64(*o, "failures.", "copy");
    r.commit_failures = rd.U64(*o, "failures.", "commit");
  }
  r.commits = rd.OptU64(doc, "", "commits").value_or(0);
  // Added after schema version 1 first shipped: absent from older daemons.
  if (const JsonValue* o = doc.Find("read_driven"); o != nullptr && !o->is_null()) {
    ReadDrivenReport& d = r.read_driven;
    const std::string p = "read_driven.";
    d.copy_on_read = rd.Bool(*o, p, "copy_on_read");
    d.read_hints = rd.Bool(*o, p, "read_hints");
    if (const JsonValue* b = rd.Obj(*o, p, "source_bytes", false)) {
      const std::string q = p + "source_bytes.";
      d.user_source_bytes = rd.U64(*b, q, "users");
      d.copier_source_bytes = rd.U64(*b, q, "copier");
      d.ahead_source_bytes = rd.U64(*b, q, "copier_read_ahead");
      d.near_source_bytes = rd.U64(*b, q, "copier_near_reads");
    }
    if (const JsonValue* b = rd.Obj(*o, p, "regions_hydrated_by", false)) {
      const std::string q = p + "regions_hydrated_by.";
      d.ahead_regions = rd.U64(*b, q, "read_ahead");
      d.near_regions = rd.U64(*b, q, "near_reads");
      d.profile_regions = rd.U64(*b, q, "profile");
      d.cursor_regions = rd.U64(*b, q, "cursor");
      d.cor_regions = rd.U64(*b, q, "copy_on_read");
    }
    d.sequential_readers = rd.U64(*o, p, "sequential_readers");
    d.near_hints = rd.U64(*o, p, "near_hints");
    if (const JsonValue* b = rd.Obj(*o, p, "profile", true)) {
      d.profile_hydrated = rd.U64(*b, p + "profile.", "hydrated_regions");
      d.profile_total = rd.U64(*b, p + "profile.", "total_regions");
    }
    if (const JsonValue* b = rd.Obj(*o, p, "recording_profile", true)) {
      d.record_profile = rd.OptStr(*b, p + "recording_profile.", "path");
      d.profile_recorded = rd.U64(*b, p + "recording_profile.", "regions");
    }
  }
  // Added without a schema bump (informational): absent from older daemons.
  if (doc.Find("passthrough") != nullptr) r.fuse.passthrough = rd.OptStr(doc, "", "passthrough");
  if (const JsonValue* o = doc.Find("fuse"); o != nullptr && !o->is_null()) {
    if (rd.Obj(doc, "", "fuse", false) != nullptr) {
      r.fuse.opens = rd.U64(*o, "fuse.", "opens");
      r.fuse.passthrough_opens = rd.U64(*o, "fuse.", "passthrough_opens");
      r.fuse.read_requests = rd.U64(*o, "fuse.", "read_requests");
      r.fuse.write_requests = rd.U64(*o, "fuse.", "write_requests");
    }
  }
  if (const JsonValue* o = rd.Obj(doc, "", "metadata_space", false)) {
    r.metadata_used_blocks = rd.U64(*o, "metadata_space.", "used_blocks");
    r.metadata_total_blocks = rd.U64(*o, "metadata_space.", "total_blocks");
  }
  // Added after schema version 1 first shipped: absent from older daemons.
  if (const JsonValue* v = doc.Find("name"); v != nullptr && v->is_string()) {
    r.info.name = v->AsString();
  }
  if (const JsonValue* v = doc.Find("settings_error"); v != nullptr && v->is_string()) {
    r.settings_error = v->AsString();
  }
  if (const JsonValue* o = doc.Find("settings"); o != nullptr && !o->is_null()) {
    std::vector<std::pair<std::string, std::string>> pairs;
    if (!o->is_object()) rd.Fail("settings", "an object");
    for (const auto& [k, v] : o->members()) {
      if (!v.is_string()) rd.Fail("settings." + k, "a string");
      pairs.emplace_back(k, v.AsString());
    }
    Result<clone::Settings> st = clone::FromPairs(pairs);
    if (st.ok()) {
      r.settings = std::move(st).value();
    } else if (rd.status().ok()) {
      return Status::InvalidArgument("status JSON: field 'settings': " + st.status().message());
    }
  }
  if (!rd.status().ok()) return rd.status();
  return r;
}

Result<StatusReport> ReportFromJsonText(const std::string& text) {
  Result<JsonValue> doc = JsonValue::Parse(text);
  if (!doc.ok()) return doc.status();
  return ReportFromJson(*doc);
}

}  // namespace clonefs::control
