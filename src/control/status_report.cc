#include "control/status_report.h"

#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <nlohmann/json.hpp>

#include "base/log.h"
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
  if (!dest_change.empty()) return "dest-changed";
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
  // Every region left is one whose copies fail: no rate says when they end
  // (a smoothed rate still shows the copies before for a while).
  if (s.copy_failing_regions != 0 && s.region_size != 0 &&
      s.copy_failing_regions >= CeilDiv(remaining, s.region_size)) {
    return Eta{std::nullopt, "copies failing, retrying"};
  }
  const uint64_t to_copy = std::min(s.remaining_copy_bytes, remaining);
  const uint64_t to_zero = remaining - to_copy;
  uint64_t rate = s.copy_rate_bytes_per_s;
  if (s.knobs.rate_bytes_per_s != 0) rate = std::min(rate, s.knobs.rate_bytes_per_s);
  uint64_t secs = s.zero_rate_bytes_per_s != 0 ? CeilDiv(to_zero, s.zero_rate_bytes_per_s) : 0;
  if (to_copy == 0) return Eta{secs, ""};
  // Nothing is copied while the source is silent: a rate measured before
  // would promise an end that is not coming (the ETA grew from 38 s to
  // 2m29s as an NBD server stopped answering, then said "measuring" until
  // the timeout dropped the connection, 30 s in).
  // Nor once its link says it is stalled, which a --source-timeout under
  // 10 s says first. (A link that reconnects pauses the copier, whose
  // reason is copy_stopped above.)
  const bool stalled = s.source_health.state == SourceHealth::State::kStalled;
  if (stalled || s.source_silent_ns >= kSourceSilentNanos) {
    std::string why = stalled ? "stalled" : "";
    if (s.source_silent_ns >= 1'000'000'000ull) {
      why += (why.empty() ? "" : ", ") + std::string("no answer for ") +
             FormatDuration(s.source_silent_ns / 1'000'000'000ull);
    }
    return Eta{std::nullopt, "waiting for the source (" + why + ")"};
  }
  if (rate == 0) {
    return Eta{std::nullopt, s.copy_failures != 0 ? "copies failing, retrying" : "measuring"};
  }
  // The two go on at once, not one after the other: the copier zeroes the
  // holes between the pieces it copies, and both rates are measured over
  // the same seconds (a zero rate measured among paced copies is held to
  // their pace). Their sum counted those seconds twice: a 1 GiB sparse
  // clone at --rate 4M said 28 s and was done in 15 s.
  return Eta{std::max(secs, CeilDiv(to_copy, rate)), ""};
}

std::string HealthOf(const EngineStats& s) {
  if (s.mode == EngineMode::kFail) return "failed: metadata failed";
  if (!s.dest_change.empty()) return "failed: dest changed";
  if (!s.source_change.empty()) return "failed: source changed";
  if (s.mode == EngineMode::kReadOnly) return "degraded: metadata read-only";
  if (!s.commit_step.empty() && s.commit_step_ns >= kCommitStalledNanos) {
    return "degraded: commit stalled";
  }
  if (s.dest_condition == DestCondition::kFull) return "degraded: dest full";
  if (s.dest_condition == DestCondition::kIoError) return "degraded: dest I/O error";
  if (s.source_health.state == SourceHealth::State::kReconnecting) {
    return "degraded: source unreachable";
  }
  // The copier pauses for a stalled source too ("source down: stalled"):
  // the link's own state says which it is (before, a file source on a file
  // system that stopped answering read "source stalled" for the first
  // seconds of its stall, then "source unreachable" once the copier paused).
  if (s.source_health.state == SourceHealth::State::kStalled) return "degraded: source stalled";
  if (s.copier_pause == "source down") return "degraded: source unreachable";
  // Before the source timeout makes it stalled: nothing has come from it
  // for kSourceSilentNanos while a request waits (a stopped server; status
  // said ok for the 30 s until the timeout).
  if (s.source_silent_ns >= kSourceSilentNanos) return "degraded: source not answering";
  if (s.copier_pause == "source failing") return "degraded: source read errors";
  if (s.copy_failing_regions != 0) return "degraded: copies failing";
  return "ok";
}

StatusReport BuildLiveReport(const EngineStats& s, const ControlInfo& info, uint64_t pid,
                             uint64_t uptime_s) {
  StatusReport r;
  r.live = true;
  r.pid = pid;
  r.uptime_s = uptime_s;
  r.info = info;
  r.log_trouble = LogFileTrouble();
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
  r.copy_failing_regions = s.copy_failing_regions;
  r.commit_failures = s.commit_failures;
  r.commits = s.commits;
  if (!s.commit_step.empty() && s.commit_step_ns >= kCommitSlowNanos) {
    r.commit_step = s.commit_step;
    r.commit_step_s = s.commit_step_ns / 1'000'000'000ull;
  }
  r.metadata_used_blocks = s.metadata_space.used_blocks;
  r.metadata_total_blocks = s.metadata_space.total_blocks;
  uint64_t remaining = s.image_size > s.hydrated_bytes ? s.image_size - s.hydrated_bytes : 0;
  r.source_change = s.source_change;
  r.dest_change = s.dest_change;
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
  d.prefetch_room_bytes = s.copier_prefetch_room_bytes;
  d.source_latency_floor_us = s.source_latency_floor_ns / 1000;
  d.shared_link = s.source_link_shared;
  d.window_bytes = s.copier_window_bytes;
  if (!r.source_change.empty() && remaining != 0 && r.eta_s.has_value()) {
    r.eta_s.reset();  // copying has stopped
    r.eta_reason = "source changed";
  }
  return r;
}

namespace {

// The document keeps its fields in the order written (ordered_json), which
// is the order docs/control.md shows.
using Json = nlohmann::ordered_json;

Json Null() { return Json(nullptr); }

// A string field that is null when empty.
Json OptString(const std::string& v) { return v.empty() ? Null() : Json(v); }

// Live-only unsigned field: the value when live, null offline.
Json LiveUint(bool live, uint64_t v) { return live ? Json(v) : Null(); }

// Seconds since 1970 of a wall-clock time in ns, null when unknown (0).
Json OptUnixSeconds(uint64_t unix_ns) {
  return unix_ns != 0 ? Json(unix_ns / 1'000'000'000ull) : Null();
}

// hydrated_percent: at most 4 decimals (HydratedPercent floors to them),
// written as "25" rather than "25.0" when whole, as schema 1 documented.
Json Percent(double p) {
  if (!std::isfinite(p)) return Null();
  if (p == std::floor(p) && p >= 0) return Json(static_cast<uint64_t>(p));
  return Json(p);
}

Json LastErrorJson(const LastError& e) {
  if (e.empty()) return Null();
  const char* name = e.err != 0 ? strerrorname_np(e.err) : nullptr;
  Json j = Json::object();
  j["kind"] = ErrorKindName(e.kind);
  j["what"] = e.what;
  j["errno"] = e.err;
  j["errno_name"] = name != nullptr ? Json(name) : Null();
  j["time"] = FormatIsoTime(e.unix_ns);
  j["count"] = e.count;
  return j;
}

Json SourceConnectionJson(const SourceHealth& h) {
  Json j = Json::object();
  j["state"] = SourceStateName(h.state);
  j["since_unix_s"] = h.up() ? Null() : OptUnixSeconds(h.since_unix_ns);
  j["change"] = OptString(h.state == SourceHealth::State::kChanged ? h.change : std::string());
  j["oldest_request_unix_s"] = OptUnixSeconds(h.oldest_request_unix_ns);
  j["last_error"] = OptString(h.last_error);
  j["last_error_unix_s"] = OptUnixSeconds(h.last_error_unix_ns);
  j["errors"] = h.errors;
  j["retries"] = h.retries;
  j["reconnects"] = h.reconnects;
  j["guard"] = OptString(h.guard);
  return j;
}

Json ReadDrivenJson(const ReadDrivenReport& d) {
  Json j = Json::object();
  j["copy_on_read"] = d.copy_on_read;
  j["read_hints"] = d.read_hints;
  j["source_bytes"] = {{"users", d.user_source_bytes},
                       {"copier", d.copier_source_bytes},
                       {"copier_read_ahead", d.ahead_source_bytes},
                       {"copier_near_reads", d.near_source_bytes}};
  j["regions_hydrated_by"] = {{"read_ahead", d.ahead_regions},
                              {"near_reads", d.near_regions},
                              {"profile", d.profile_regions},
                              {"cursor", d.cursor_regions},
                              {"copy_on_read", d.cor_regions}};
  j["sequential_readers"] = d.sequential_readers;
  j["near_hints"] = d.near_hints;
  j["profile"] = d.profile_total == 0 ? Null()
                                      : Json{{"hydrated_regions", d.profile_hydrated},
                                             {"total_regions", d.profile_total}};
  j["recording_profile"] =
      d.record_profile.empty()
          ? Null()
          : Json{{"path", d.record_profile}, {"regions", d.profile_recorded}};
  j["prefetch"] = {{"room_bytes", d.prefetch_room_bytes},
                   {"source_latency_floor_us",
                    d.source_latency_floor_us == 0 ? Null() : Json(d.source_latency_floor_us)}};
  j["pipeline"] = {{"shared_link", d.shared_link}, {"window_bytes", d.window_bytes}};
  return j;
}

}  // namespace

std::string ReportToJson(const StatusReport& r, int indent) {
  const bool L = r.live;
  Json j = Json::object();
  j["schema_version"] = r.schema_version;
  j["live"] = L;
  j["pid"] = LiveUint(L, r.pid);
  j["uptime_seconds"] = LiveUint(L, r.uptime_s);
  j["mountpoint"] = OptString(r.info.mountpoint);
  j["source"] = OptString(r.info.source);
  j["dest"] = OptString(r.info.dest);
  j["metadata"] = OptString(r.info.metadata_dir);
  j["uuid"] = OptString(r.info.uuid);
  j["log"] = OptString(r.info.log_file);
  // Only while there is trouble: documents without it stay as they were.
  if (!r.log_trouble.empty()) j["log_trouble"] = r.log_trouble;
  j["name"] = OptString(r.info.name);
  j["mode"] = L ? Json(ModeWord(r.mode)) : Null();
  j["state"] = r.State();
  j["source_state"] = L ? Json(r.SourceState()) : Null();
  j["source_change"] = OptString(r.source_change);
  j["dest_state"] = L ? Json(r.DestState()) : Null();
  j["dest_change"] = OptString(r.dest_change);
  j["source_connection"] = L ? SourceConnectionJson(r.source_health) : Null();
  j["health"] = L ? Json(r.health) : Null();
  j["last_error"] = L ? LastErrorJson(r.last_error) : Null();
  j["hydration_done"] = r.hydration_done;
  j["image_size"] = r.image_size;
  j["region_size"] = r.region_size;
  j["regions"] = {{"total", r.nr_regions},
                  {"hydrated", r.hydrated_regions},
                  {"committed", r.committed_hydrated_regions},
                  {"hydrating", LiveUint(L, r.hydrating_regions)}};
  j["bytes"] = {
      {"total", r.image_size},
      {"hydrated", r.hydrated_bytes},
      {"remaining", r.image_size > r.hydrated_bytes ? r.image_size - r.hydrated_bytes : 0},
      {"copied", LiveUint(L, r.bytes_copied)},
      {"zeroed", LiveUint(L, r.bytes_zeroed)},
      {"remaining_copy", LiveUint(L, r.remaining_copy_bytes)}};
  j["hydrated_percent"] = Percent(r.HydratedPercent());
  j["copy_rate_bytes_per_s"] = LiveUint(L, r.copy_rate_bytes_per_s);
  j["zero_rate_bytes_per_s"] = LiveUint(L, r.zero_rate_bytes_per_s);
  j["copy_rate_window_seconds"] = LiveUint(L, r.copy_rate_window_s);
  j["eta_seconds"] = L && r.eta_s.has_value() ? Json(*r.eta_s) : Null();
  j["eta_reason"] = OptString(L ? r.eta_reason : std::string());
  j["knobs"] = L ? Json{{"hydration_enabled", r.knobs.hydration_enabled},
                        {"hydration_threshold", r.knobs.hydration_threshold},
                        {"hydration_batch_size", r.knobs.hydration_batch_size},
                        {"rate_bytes_per_s", r.knobs.rate_bytes_per_s},
                        {"discard_passdown", r.discard_passdown}}
                 : Null();
  j["failures"] = L ? Json{{"copy", r.copy_failures},
                           {"commit", r.commit_failures},
                           {"failing_regions", r.copy_failing_regions}}
                    : Null();
  j["commits"] = LiveUint(L, r.commits);
  // Only while a commit is slow: documents are otherwise byte for byte
  // what they were before the key existed.
  if (L && !r.commit_step.empty()) {
    j["commit_running"] = Json{{"step", r.commit_step}, {"seconds", r.commit_step_s}};
  }
  j["read_driven"] = L ? ReadDrivenJson(r.read_driven) : Null();
  // The FUSE layer: null offline and from a daemon that does not say.
  const bool has_fuse = L && !r.fuse.passthrough.empty();
  j["passthrough"] = has_fuse ? Json(r.fuse.passthrough) : Null();
  j["fuse"] = has_fuse ? Json{{"opens", r.fuse.opens},
                              {"passthrough_opens", r.fuse.passthrough_opens},
                              {"read_requests", r.fuse.read_requests},
                              {"write_requests", r.fuse.write_requests},
                              {"transport", OptString(r.fuse.transport)},
                              {"uring_requests", r.fuse.uring_requests},
                              {"uring_direct", r.fuse.uring_direct}}
                       : Null();
  j["metadata_space"] = {{"block_size", metadata::kMetadataBlockSize},
                         {"used_blocks", r.metadata_used_blocks},
                         {"total_blocks", r.metadata_total_blocks}};
  Json settings = Json::object();
  for (const auto& [k, v] : clone::ToPairs(r.settings)) settings[k] = v;
  j["settings"] = std::move(settings);
  j["settings_error"] = OptString(r.settings_error);
  // Strings are bytes (paths, errors): a byte that is not UTF-8 becomes
  // U+FFFD rather than failing the whole document.
  std::string out = j.dump(indent > 0 ? indent : -1, ' ', false, Json::error_handler_t::replace);
  out += '\n';
  return out;
}

namespace {

// Member `key` of an object, or nullptr if absent or `obj` is not an object.
const nlohmann::json* Find(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// nlohmann's message without its "[json.exception.parse_error.101] " tag.
std::string ParseErrorWhy(const nlohmann::json::exception& e) {
  std::string m = e.what();
  if (size_t p = m.find("] "); m.rfind("[json.exception", 0) == 0 && p != std::string::npos) {
    m.erase(0, p + 2);
  }
  return m;
}

// Field readers: each fails with the dotted path of the field.
class Reader {
 public:
  explicit Reader(const nlohmann::json& root) : root_(root) {}

  const nlohmann::json* Get(const nlohmann::json& obj, const std::string& path, const char* key) {
    const nlohmann::json* v = Find(obj, key);
    if (v == nullptr && status_.ok()) {
      status_ = Status::InvalidArgument("status JSON: missing field '" + path + key + "'");
    }
    return v;
  }
  uint64_t U64(const nlohmann::json& obj, const std::string& path, const char* key) {
    const nlohmann::json* v = Get(obj, path, key);
    if (v == nullptr) return 0;
    // Integers the parser read as unsigned; "5.0", "1e3" or "-1" are not.
    if (!v->is_number_unsigned()) {
      Fail(path + key, "an unsigned integer");
      return 0;
    }
    return v->get<uint64_t>();
  }
  // Null allowed (returns nullopt).
  std::optional<uint64_t> OptU64(const nlohmann::json& obj, const std::string& path, const char* key) {
    const nlohmann::json* v = Get(obj, path, key);
    if (v == nullptr || v->is_null()) return std::nullopt;
    return U64(obj, path, key);
  }
  // A wall-clock time in seconds (null allowed: 0), as nanoseconds; a time
  // whose nanoseconds do not fit 64 bits is not one this clonefs writes.
  uint64_t OptSecondsAsNs(const nlohmann::json& obj, const std::string& path, const char* key) {
    constexpr uint64_t kNs = 1'000'000'000ull;
    const uint64_t s = OptU64(obj, path, key).value_or(0);
    if (s > UINT64_MAX / kNs) {
      Fail(path + key, "a time in seconds since 1970 (at most 18446744073)");
      return 0;
    }
    return s * kNs;
  }
  bool Bool(const nlohmann::json& obj, const std::string& path, const char* key) {
    const nlohmann::json* v = Get(obj, path, key);
    if (v == nullptr) return false;
    if (!v->is_boolean()) {
      Fail(path + key, "a boolean");
      return false;
    }
    return v->get<bool>();
  }
  std::string OptStr(const nlohmann::json& obj, const std::string& path, const char* key) {
    const nlohmann::json* v = Get(obj, path, key);
    if (v == nullptr || v->is_null()) return "";
    if (!v->is_string()) {
      Fail(path + key, "a string");
      return "";
    }
    return v->get<std::string>();
  }
  const nlohmann::json* Obj(const nlohmann::json& obj, const std::string& path, const char* key,
                       bool nullable) {
    const nlohmann::json* v = Get(obj, path, key);
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
  const nlohmann::json& root() const { return root_; }

 private:
  const nlohmann::json& root_;
  Status status_;
};

}  // namespace

Result<StatusReport> ReportFromJson(const nlohmann::json& doc) {
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
  if (Find(doc, "log_trouble") != nullptr) r.log_trouble = rd.OptStr(doc, "", "log_trouble");
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
  if (Find(doc, "source_change") != nullptr) r.source_change = rd.OptStr(doc, "", "source_change");
  if (Find(doc, "dest_change") != nullptr) r.dest_change = rd.OptStr(doc, "", "dest_change");
  if (const nlohmann::json* v = Find(doc, "source_connection"); v != nullptr && !v->is_null()) {
    if (const nlohmann::json* o = rd.Obj(doc, "", "source_connection", false)) {
      SourceHealth& h = r.source_health;
      const std::string state = rd.OptStr(*o, "source_connection.", "state");
      if (state == "connected") {
        h.state = SourceHealth::State::kConnected;
      } else if (state == "reconnecting") {
        h.state = SourceHealth::State::kReconnecting;
      } else if (state == "stalled") {
        h.state = SourceHealth::State::kStalled;
      } else if (state == "changed") {
        h.state = SourceHealth::State::kChanged;
      } else if (state == "released") {
        h.state = SourceHealth::State::kReleased;
      } else {
        rd.Fail("source_connection.state",
                "one of connected, reconnecting, stalled, changed, released");
      }
      h.since_unix_ns = rd.OptSecondsAsNs(*o, "source_connection.", "since_unix_s");
      // Absent from older daemons' documents.
      if (Find(*o, "change") != nullptr) h.change = rd.OptStr(*o, "source_connection.", "change");
      if (Find(*o, "oldest_request_unix_s") != nullptr) {
        h.oldest_request_unix_ns =
            rd.OptSecondsAsNs(*o, "source_connection.", "oldest_request_unix_s");
      }
      h.last_error = rd.OptStr(*o, "source_connection.", "last_error");
      h.last_error_unix_ns = rd.OptSecondsAsNs(*o, "source_connection.", "last_error_unix_s");
      h.errors = rd.U64(*o, "source_connection.", "errors");
      h.retries = rd.U64(*o, "source_connection.", "retries");
      h.reconnects = rd.U64(*o, "source_connection.", "reconnects");
      // Absent from older daemons' documents.
      if (Find(*o, "guard") != nullptr) h.guard = rd.OptStr(*o, "source_connection.", "guard");
    }
  }
  // Schema 2: absent from older daemons' documents.
  if (Find(doc, "health") != nullptr) r.health = rd.OptStr(doc, "", "health");
  if (const nlohmann::json* v = Find(doc, "last_error"); v != nullptr && !v->is_null()) {
    if (const nlohmann::json* o = rd.Obj(doc, "", "last_error", false)) {
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
  if (const nlohmann::json* o = rd.Obj(doc, "", "regions", false)) {
    r.nr_regions = rd.U64(*o, "regions.", "total");
    r.hydrated_regions = rd.U64(*o, "regions.", "hydrated");
    r.committed_hydrated_regions = rd.U64(*o, "regions.", "committed");
    r.hydrating_regions = rd.OptU64(*o, "regions.", "hydrating").value_or(0);
  }
  if (const nlohmann::json* o = rd.Obj(doc, "", "bytes", false)) {
    r.hydrated_bytes = rd.U64(*o, "bytes.", "hydrated");
    r.bytes_copied = rd.OptU64(*o, "bytes.", "copied").value_or(0);
    r.bytes_zeroed = rd.OptU64(*o, "bytes.", "zeroed").value_or(0);
    // Version 2; a version-1 document counts every remaining byte.
    r.remaining_copy_bytes = Find(*o, "remaining_copy") != nullptr
                                 ? rd.OptU64(*o, "bytes.", "remaining_copy").value_or(0)
                                 : (r.image_size > r.hydrated_bytes ? r.image_size - r.hydrated_bytes
                                                                    : 0);
  }
  r.copy_rate_bytes_per_s = rd.OptU64(doc, "", "copy_rate_bytes_per_s").value_or(0);
  // Version 2 (absent from version-1 documents).
  if (Find(doc, "zero_rate_bytes_per_s") != nullptr) {
    r.zero_rate_bytes_per_s = rd.OptU64(doc, "", "zero_rate_bytes_per_s").value_or(0);
  }
  if (Find(doc, "copy_rate_window_seconds") != nullptr) {
    r.copy_rate_window_s = rd.OptU64(doc, "", "copy_rate_window_seconds").value_or(0);
  }
  r.eta_s = rd.OptU64(doc, "", "eta_seconds");
  if (Find(doc, "eta_reason") != nullptr) r.eta_reason = rd.OptStr(doc, "", "eta_reason");
  if (const nlohmann::json* o = rd.Obj(doc, "", "knobs", true)) {
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
  if (const nlohmann::json* o = rd.Obj(doc, "", "failures", true)) {
    r.copy_failures = rd.U64(*o, "failures.", "copy");
    r.commit_failures = rd.U64(*o, "failures.", "commit");
    if (Find(*o, "failing_regions") != nullptr) {  // absent from older daemons
      r.copy_failing_regions = rd.U64(*o, "failures.", "failing_regions");
    }
  }
  r.commits = rd.OptU64(doc, "", "commits").value_or(0);
  // Absent from older daemons' documents.
  if (const nlohmann::json* v = Find(doc, "commit_running"); v != nullptr && !v->is_null()) {
    if (const nlohmann::json* o = rd.Obj(doc, "", "commit_running", false)) {
      r.commit_step = rd.OptStr(*o, "commit_running.", "step");
      r.commit_step_s = rd.U64(*o, "commit_running.", "seconds");
    }
  }
  // Added after schema version 1 first shipped: absent from older daemons.
  if (const nlohmann::json* o = Find(doc, "read_driven"); o != nullptr && !o->is_null()) {
    ReadDrivenReport& d = r.read_driven;
    const std::string p = "read_driven.";
    d.copy_on_read = rd.Bool(*o, p, "copy_on_read");
    d.read_hints = rd.Bool(*o, p, "read_hints");
    if (const nlohmann::json* b = rd.Obj(*o, p, "source_bytes", false)) {
      const std::string q = p + "source_bytes.";
      d.user_source_bytes = rd.U64(*b, q, "users");
      d.copier_source_bytes = rd.U64(*b, q, "copier");
      d.ahead_source_bytes = rd.U64(*b, q, "copier_read_ahead");
      d.near_source_bytes = rd.U64(*b, q, "copier_near_reads");
    }
    if (const nlohmann::json* b = rd.Obj(*o, p, "regions_hydrated_by", false)) {
      const std::string q = p + "regions_hydrated_by.";
      d.ahead_regions = rd.U64(*b, q, "read_ahead");
      d.near_regions = rd.U64(*b, q, "near_reads");
      d.profile_regions = rd.U64(*b, q, "profile");
      d.cursor_regions = rd.U64(*b, q, "cursor");
      d.cor_regions = rd.U64(*b, q, "copy_on_read");
    }
    d.sequential_readers = rd.U64(*o, p, "sequential_readers");
    d.near_hints = rd.U64(*o, p, "near_hints");
    if (const nlohmann::json* b = rd.Obj(*o, p, "profile", true)) {
      d.profile_hydrated = rd.U64(*b, p + "profile.", "hydrated_regions");
      d.profile_total = rd.U64(*b, p + "profile.", "total_regions");
    }
    if (const nlohmann::json* b = rd.Obj(*o, p, "recording_profile", true)) {
      d.record_profile = rd.OptStr(*b, p + "recording_profile.", "path");
      d.profile_recorded = rd.U64(*b, p + "recording_profile.", "regions");
    }
    // Added without a schema bump (informational): absent from older daemons.
    if (Find(*o, "prefetch") != nullptr) {
      if (const nlohmann::json* b = rd.Obj(*o, p, "prefetch", false)) {
        d.prefetch_room_bytes = rd.U64(*b, p + "prefetch.", "room_bytes");
        d.source_latency_floor_us =
            rd.OptU64(*b, p + "prefetch.", "source_latency_floor_us").value_or(0);
      }
    }
    if (Find(*o, "pipeline") != nullptr) {
      if (const nlohmann::json* b = rd.Obj(*o, p, "pipeline", false)) {
        d.shared_link = rd.Bool(*b, p + "pipeline.", "shared_link");
        d.window_bytes = rd.U64(*b, p + "pipeline.", "window_bytes");
      }
    }
  }
  // Added without a schema bump (informational): absent from older daemons.
  if (Find(doc, "passthrough") != nullptr) r.fuse.passthrough = rd.OptStr(doc, "", "passthrough");
  if (const nlohmann::json* v = Find(doc, "fuse"); v != nullptr && !v->is_null()) {
    if (const nlohmann::json* o = rd.Obj(doc, "", "fuse", false)) {
      r.fuse.opens = rd.U64(*o, "fuse.", "opens");
      r.fuse.passthrough_opens = rd.U64(*o, "fuse.", "passthrough_opens");
      r.fuse.read_requests = rd.U64(*o, "fuse.", "read_requests");
      r.fuse.write_requests = rd.U64(*o, "fuse.", "write_requests");
      // Added without a schema bump (informational): absent from older daemons.
      if (Find(*o, "transport") != nullptr) r.fuse.transport = rd.OptStr(*o, "fuse.", "transport");
      if (Find(*o, "uring_requests") != nullptr) {
        r.fuse.uring_requests = rd.U64(*o, "fuse.", "uring_requests");
      }
      if (Find(*o, "uring_direct") != nullptr) {
        r.fuse.uring_direct = rd.U64(*o, "fuse.", "uring_direct");
      }
    }
  }
  if (const nlohmann::json* o = rd.Obj(doc, "", "metadata_space", false)) {
    r.metadata_used_blocks = rd.U64(*o, "metadata_space.", "used_blocks");
    r.metadata_total_blocks = rd.U64(*o, "metadata_space.", "total_blocks");
  }
  // Added after schema version 1 first shipped: absent from older daemons.
  if (const nlohmann::json* v = Find(doc, "name"); v != nullptr && v->is_string()) {
    r.info.name = v->get<std::string>();
  }
  if (const nlohmann::json* v = Find(doc, "settings_error"); v != nullptr && v->is_string()) {
    r.settings_error = v->get<std::string>();
  }
  if (const nlohmann::json* o = Find(doc, "settings"); o != nullptr && !o->is_null()) {
    std::vector<std::pair<std::string, std::string>> pairs;
    if (!o->is_object()) rd.Fail("settings", "an object");
    for (const auto& [k, v] : o->items()) {
      if (!v.is_string()) {
        rd.Fail("settings." + k, "a string");
        continue;
      }
      pairs.emplace_back(k, v.get<std::string>());
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
  // The one place JSON text is parsed: nlohmann's exceptions stop here.
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return Status::InvalidArgument("status JSON: not valid JSON at byte " +
                                   std::to_string(e.byte) + ": " + ParseErrorWhy(e));
  } catch (const nlohmann::json::exception& e) {  // e.g. a number beyond a double
    return Status::InvalidArgument("status JSON: " + ParseErrorWhy(e));
  }
  return ReportFromJson(doc);
}

}  // namespace clonefs::control
