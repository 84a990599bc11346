// Unit tests: the JSON document (schema parsed back field by field), the
// dm-clone status line field by field, the human block and the JSON reader.
#include <gtest/gtest.h>

#include <cstring>
#include <sstream>

#include "control/json.h"
#include "control/progress_watch.h"
#include "control/status_format.h"
#include "control/status_report.h"

namespace clonefs::control {
namespace {

EngineStats SampleStats() {
  EngineStats s;
  s.image_size = (1000ull << 16) + 4096;  // last region partial
  s.region_size = 1 << 16;
  s.nr_regions = 1001;
  s.hydrated_regions = 250;
  s.committed_hydrated_regions = 240;
  s.hydrating_regions = 7;
  s.hydrated_bytes = 250ull << 16;
  s.bytes_copied = 123456789;
  s.bytes_zeroed = 4096;
  s.copy_rate_bytes_per_s = 1 << 20;
  s.zero_rate_bytes_per_s = 1 << 30;
  s.copy_rate_window_ns = 8'000'000'000;
  s.remaining_copy_bytes = (750ull << 16) + 4096;  // every remaining byte is data
  s.copy_failures = 3;
  s.commits = 42;
  s.commit_failures = 1;
  s.knobs.hydration_threshold = 33;
  s.knobs.hydration_batch_size = 9;
  s.knobs.rate_bytes_per_s = 5000000;
  s.metadata_space.used_blocks = 77;
  s.metadata_space.total_blocks = 100000;
  return s;
}

ControlInfo SampleInfo() {
  return ControlInfo{"/mnt/clone", "/data/src \"x\".img", "/data/dest.img",
                     "/data/dest.img.clonefs", "123e4567-e89b-12d3-a456-426614174000",
                     "/data/dest.img.clonefs/clonefs.log", "dest.img"};
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

TEST(StatusJsonTest, SchemaFieldsAndTypes) {
  StatusReport r = BuildLiveReport(SampleStats(), SampleInfo(), 4321, 99);
  Result<JsonValue> doc = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(doc.ok()) << doc.status().ToString();
  const JsonValue& d = *doc;
  auto u = [&](const JsonValue* v) { return v == nullptr ? ~0ull : *v->AsUint64(); };
  EXPECT_EQ(u(d.Find("schema_version")), static_cast<uint64_t>(kStatusSchemaVersion));
  EXPECT_TRUE(d.Find("live")->AsBool());
  EXPECT_EQ(u(d.Find("pid")), 4321u);
  EXPECT_EQ(u(d.Find("uptime_seconds")), 99u);
  EXPECT_EQ(d.Find("mountpoint")->AsString(), "/mnt/clone");
  EXPECT_EQ(d.Find("source")->AsString(), "/data/src \"x\".img");
  EXPECT_EQ(d.Find("dest")->AsString(), "/data/dest.img");
  EXPECT_EQ(d.Find("metadata")->AsString(), "/data/dest.img.clonefs");
  EXPECT_EQ(d.Find("uuid")->AsString(), "123e4567-e89b-12d3-a456-426614174000");
  EXPECT_EQ(d.Find("log")->AsString(), "/data/dest.img.clonefs/clonefs.log");
  EXPECT_EQ(d.Find("mode")->AsString(), "rw");
  EXPECT_EQ(d.Find("state")->AsString(), "hydrating");
  EXPECT_EQ(d.Find("source_state")->AsString(), "ok");
  EXPECT_TRUE(d.Find("source_change")->is_null());
  EXPECT_FALSE(d.Find("hydration_done")->AsBool());
  EXPECT_EQ(u(d.Find("image_size")), (1000ull << 16) + 4096);
  EXPECT_EQ(u(d.Find("region_size")), 65536u);
  const JsonValue* regions = d.Find("regions");
  ASSERT_TRUE(regions && regions->is_object());
  EXPECT_EQ(u(regions->Find("total")), 1001u);
  EXPECT_EQ(u(regions->Find("hydrated")), 250u);
  EXPECT_EQ(u(regions->Find("committed")), 240u);
  EXPECT_EQ(u(regions->Find("hydrating")), 7u);
  const JsonValue* bytes = d.Find("bytes");
  ASSERT_TRUE(bytes && bytes->is_object());
  EXPECT_EQ(u(bytes->Find("total")), (1000ull << 16) + 4096);
  EXPECT_EQ(u(bytes->Find("hydrated")), 250ull << 16);
  EXPECT_EQ(u(bytes->Find("remaining")), (750ull << 16) + 4096);
  EXPECT_EQ(u(bytes->Find("copied")), 123456789u);
  EXPECT_EQ(u(bytes->Find("zeroed")), 4096u);
  EXPECT_NEAR(d.Find("hydrated_percent")->AsDouble(), 100.0 * 250 * 65536 / (1000.0 * 65536 + 4096),
              1e-3);
  EXPECT_EQ(u(bytes->Find("remaining_copy")), (750ull << 16) + 4096);
  EXPECT_EQ(u(d.Find("copy_rate_bytes_per_s")), 1u << 20);
  EXPECT_EQ(u(d.Find("zero_rate_bytes_per_s")), 1u << 30);
  EXPECT_EQ(u(d.Find("copy_rate_window_seconds")), 8u);
  // ETA: remaining / rate, rounded up.
  uint64_t remaining = (750ull << 16) + 4096;
  EXPECT_EQ(u(d.Find("eta_seconds")), (remaining + (1 << 20) - 1) / (1 << 20));
  EXPECT_TRUE(d.Find("eta_reason")->is_null());
  const JsonValue* knobs = d.Find("knobs");
  ASSERT_TRUE(knobs && knobs->is_object());
  EXPECT_TRUE(knobs->Find("hydration_enabled")->AsBool());
  EXPECT_EQ(u(knobs->Find("hydration_threshold")), 33u);
  EXPECT_EQ(u(knobs->Find("hydration_batch_size")), 9u);
  EXPECT_EQ(u(knobs->Find("rate_bytes_per_s")), 5000000u);
  EXPECT_TRUE(knobs->Find("discard_passdown")->AsBool());
  const JsonValue* failures = d.Find("failures");
  ASSERT_TRUE(failures && failures->is_object());
  EXPECT_EQ(u(failures->Find("copy")), 3u);
  EXPECT_EQ(u(failures->Find("commit")), 1u);
  EXPECT_EQ(u(d.Find("commits")), 42u);
  const JsonValue* space = d.Find("metadata_space");
  ASSERT_TRUE(space && space->is_object());
  EXPECT_EQ(u(space->Find("block_size")), 4096u);
  EXPECT_EQ(u(space->Find("used_blocks")), 77u);
  EXPECT_EQ(u(space->Find("total_blocks")), 100000u);
  // Every documented top-level key, and nothing else.
  std::vector<std::string> keys;
  for (const auto& m : d.members()) keys.push_back(m.first);
  std::vector<std::string> want = {
      "schema_version", "live",     "pid",          "uptime_seconds", "mountpoint",
      "source",         "dest",     "metadata",     "uuid",           "log",  "name", "mode",
      "state",          "source_state", "source_change", "source_connection", "health", "last_error", "hydration_done", "image_size",
      "region_size",    "regions",
      "bytes",          "hydrated_percent", "copy_rate_bytes_per_s", "zero_rate_bytes_per_s",
      "copy_rate_window_seconds", "eta_seconds", "eta_reason", "knobs",
      "failures",       "commits",  "read_driven", "passthrough", "fuse", "metadata_space",
      "settings", "settings_error"};
  EXPECT_EQ(keys, want);
}

// The FUSE layer's part (passthrough after completion): in JSON (null when
// the daemon does not say, as offline), round trip, the human lines; a
// document without the fields (an older daemon) still reads.
TEST(StatusJsonTest, FuseLayerIsReported) {
  StatusReport r = BuildLiveReport(SampleStats(), SampleInfo(), 1, 2);
  Result<JsonValue> doc = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(doc->Find("passthrough")->is_null());
  EXPECT_TRUE(doc->Find("fuse")->is_null());
  EXPECT_EQ(FormatHuman(r).find("Passthrough:"), std::string::npos);

  r.fuse.passthrough = "active";
  r.fuse.opens = 5;
  r.fuse.passthrough_opens = 3;
  r.fuse.read_requests = 1234;
  r.fuse.write_requests = 56;
  doc = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->Find("passthrough")->AsString(), "active");
  const JsonValue* f = doc->Find("fuse");
  ASSERT_TRUE(f && f->is_object());
  EXPECT_EQ(*f->Find("opens")->AsUint64(), 5u);
  EXPECT_EQ(*f->Find("passthrough_opens")->AsUint64(), 3u);
  EXPECT_EQ(*f->Find("read_requests")->AsUint64(), 1234u);
  EXPECT_EQ(*f->Find("write_requests")->AsUint64(), 56u);
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->fuse, r.fuse);
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("Passthrough:  active  (3 of 5 opens passed through)"), std::string::npos) << h;
  EXPECT_NE(h.find("Requests:     1234 reads, 56 writes served by the daemon"), std::string::npos)
      << h;

  // Offline: null whatever the report holds.
  StatusReport off = r;
  off.live = false;
  doc = JsonValue::Parse(ReportToJson(off));
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(doc->Find("passthrough")->is_null());
  EXPECT_TRUE(doc->Find("fuse")->is_null());

  // An older daemon's document has neither field.
  std::string old = ReportToJson(BuildLiveReport(SampleStats(), SampleInfo(), 1, 2), 0);
  for (const char* key : {"\"passthrough\":null,", "\"fuse\":null,"}) {
    const size_t at = old.find(key);
    ASSERT_NE(at, std::string::npos) << key << " in " << old;
    old.erase(at, std::strlen(key));
  }
  back = ReportFromJsonText(old);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->fuse, FuseReport{});
}

TEST(StatusJsonTest, RoundTripsThroughReader) {
  EngineStats s = SampleStats();
  s.knobs.hydration_enabled = false;
  s.discard_passdown = false;
  s.mode = EngineMode::kReadOnly;
  s.knobs.rate_bytes_per_s = UINT64_MAX;  // 64-bit exactness
  s.copy_stopped = "metadata read-only";  // as the engine says it
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(ReportToJson(*back), ReportToJson(r));
  EXPECT_EQ(back->knobs.rate_bytes_per_s, UINT64_MAX);
  EXPECT_EQ(back->mode, EngineMode::kReadOnly);
  EXPECT_FALSE(back->eta_s.has_value());  // read-only: no ETA, and why
  EXPECT_EQ(back->eta_reason, "metadata read-only");
  EXPECT_EQ(back->State(), "read-only");
}

// SPEC §10: the hydration order in effect and who the source's bytes were
// read for, in JSON (round trip) and in the human block.
TEST(StatusJsonTest, ReadDrivenHydrationIsReported) {
  EngineStats s = SampleStats();
  s.copy_on_read = true;
  s.read_hints = true;
  s.user_source_bytes = 3ull << 20;
  s.copier_source_bytes = 9ull << 20;
  s.ahead_source_bytes = 4ull << 20;
  s.near_source_bytes = 1ull << 20;
  s.ahead_regions = 64;
  s.near_regions = 16;
  s.profile_regions = 7;
  s.cursor_regions = 60;
  s.cor_regions = 48;
  s.sequential_readers = 1;
  s.near_hints = 5;
  s.profile_hydrated = 7;
  s.profile_total = 28;
  s.record_profile_path = "/var/lib/clonefs/boot.profile";
  s.profile_recorded = 111;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  Result<JsonValue> doc = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(doc.ok());
  const JsonValue* d = doc->Find("read_driven");
  ASSERT_TRUE(d && d->is_object());
  EXPECT_TRUE(d->Find("copy_on_read")->AsBool());
  EXPECT_EQ(*d->Find("source_bytes")->Find("users")->AsUint64(), 3ull << 20);
  EXPECT_EQ(*d->Find("source_bytes")->Find("copier_read_ahead")->AsUint64(), 4ull << 20);
  EXPECT_EQ(*d->Find("regions_hydrated_by")->Find("copy_on_read")->AsUint64(), 48u);
  EXPECT_EQ(*d->Find("profile")->Find("total_regions")->AsUint64(), 28u);
  EXPECT_EQ(d->Find("recording_profile")->Find("path")->AsString(), s.record_profile_path);
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->read_driven, r.read_driven);
  EXPECT_EQ(back->read_driven.cursor_regions, 60u);
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("read-ahead for 1 sequential reader, 5 near-read hints, profile 25% (7/28 "
                   "regions), then bitmap order; copy-on-read on"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("Source reads: 3.00 MiB for users (25%), 9.00 MiB by the copier"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("Hydrated by:  read-ahead 64, near reads 16, profile 7, copy-on-read 48, "
                   "bitmap 60 regions since start"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("Recording:    profile /var/lib/clonefs/boot.profile (111 regions so far"),
            std::string::npos)
      << h;
  // No profile, hints off: said so; null in JSON.
  s.read_hints = false;
  s.profile_total = 0;
  s.record_profile_path.clear();
  r = BuildLiveReport(s, SampleInfo(), 1, 2);
  doc = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(doc->Find("read_driven")->Find("profile")->is_null());
  EXPECT_TRUE(doc->Find("read_driven")->Find("recording_profile")->is_null());
  EXPECT_NE(FormatHuman(r).find("Order:        read hints off, then bitmap order"),
            std::string::npos)
      << FormatHuman(r);
}

// SPEC §7a: a source that changed under the clone is said in JSON and in
// the human block, and such a clone is never "complete".
TEST(StatusJsonTest, SourceChangeIsReportedAndNeverComplete) {
  EngineStats s = SampleStats();
  s.source_change = "/data/src.img shrank from 67108864 to 33554432 bytes";
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_EQ(r.State(), "source-changed");
  EXPECT_FALSE(r.eta_s.has_value());  // copying has stopped
  Result<JsonValue> doc = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->Find("state")->AsString(), "source-changed");
  EXPECT_EQ(doc->Find("source_state")->AsString(), "changed");
  EXPECT_EQ(doc->Find("source_change")->AsString(), s.source_change);
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->source_change, s.source_change);
  EXPECT_EQ(ReportToJson(*back), ReportToJson(r));
  std::string h = FormatHuman(r);
  EXPECT_NE(h.find("State:        source-changed"), std::string::npos) << h;
  EXPECT_NE(h.find("Source state: changed: /data/src.img shrank from 67108864 to 33554432 bytes"),
            std::string::npos)
      << h;
  EXPECT_NE(FormatProgress(r, 0).find("failed: source changed"), std::string::npos);
  // Even with every region hydrated (all overwritten by the user), the state
  // says what happened rather than "complete".
  s.hydrated_regions = s.committed_hydrated_regions = s.nr_regions;
  s.hydrated_bytes = s.image_size;
  s.hydration_done = true;
  EXPECT_EQ(BuildLiveReport(s, SampleInfo(), 1, 2).State(), "source-changed");
  // An unchanged source says so.
  EXPECT_NE(FormatHuman(BuildLiveReport(SampleStats(), SampleInfo(), 1, 2))
                .find("Source state: ok"),
            std::string::npos);
}

// SPEC §9: the source's connection state, errors and reconnects are shown
// (human and JSON) and survive the reader.
TEST(StatusJsonTest, SourceConnectionIsReported) {
  EngineStats s = SampleStats();
  StatusReport ok = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_NE(FormatHuman(ok).find("Source link:  connected\n"), std::string::npos)
      << FormatHuman(ok);
  s.source_health.state = SourceHealth::State::kReconnecting;
  s.source_health.since_unix_ns = 1'795'000'000'000'000'000ull;  // 2026-11-18 ...
  s.source_health.last_error = "nbd: connection reset by peer";
  s.source_health.last_error_unix_ns = 1'795'000'001'000'000'000ull;
  s.source_health.errors = 7;
  s.source_health.retries = 3;
  s.source_health.reconnects = 2;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  Result<JsonValue> doc = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(doc.ok());
  const JsonValue* c = doc->Find("source_connection");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->Find("state")->AsString(), "reconnecting");
  EXPECT_EQ(*c->Find("since_unix_s")->AsUint64(), 1'795'000'000u);
  EXPECT_EQ(c->Find("last_error")->AsString(), "nbd: connection reset by peer");
  EXPECT_EQ(*c->Find("errors")->AsUint64(), 7u);
  EXPECT_EQ(*c->Find("reconnects")->AsUint64(), 2u);
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->source_health.state, SourceHealth::State::kReconnecting);
  EXPECT_EQ(back->source_health.retries, 3u);
  EXPECT_EQ(ReportToJson(*back), ReportToJson(r));
  std::string h = FormatHuman(r);
  EXPECT_NE(h.find("Source link:  reconnecting since 2026-11-18 "), std::string::npos) << h;
  EXPECT_NE(h.find("(7 errors, 3 retries, 2 reconnects); last error at 2026-11-18 "),
            std::string::npos)
      << h;
  EXPECT_NE(h.find(": nbd: connection reset by peer"), std::string::npos) << h;
  // A document from a daemon that predates the field reads as connected.
  std::string old = ReportToJson(ok, 0);
  const std::string key = "\"source_connection\":";
  size_t at = old.find(key);
  ASSERT_NE(at, std::string::npos);
  size_t end = old.find('}', at);
  old.erase(at, end + 2 - at);  // the object and its comma
  Result<StatusReport> older = ReportFromJsonText(old);
  ASSERT_TRUE(older.ok()) << older.status().ToString() << "\n" << old;
  EXPECT_EQ(older->source_health.state, SourceHealth::State::kConnected);
}

// Caught by tests/fuzz/status_report_fuzz's check that every field is
// reported as read, on an input written to try it (the fuzzer had not reached
// it yet): a time in seconds whose nanoseconds overflow 64 bits was accepted
// and wrapped around (since_unix_s 18446744073709551615 read back as
// 18446744072).
TEST(StatusJsonTest, TimesBeyondNanosecondRangeAreRefused) {
  EngineStats s = SampleStats();
  s.source_health.state = SourceHealth::State::kReconnecting;
  s.source_health.since_unix_ns = 1'795'000'000'000'000'000ull;
  s.source_health.last_error_unix_ns = 1'795'000'001'000'000'000ull;
  const std::string good = ReportToJson(BuildLiveReport(s, SampleInfo(), 1, 2), 0);
  ASSERT_TRUE(ReportFromJsonText(good).ok());
  for (const char* key : {"\"since_unix_s\":1795000000", "\"last_error_unix_s\":1795000001"}) {
    std::string doc = good;
    const size_t at = doc.find(key);
    ASSERT_NE(at, std::string::npos) << key;
    const std::string name = std::string(key).substr(0, std::string(key).find(':') + 1);
    Result<StatusReport> r =
        ReportFromJsonText(doc.replace(at, std::string(key).size(), name + "18446744073709551615"));
    ASSERT_FALSE(r.ok()) << key;
    EXPECT_NE(r.status().message().find("is not a time in seconds"), std::string::npos)
        << r.status().ToString();
    doc = good;
    r = ReportFromJsonText(doc.replace(at, std::string(key).size(), name + "18446744073"));
    ASSERT_TRUE(r.ok()) << key;  // the largest time that fits
  }
}

TEST(StatusJsonTest, OfflineReportHasNullLiveFields) {
  StatusReport r;
  r.live = false;
  r.info.dest = "/d";
  r.image_size = 100;
  r.region_size = 4096;
  r.nr_regions = 1;
  r.hydrated_regions = r.committed_hydrated_regions = 1;
  r.hydrated_bytes = 100;
  r.hydration_done = true;
  Result<JsonValue> d = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(d.ok());
  for (const char* k : {"pid", "uptime_seconds", "mountpoint", "log", "mode",
                        "copy_rate_bytes_per_s", "zero_rate_bytes_per_s",
                        "copy_rate_window_seconds", "eta_seconds", "eta_reason", "knobs",
                        "failures", "commits",
                        "source_state", "source_change", "read_driven"}) {
    ASSERT_NE(d->Find(k), nullptr) << k;
    EXPECT_TRUE(d->Find(k)->is_null()) << k;
  }
  EXPECT_TRUE(d->Find("regions")->Find("hydrating")->is_null());
  EXPECT_EQ(d->Find("state")->AsString(), "complete");
  Result<StatusReport> back = ReportFromJson(*d);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_FALSE(back->live);
  EXPECT_TRUE(back->hydration_done);
}

TEST(StatusJsonTest, ReaderRejectsBadDocuments) {
  std::string good = ReportToJson(BuildLiveReport(SampleStats(), SampleInfo(), 1, 2), 0);
  EXPECT_TRUE(ReportFromJsonText(good).ok());
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    size_t p = s.find(from);
    EXPECT_NE(p, std::string::npos) << from;
    s.replace(p, from.size(), to);
    return s;
  };
  EXPECT_FALSE(ReportFromJsonText(replace("\"image_size\":", "\"image_sizeX\":")).ok());
  EXPECT_FALSE(ReportFromJsonText(replace("\"mode\":\"rw\"", "\"mode\":\"weird\"")).ok());
  EXPECT_FALSE(ReportFromJsonText(replace("\"region_size\":65536", "\"region_size\":-1")).ok());
  const std::string v = "\"schema_version\":" + std::to_string(kStatusSchemaVersion);
  Result<StatusReport> newer = ReportFromJsonText(
      replace(v, "\"schema_version\":" + std::to_string(kStatusSchemaVersion + 1)));
  ASSERT_FALSE(newer.ok());
  EXPECT_TRUE(newer.status().IsNotSupported());
  EXPECT_FALSE(ReportFromJsonText(good.substr(0, good.size() / 2)).ok());
  // Unknown fields are ignored (forward compatibility).
  EXPECT_TRUE(ReportFromJsonText(replace("{", "{\"future_field\":[1,{\"a\":null}],")).ok());
}

TEST(DmLineTest, FieldByField) {
  StatusReport r = BuildLiveReport(SampleStats(), SampleInfo(), 1, 2);
  std::string line = FormatDmLine(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.back(), ' ');
  std::vector<std::string> f = Split(line);
  ASSERT_EQ(f.size(), 12u) << line;
  EXPECT_EQ(f[0], "8");           // metadata block size in sectors (4 KiB)
  EXPECT_EQ(f[1], "77/100000");   // used/total metadata blocks
  EXPECT_EQ(f[2], "128");         // region size in sectors (64 KiB)
  EXPECT_EQ(f[3], "250/1001");    // hydrated/total regions
  EXPECT_EQ(f[4], "7");           // hydrating
  EXPECT_EQ(f[5], "0");           // no feature args
  EXPECT_EQ(f[6], "4");           // core args, as dm-clone
  EXPECT_EQ(f[7], "hydration_threshold");
  EXPECT_EQ(f[8], "33");
  EXPECT_EQ(f[9], "hydration_batch_size");
  EXPECT_EQ(f[10], "9");
  EXPECT_EQ(f[11], "rw");
  EXPECT_EQ(line, "8 77/100000 128 250/1001 7 0 4 hydration_threshold 33 hydration_batch_size 9 rw");
}

TEST(DmLineTest, FeatureArgsAndModes) {
  EngineStats s = SampleStats();
  s.knobs.hydration_enabled = false;
  s.mode = EngineMode::kReadOnly;
  EXPECT_EQ(FormatDmLine(BuildLiveReport(s, SampleInfo(), 1, 2)),
            "8 77/100000 128 250/1001 7 1 no_hydration 4 hydration_threshold 33 "
            "hydration_batch_size 9 ro");
  s.discard_passdown = false;
  EXPECT_EQ(FormatDmLine(BuildLiveReport(s, SampleInfo(), 1, 2)),
            "8 77/100000 128 250/1001 7 2 no_hydration no_discard_passdown 4 "
            "hydration_threshold 33 hydration_batch_size 9 ro");
  s.knobs.hydration_enabled = true;
  s.mode = EngineMode::kReadWrite;
  s.region_size = 4096;
  EXPECT_EQ(FormatDmLine(BuildLiveReport(s, SampleInfo(), 1, 2)),
            "8 77/100000 8 250/1001 7 1 no_discard_passdown 4 hydration_threshold 33 "
            "hydration_batch_size 9 rw");
  s.mode = EngineMode::kFail;
  EXPECT_EQ(FormatDmLine(BuildLiveReport(s, SampleInfo(), 1, 2)), "Fail");
}

TEST(HumanStatusTest, ShowsEveryFigure) {
  StatusReport r = BuildLiveReport(SampleStats(), SampleInfo(), 4321, 99);
  std::string h = FormatHuman(r);
  for (const char* want :
       {"/mnt/clone", "pid 4321", "/data/src \"x\".img", "/data/dest.img.clonefs",
        "123e4567-e89b-12d3-a456-426614174000", "hydrating", "metadata mode rw", "24.99%",
        "250/1001 hydrated", "240 committed", "7 hydrating", "region size 64.00 KiB",
        "1.00 MiB/s", "ETA", "hydration_threshold 33", "hydration_batch_size 9",
        "rate 4.77 MiB/s", "discard passdown on", "3 copy, 1 commit", "Commits:", "42",
        "77/100000 blocks", "Log:          /data/dest.img.clonefs/clonefs.log\n"}) {
    EXPECT_NE(h.find(want), std::string::npos) << "missing '" << want << "' in\n" << h;
  }
  // Control characters in paths cannot break the layout.
  ControlInfo info = SampleInfo();
  info.source = "/evil\nMode: fake";
  std::string h2 = FormatHuman(BuildLiveReport(SampleStats(), info, 1, 1));
  EXPECT_NE(h2.find("/evil\\x0aMode: fake"), std::string::npos) << h2;
}

TEST(HumanStatusTest, ShowsTheFileAndTheStoredSettings) {
  StatusReport r = BuildLiveReport(SampleStats(), SampleInfo(), 4321, 99);
  std::string h = FormatHuman(r);
  EXPECT_NE(h.find("File:         /mnt/clone/dest.img\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Settings:     none stored (built-in defaults)\n"), std::string::npos) << h;
  r.settings.rate_bytes_per_s = 1 << 20;
  r.settings.on_complete.emplace("touch /tmp/x");
  h = FormatHuman(r);
  EXPECT_NE(h.find("Settings:     --rate 1M --on-complete 'touch /tmp/x'\n"), std::string::npos)
      << h;
  r.settings_error = "settings: checksum mismatch";
  h = FormatHuman(r);
  EXPECT_NE(h.find("Settings:     cannot be read: settings: checksum mismatch"), std::string::npos)
      << h;
}

TEST(StatusJsonTest, SettingsAndNameRoundTrip) {
  StatusReport r = BuildLiveReport(SampleStats(), SampleInfo(), 1, 2);
  r.settings.rate_bytes_per_s = 5;
  r.settings.name.emplace("x.img");
  r.settings.hydration_enabled = false;
  r.settings.unknown["future_key"] = "v";
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->settings, r.settings);
  EXPECT_EQ(back->info.name, "dest.img");
  EXPECT_TRUE(back->settings_error.empty());
  // A document from a daemon that predates these fields still reads.
  std::string old = ReportToJson(BuildLiveReport(SampleStats(), SampleInfo(), 1, 2), 0);
  const size_t p = old.find(",\"settings\":{}");
  ASSERT_NE(p, std::string::npos) << old;
  old.erase(p, std::string(",\"settings\":{}").size());
  back = ReportFromJsonText(old);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->settings.empty());
  // A bad value of a known setting is refused.
  std::string bad = ReportToJson(r, 0);
  const size_t q = bad.find("\"rate\":\"5\"");
  ASSERT_NE(q, std::string::npos) << bad;
  bad.replace(q, 10, "\"rate\":\"x\"");
  EXPECT_FALSE(ReportFromJsonText(bad).ok());
}

TEST(EtaTest, Rules) {
  EngineStats s;
  s.image_size = 100 << 20;
  s.hydrated_bytes = 100 << 20;
  EXPECT_EQ(EstimateEta(s).seconds, 0u);  // nothing left
  s.hydrated_bytes = 0;
  s.remaining_copy_bytes = 10 << 20;  // 90 MiB of holes, 10 MiB of data
  s.copy_rate_bytes_per_s = 1 << 20;
  EXPECT_EQ(EstimateEta(s).seconds, 10u);  // holes cost nothing measured...
  s.zero_rate_bytes_per_s = 30 << 20;
  EXPECT_EQ(EstimateEta(s).seconds, 13u);  // ...or what zeroing is measured at
  s.zero_rate_bytes_per_s = 0;
  // The ceiling bounds the rate (write-triggered copies are not limited).
  s.knobs.rate_bytes_per_s = 512 << 10;
  EXPECT_EQ(EstimateEta(s).seconds, 20u);
  s.knobs.rate_bytes_per_s = 0;
  // Only holes left: done as fast as they are zeroed.
  s.remaining_copy_bytes = 0;
  EXPECT_EQ(EstimateEta(s).seconds, 0u);
  s.remaining_copy_bytes = 10 << 20;
  // No copy progress: why.
  s.copy_rate_bytes_per_s = 0;
  EXPECT_FALSE(EstimateEta(s).seconds.has_value());
  EXPECT_EQ(EstimateEta(s).reason, "measuring");
  s.copy_failures = 2;
  EXPECT_EQ(EstimateEta(s).reason, "copies failing, retrying");
  // Stopped: the engine's reason, whatever the rate.
  s.copy_rate_bytes_per_s = 1 << 20;
  for (const char* why : {"hydration disabled", "hydration_threshold 0", "metadata read-only",
                          "waiting for the source (source down: connection refused)"}) {
    s.copy_stopped = why;
    EXPECT_FALSE(EstimateEta(s).seconds.has_value()) << why;
    EXPECT_EQ(EstimateEta(s).reason, why);
  }
}

// The human block and `wait`'s line say the copy and zero rates apart, and
// why there is no ETA.
TEST(EtaTest, HumanAndProgressSayWhy) {
  EngineStats s = SampleStats();
  s.copy_rate_bytes_per_s = 100 << 10;
  s.zero_rate_bytes_per_s = 2ull << 30;
  s.knobs.rate_bytes_per_s = 100 << 10;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("Copy rate:    100.00 KiB/s copied (limit 100.00 KiB/s), 2.00 GiB/s zeroed  ETA "),
            std::string::npos)
      << h;
  s.knobs.hydration_enabled = false;
  s.copy_stopped = "hydration disabled";
  r = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_NE(FormatHuman(r).find("no ETA: hydration disabled"), std::string::npos) << FormatHuman(r);
  const std::string p = FormatProgress(r, 0);
  EXPECT_NE(p.find("no ETA: hydration disabled"), std::string::npos) << p;
  EXPECT_EQ(p.find("ETA -"), std::string::npos) << p;
}

// Version-1 documents (copy rate included zeroing; no zero rate, no ETA
// reason) are still read.
TEST(StatusJsonTest, ReadsVersionOneDocuments) {
  std::string doc = ReportToJson(BuildLiveReport(SampleStats(), SampleInfo(), 1, 2), 0);
  auto cut = [&](const std::string& what) {
    const size_t p = doc.find(what);
    ASSERT_NE(p, std::string::npos) << what;
    doc.erase(p, what.size());
  };
  cut(",\"zero_rate_bytes_per_s\":1073741824");
  cut(",\"copy_rate_window_seconds\":8");
  cut(",\"eta_reason\":null");
  cut(",\"remaining_copy\":49156096");
  const size_t v = doc.find("\"schema_version\":2");
  ASSERT_NE(v, std::string::npos);
  doc.replace(v, 18, "\"schema_version\":1");
  Result<StatusReport> back = ReportFromJsonText(doc);
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << doc;
  EXPECT_EQ(back->schema_version, 1);
  EXPECT_EQ(back->copy_rate_bytes_per_s, 1u << 20);
  EXPECT_EQ(back->zero_rate_bytes_per_s, 0u);
  EXPECT_EQ(back->remaining_copy_bytes, (750ull << 16) + 4096);
  EXPECT_TRUE(back->eta_s.has_value());
}

// SPEC §7a: the health phrase follows what the engine knows, the most
// serious first; it is ok again when the cause is gone.
TEST(HealthTest, FollowsTheEnginesStates) {
  EngineStats s = SampleStats();
  EXPECT_EQ(HealthOf(s), "ok");
  s.copier_pause = "source failing";
  EXPECT_EQ(HealthOf(s), "degraded: source read errors");
  s.source_health.state = SourceHealth::State::kStalled;
  EXPECT_EQ(HealthOf(s), "degraded: source stalled");
  s.source_health.state = SourceHealth::State::kReconnecting;
  EXPECT_EQ(HealthOf(s), "degraded: source unreachable");
  s.source_health.state = SourceHealth::State::kConnected;
  s.copier_pause = "source down";
  EXPECT_EQ(HealthOf(s), "degraded: source unreachable");
  s.dest_condition = DestCondition::kIoError;
  EXPECT_EQ(HealthOf(s), "degraded: dest I/O error");
  s.dest_condition = DestCondition::kFull;
  EXPECT_EQ(HealthOf(s), "degraded: dest full");
  s.mode = EngineMode::kReadOnly;
  EXPECT_EQ(HealthOf(s), "degraded: metadata read-only");
  s.source_change = "/s shrank";
  EXPECT_EQ(HealthOf(s), "failed: source changed");
  s.mode = EngineMode::kFail;
  EXPECT_EQ(HealthOf(s), "failed: metadata failed");
  s = SampleStats();
  s.last_error.kind = ErrorKind::kDestFull;  // a past error alone is not a state
  EXPECT_EQ(HealthOf(s), "ok");
}

EngineStats DestFullStats() {
  EngineStats s = SampleStats();
  s.dest_condition = DestCondition::kFull;
  s.last_error.kind = ErrorKind::kDestFull;
  s.last_error.what = "copy write to dest at offset 4194304: No space left on device";
  s.last_error.err = 28;
  s.last_error.unix_ns = 1795000000ull * 1'000'000'000ull + 123;  // 2026-11-18T11:06:40Z
  s.last_error.count = 4641;
  return s;
}

// SPEC §7a: a full dest shows as the health and as the last error (what,
// errno, when, how many), in JSON (ISO 8601 UTC time) and in the human block
// (how long ago), and survives the reader.
TEST(StatusJsonTest, HealthAndLastErrorAreReported) {
  StatusReport r = BuildLiveReport(DestFullStats(), SampleInfo(), 1, 2);
  EXPECT_EQ(r.health, "degraded: dest full");
  Result<JsonValue> doc = JsonValue::Parse(ReportToJson(r));
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->Find("schema_version")->AsUint64().value(), 2u);
  EXPECT_EQ(doc->Find("health")->AsString(), "degraded: dest full");
  const JsonValue* e = doc->Find("last_error");
  ASSERT_TRUE(e != nullptr && e->is_object());
  EXPECT_EQ(e->Find("kind")->AsString(), "dest-full");
  EXPECT_EQ(e->Find("what")->AsString(),
            "copy write to dest at offset 4194304: No space left on device");
  EXPECT_EQ(e->Find("errno")->AsUint64().value(), 28u);
  EXPECT_EQ(e->Find("errno_name")->AsString(), "ENOSPC");
  EXPECT_EQ(e->Find("time")->AsString(), "2026-11-18T11:06:40Z");
  EXPECT_EQ(e->Find("count")->AsUint64().value(), 4641u);

  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->health, "degraded: dest full");
  EXPECT_EQ(back->last_error.kind, ErrorKind::kDestFull);
  EXPECT_EQ(back->last_error.err, 28);
  EXPECT_EQ(back->last_error.count, 4641u);
  EXPECT_EQ(back->last_error.unix_ns, 1795000000ull * 1'000'000'000ull);  // whole seconds
  EXPECT_EQ(ReportToJson(*back), ReportToJson(r));

  const uint64_t now = 1795000012ull * 1'000'000'000ull + 200;  // 12 s later
  std::string h = FormatHuman(r, now);
  EXPECT_NE(h.find("Health:       degraded: dest full\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Last error:   copy write to dest at offset 4194304: No space left on device "
                   "(errno 28 ENOSPC), 12s ago, 4641 times\n"),
            std::string::npos)
      << h;

  // No error yet: JSON null, "none", health ok.
  StatusReport ok = BuildLiveReport(SampleStats(), SampleInfo(), 1, 2);
  doc = JsonValue::Parse(ReportToJson(ok));
  ASSERT_TRUE(doc.ok());
  EXPECT_EQ(doc->Find("health")->AsString(), "ok");
  EXPECT_TRUE(doc->Find("last_error")->is_null());
  h = FormatHuman(ok, now);
  EXPECT_NE(h.find("Health:       ok\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Last error:   none\n"), std::string::npos) << h;
  back = ReportFromJsonText(ReportToJson(ok, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->last_error.empty());

  // Offline: both null.
  StatusReport off = ok;
  off.live = false;
  doc = JsonValue::Parse(ReportToJson(off));
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(doc->Find("health")->is_null());
  EXPECT_TRUE(doc->Find("last_error")->is_null());
}

// A document from a daemon that predates schema 2 has neither field.
TEST(StatusJsonTest, ReaderToleratesSchema1WithoutHealth) {
  Result<JsonValue> doc =
      JsonValue::Parse(ReportToJson(BuildLiveReport(DestFullStats(), SampleInfo(), 1, 2), 0));
  ASSERT_TRUE(doc.ok());
  std::string text = ReportToJson(BuildLiveReport(DestFullStats(), SampleInfo(), 1, 2), 0);
  auto cut = [&](const std::string& key) {
    const size_t a = text.find("\"" + key + "\":");
    ASSERT_NE(a, std::string::npos) << key;
    const size_t b = text.find("\"hydration_done\"", a);
    ASSERT_NE(b, std::string::npos);
    text.erase(a, b - a);
  };
  cut("health");  // removes health and last_error, which precede hydration_done
  const size_t v = text.find("\"schema_version\":2");
  ASSERT_NE(v, std::string::npos) << text;
  text.replace(v, 18, "\"schema_version\":1");
  Result<StatusReport> r = ReportFromJsonText(text);
  ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << text;
  EXPECT_EQ(r->health, "");
  EXPECT_TRUE(r->last_error.empty());
  EXPECT_TRUE(HealthOk(r->health));
  // A bad last_error is refused with its field named.
  std::string bad = ReportToJson(BuildLiveReport(DestFullStats(), SampleInfo(), 1, 2), 0);
  const size_t t = bad.find("2026-11-18T11:06:40Z");
  ASSERT_NE(t, std::string::npos);
  bad.replace(t, 20, "yesterday");
  r = ReportFromJsonText(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("last_error.time"), std::string::npos)
      << r.status().ToString();
}

// While the clone is not healthy, `wait`'s line says why (its health)
// instead of an unknown ETA's reason.
TEST(ProgressTest, DegradedHealthReplacesTheUnknownEta) {
  EngineStats s = DestFullStats();
  s.copy_rate_bytes_per_s = 0;
  std::string p = FormatProgress(BuildLiveReport(s, SampleInfo(), 1, 1), 0);
  EXPECT_EQ(p.find("ETA"), std::string::npos) << p;
  EXPECT_NE(p.find("0 B/s  degraded: dest full"), std::string::npos) << p;
  s.dest_condition = DestCondition::kOk;
  p = FormatProgress(BuildLiveReport(s, SampleInfo(), 1, 1), 0);
  EXPECT_NE(p.find("no ETA: "), std::string::npos) << p;
  EXPECT_EQ(p.find("degraded"), std::string::npos) << p;
}

// `wait --stall-timeout`: the time since the last poll that saw the
// hydrated bytes or the committed regions grow.
TEST(ProgressWatchTest, MeasuresTimeWithoutProgress) {
  ProgressWatch w;
  EXPECT_EQ(w.StalledFor(5), 0);
  w.Observe(10, 100, 1);
  EXPECT_EQ(w.StalledFor(10), 0);
  w.Observe(11, 100, 1);
  w.Observe(13, 100, 1);
  EXPECT_EQ(w.StalledFor(13), 3);
  w.Observe(14, 200, 1);  // hydrated more
  EXPECT_EQ(w.StalledFor(14), 0);
  EXPECT_EQ(w.StalledFor(20), 6);
  w.Observe(21, 200, 2);  // committed more
  EXPECT_EQ(w.StalledFor(22), 1);
  w.Observe(23, 150, 2);  // fewer (never in practice): not progress
  EXPECT_EQ(w.StalledFor(24), 3);
}

TEST(ProgressTest, BarAndFigures) {
  EngineStats s = SampleStats();
  s.image_size = 100 << 20;
  s.hydrated_bytes = 50 << 20;
  s.remaining_copy_bytes = 50 << 20;
  std::string p = FormatProgress(BuildLiveReport(s, SampleInfo(), 1, 1), 10);
  EXPECT_EQ(p.substr(0, 13), "[#####.....] ") << p;
  EXPECT_NE(p.find("50.0%"), std::string::npos) << p;
  EXPECT_NE(p.find("50.00 MiB/100.00 MiB"), std::string::npos) << p;
  EXPECT_NE(p.find("ETA 50s"), std::string::npos) << p;
}

TEST(JsonTest, ParserAcceptsAndRejects) {
  Result<JsonValue> v = JsonValue::Parse(
      " {\"a\": [1, -2.5e3, true, false, null, \"\\u00e9\\ud83d\\ude00\\n\"], \"b\": {}} ");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  const JsonValue* a = v->Find("a");
  ASSERT_TRUE(a && a->is_array());
  ASSERT_EQ(a->items().size(), 6u);
  EXPECT_EQ(*a->items()[0].AsUint64(), 1u);
  EXPECT_DOUBLE_EQ(a->items()[1].AsDouble(), -2500.0);
  EXPECT_FALSE(a->items()[1].AsUint64().ok());
  EXPECT_EQ(a->items()[5].AsString(), "\xc3\xa9\xf0\x9f\x98\x80\n");
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1,}", "01", "\"\\x\"", "{\"a\" 1}", "nul",
                          "[1] 2", "{\"a\":1,\"a\":2}", "\"\x01\""}) {
    EXPECT_FALSE(JsonValue::Parse(bad).ok()) << bad;
  }
}

TEST(JsonTest, WriterEscapes) {
  JsonWriter w(0);
  w.BeginObject().Key("k\"").String("a\\b\x01\n").Key("e").BeginArray().EndArray().EndObject();
  EXPECT_EQ(w.str(), "{\"k\\\"\":\"a\\\\b\\u0001\\n\",\"e\":[]}");
  Result<JsonValue> back = JsonValue::Parse(w.str());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->Find("k\"")->AsString(), "a\\b\x01\n");
}

}  // namespace
}  // namespace clonefs::control
