// Unit tests: the JSON document (schema parsed back field by field), the
// dm-clone status line field by field, the human block and the JSON reader.
#include <gtest/gtest.h>

#include <sstream>

#include <nlohmann/json.hpp>

#include "control/progress_watch.h"
#include "control/status_format.h"
#include "control/status_report.h"

namespace clonefs::control {
namespace {

using Json = nlohmann::json;

// Parses a document; a text that is not JSON fails the test (the exception).
Json ParseJson(const std::string& text) { return Json::parse(text); }

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
  Json doc = ParseJson(ReportToJson(r));
  const Json& d = doc;
  auto u = [](const Json& v) { return v.get<uint64_t>(); };
  EXPECT_EQ(u(d.at("schema_version")), static_cast<uint64_t>(kStatusSchemaVersion));
  EXPECT_TRUE(d.at("live").get<bool>());
  EXPECT_EQ(u(d.at("pid")), 4321u);
  EXPECT_EQ(u(d.at("uptime_seconds")), 99u);
  EXPECT_EQ(d.at("mountpoint").get<std::string>(), "/mnt/clone");
  EXPECT_EQ(d.at("source").get<std::string>(), "/data/src \"x\".img");
  EXPECT_EQ(d.at("dest").get<std::string>(), "/data/dest.img");
  EXPECT_EQ(d.at("metadata").get<std::string>(), "/data/dest.img.clonefs");
  EXPECT_EQ(d.at("uuid").get<std::string>(), "123e4567-e89b-12d3-a456-426614174000");
  EXPECT_EQ(d.at("log").get<std::string>(), "/data/dest.img.clonefs/clonefs.log");
  EXPECT_EQ(d.at("mode").get<std::string>(), "rw");
  EXPECT_EQ(d.at("state").get<std::string>(), "hydrating");
  EXPECT_EQ(d.at("source_state").get<std::string>(), "ok");
  EXPECT_TRUE(d.at("source_change").is_null());
  EXPECT_FALSE(d.at("hydration_done").get<bool>());
  EXPECT_EQ(u(d.at("image_size")), (1000ull << 16) + 4096);
  EXPECT_EQ(u(d.at("region_size")), 65536u);
  const Json& regions = d.at("regions");
  ASSERT_TRUE(regions.is_object());
  EXPECT_EQ(u(regions.at("total")), 1001u);
  EXPECT_EQ(u(regions.at("hydrated")), 250u);
  EXPECT_EQ(u(regions.at("committed")), 240u);
  EXPECT_EQ(u(regions.at("hydrating")), 7u);
  const Json& bytes = d.at("bytes");
  ASSERT_TRUE(bytes.is_object());
  EXPECT_EQ(u(bytes.at("total")), (1000ull << 16) + 4096);
  EXPECT_EQ(u(bytes.at("hydrated")), 250ull << 16);
  EXPECT_EQ(u(bytes.at("remaining")), (750ull << 16) + 4096);
  EXPECT_EQ(u(bytes.at("copied")), 123456789u);
  EXPECT_EQ(u(bytes.at("zeroed")), 4096u);
  EXPECT_NEAR(d.at("hydrated_percent").get<double>(), 100.0 * 250 * 65536 / (1000.0 * 65536 + 4096),
              1e-3);
  EXPECT_EQ(u(bytes.at("remaining_copy")), (750ull << 16) + 4096);
  EXPECT_EQ(u(d.at("copy_rate_bytes_per_s")), 1u << 20);
  EXPECT_EQ(u(d.at("zero_rate_bytes_per_s")), 1u << 30);
  EXPECT_EQ(u(d.at("copy_rate_window_seconds")), 8u);
  // ETA: remaining / rate, rounded up.
  uint64_t remaining = (750ull << 16) + 4096;
  EXPECT_EQ(u(d.at("eta_seconds")), (remaining + (1 << 20) - 1) / (1 << 20));
  EXPECT_TRUE(d.at("eta_reason").is_null());
  const Json& knobs = d.at("knobs");
  ASSERT_TRUE(knobs.is_object());
  EXPECT_TRUE(knobs.at("hydration_enabled").get<bool>());
  EXPECT_EQ(u(knobs.at("hydration_threshold")), 33u);
  EXPECT_EQ(u(knobs.at("hydration_batch_size")), 9u);
  EXPECT_EQ(u(knobs.at("rate_bytes_per_s")), 5000000u);
  EXPECT_TRUE(knobs.at("discard_passdown").get<bool>());
  const Json& failures = d.at("failures");
  ASSERT_TRUE(failures.is_object());
  EXPECT_EQ(u(failures.at("copy")), 3u);
  EXPECT_EQ(u(failures.at("commit")), 1u);
  EXPECT_EQ(u(d.at("commits")), 42u);
  const Json& space = d.at("metadata_space");
  ASSERT_TRUE(space.is_object());
  EXPECT_EQ(u(space.at("block_size")), 4096u);
  EXPECT_EQ(u(space.at("used_blocks")), 77u);
  EXPECT_EQ(u(space.at("total_blocks")), 100000u);
  // Every documented top-level key, and nothing else.
  std::vector<std::string> keys;
  // In document order: ordered_json keeps it.
  const nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(ReportToJson(r));
  for (const auto& m : ordered.items()) {
    keys.push_back(m.key());
  }
  std::vector<std::string> want = {"schema_version",
                                   "live",
                                   "pid",
                                   "uptime_seconds",
                                   "mountpoint",
                                   "source",
                                   "dest",
                                   "metadata",
                                   "uuid",
                                   "log",
                                   "name",
                                   "mode",
                                   "state",
                                   "source_state",
                                   "source_change",
                                   "dest_state",
                                   "dest_change",
                                   "source_connection",
                                   "health",
                                   "last_error",
                                   "hydration_done",
                                   "image_size",
                                   "region_size",
                                   "regions",
                                   "bytes",
                                   "hydrated_percent",
                                   "copy_rate_bytes_per_s",
                                   "zero_rate_bytes_per_s",
                                   "copy_rate_window_seconds",
                                   "eta_seconds",
                                   "eta_reason",
                                   "knobs",
                                   "failures",
                                   "commits",
                                   "read_driven",
                                   "passthrough",
                                   "fuse",
                                   "metadata_space",
                                   "settings",
                                   "settings_error"};
  EXPECT_EQ(keys, want);
}

// The FUSE layer's part (passthrough after completion): in JSON (null when
// the daemon does not say, as offline), round trip, the human lines; a
// document without the fields (an older daemon) still reads.
TEST(StatusJsonTest, FuseLayerIsReported) {
  StatusReport r = BuildLiveReport(SampleStats(), SampleInfo(), 1, 2);
  Json doc = ParseJson(ReportToJson(r));
  EXPECT_TRUE(doc.at("passthrough").is_null());
  EXPECT_TRUE(doc.at("fuse").is_null());
  EXPECT_EQ(FormatHuman(r).find("Passthrough:"), std::string::npos);

  r.fuse.passthrough = "active";
  r.fuse.opens = 5;
  r.fuse.passthrough_opens = 3;
  r.fuse.read_requests = 1234;
  r.fuse.write_requests = 56;
  r.fuse.transport = "io_uring (2 queues, 8 threads, 40 entries, 3 workers)";
  r.fuse.uring_requests = 1200;
  r.fuse.uring_direct = 900;
  doc = ParseJson(ReportToJson(r));
  EXPECT_EQ(doc.at("passthrough").get<std::string>(), "active");
  const Json& f = doc.at("fuse");
  ASSERT_TRUE(f.is_object());
  EXPECT_EQ(f.at("opens").get<uint64_t>(), 5u);
  EXPECT_EQ(f.at("passthrough_opens").get<uint64_t>(), 3u);
  EXPECT_EQ(f.at("read_requests").get<uint64_t>(), 1234u);
  EXPECT_EQ(f.at("write_requests").get<uint64_t>(), 56u);
  EXPECT_EQ(f.at("transport").get<std::string>(),
            "io_uring (2 queues, 8 threads, 40 entries, 3 workers)");
  EXPECT_EQ(f.at("uring_requests").get<uint64_t>(), 1200u);
  EXPECT_EQ(f.at("uring_direct").get<uint64_t>(), 900u);
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->fuse, r.fuse);
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("Passthrough:  active  (3 of 5 opens passed through)"), std::string::npos) << h;
  EXPECT_NE(h.find("Requests:     1234 reads, 56 writes served by the daemon"), std::string::npos)
      << h;
  EXPECT_NE(h.find("Transport:    io_uring (2 queues, 8 threads, 40 entries, 3 workers)  (1200 "
                   "requests through "
                   "io_uring, 900 of them direct)"),
            std::string::npos)
      << h;
  StatusReport unknown = r;  // a daemon that does not say: null, and no line
  unknown.fuse.transport.clear();
  unknown.fuse.uring_requests = 0;
  unknown.fuse.uring_direct = 0;
  EXPECT_TRUE(ParseJson(ReportToJson(unknown)).at("fuse").at("transport").is_null());
  EXPECT_EQ(FormatHuman(unknown).find("Transport:"), std::string::npos);
  back = ReportFromJsonText(ReportToJson(unknown, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->fuse, unknown.fuse);

  // Offline: null whatever the report holds.
  StatusReport off = r;
  off.live = false;
  doc = ParseJson(ReportToJson(off));
  EXPECT_TRUE(doc.at("passthrough").is_null());
  EXPECT_TRUE(doc.at("fuse").is_null());

  // An older daemon's document has neither field.
  Json old = ParseJson(ReportToJson(BuildLiveReport(SampleStats(), SampleInfo(), 1, 2)));
  ASSERT_EQ(old.erase("passthrough"), 1u);
  ASSERT_EQ(old.erase("fuse"), 1u);
  back = ReportFromJsonText(old.dump());
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
  s.copier_prefetch_room_bytes = 48ull << 20;
  s.source_latency_floor_ns = 47'123'456;
  s.source_link_shared = true;
  s.copier_window_bytes = 3ull << 20;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  Json doc = ParseJson(ReportToJson(r));
  const Json& d = doc.at("read_driven");
  EXPECT_EQ(d.at("prefetch").at("room_bytes").get<uint64_t>(), 48ull << 20);
  EXPECT_TRUE(d.at("pipeline").at("shared_link").get<bool>());
  EXPECT_EQ(d.at("pipeline").at("window_bytes").get<uint64_t>(), 3ull << 20);
  EXPECT_EQ(d.at("prefetch").at("source_latency_floor_us").get<uint64_t>(), 47123u);
  ASSERT_TRUE(d.is_object());
  EXPECT_TRUE(d.at("copy_on_read").get<bool>());
  EXPECT_EQ(d.at("source_bytes").at("users").get<uint64_t>(), 3ull << 20);
  EXPECT_EQ(d.at("source_bytes").at("copier_read_ahead").get<uint64_t>(), 4ull << 20);
  EXPECT_EQ(d.at("regions_hydrated_by").at("copy_on_read").get<uint64_t>(), 48u);
  EXPECT_EQ(d.at("profile").at("total_regions").get<uint64_t>(), 28u);
  EXPECT_EQ(d.at("recording_profile").at("path").get<std::string>(), s.record_profile_path);
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
  EXPECT_NE(h.find("Prefetch:     up to 48.00 MiB in flight (the source answers in 47.1 ms at "
                   "best)"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("Pipeline:     up to 3.00 MiB of copies in flight (one connection: user "
                   "reads queue behind copies"),
            std::string::npos)
      << h;
  // A daemon that predates the prefetch and pipeline fields: 0, not an error.
  Json old = ParseJson(ReportToJson(r, 0));
  old.at("read_driven").erase("prefetch");
  old.at("read_driven").erase("pipeline");
  Result<StatusReport> older = ReportFromJsonText(old.dump());
  ASSERT_TRUE(older.ok()) << older.status().ToString();
  EXPECT_EQ(older->read_driven.prefetch_room_bytes, 0u);
  EXPECT_FALSE(older->read_driven.shared_link);
  EXPECT_EQ(older->read_driven.window_bytes, 0u);
  EXPECT_EQ(older->read_driven.profile_recorded, 111u);
  // No profile, hints off: said so; null in JSON.
  s.read_hints = false;
  s.profile_total = 0;
  s.record_profile_path.clear();
  s.source_latency_floor_ns = 0;
  s.source_link_shared = false;
  r = BuildLiveReport(s, SampleInfo(), 1, 2);
  doc = ParseJson(ReportToJson(r));
  EXPECT_EQ(FormatHuman(r).find("Pipeline:"), std::string::npos) << FormatHuman(r);
  EXPECT_TRUE(doc.at("read_driven").at("profile").is_null());
  EXPECT_TRUE(doc.at("read_driven").at("prefetch").at("source_latency_floor_us").is_null());
  EXPECT_NE(FormatHuman(r).find("in flight (no source read answered yet)"), std::string::npos)
      << FormatHuman(r);
  EXPECT_TRUE(doc.at("read_driven").at("recording_profile").is_null());
  EXPECT_NE(FormatHuman(r).find("Order:        read hints off, then bitmap order"),
            std::string::npos)
      << FormatHuman(r);
}

// SPEC §7a: a dest truncated under the clone is said in JSON, in the human
// block, in the progress line, and such a clone is never "complete".
// Before anything was read from the source, the users' share of the
// source reads is not shown as 100%.
TEST(HumanStatusTest, SourceReadsOfNothingShowNoShare) {
  ReadDrivenReport d;
  EXPECT_EQ(FormatSourceReads(d),
            "0 B for users, 0 B by the copier (read-ahead 0 B, near reads 0 B)");
  d.copier_source_bytes = 4096;
  EXPECT_EQ(FormatSourceReads(d),
            "0 B for users (0%), 4.00 KiB by the copier (read-ahead 0 B, near reads 0 B)");
  d.user_source_bytes = 4096;
  d.copier_source_bytes = 0;
  EXPECT_EQ(FormatSourceReads(d),
            "4.00 KiB for users (100%), 0 B by the copier (read-ahead 0 B, near reads 0 B)");
}

TEST(StatusJsonTest, DestChangeIsReportedAndNeverComplete) {
  EngineStats s = SampleStats();
  s.dest_change = "/data/dest.img shrank from 67108864 to 33554432 bytes";
  s.hydrated_regions = s.committed_hydrated_regions = s.nr_regions;
  s.hydrated_bytes = s.image_size;
  s.hydration_done = true;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_EQ(r.State(), "dest-changed");
  EXPECT_EQ(r.health, "failed: dest changed");
  Json doc = ParseJson(ReportToJson(r));
  EXPECT_EQ(doc.at("state").get<std::string>(), "dest-changed");
  EXPECT_EQ(doc.at("dest_state").get<std::string>(), "changed");
  EXPECT_EQ(doc.at("dest_change").get<std::string>(), s.dest_change);
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->dest_change, s.dest_change);
  EXPECT_EQ(ReportToJson(*back), ReportToJson(r));
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("State:        dest-changed"), std::string::npos) << h;
  EXPECT_NE(h.find("Dest state:   changed: /data/dest.img shrank from 67108864 to 33554432 bytes"),
            std::string::npos)
      << h;
  EXPECT_NE(FormatProgress(r, 0).find("(dest-changed)"), std::string::npos) << FormatProgress(r, 0);
  // An unchanged dest adds no line, and older daemons' documents (without
  // the keys) read as unchanged.
  const StatusReport ok = BuildLiveReport(SampleStats(), SampleInfo(), 1, 2);
  EXPECT_EQ(FormatHuman(ok).find("Dest state:"), std::string::npos);
  Json old_doc = ParseJson(ReportToJson(ok));
  old_doc.erase("dest_state");
  old_doc.erase("dest_change");
  Result<StatusReport> old_back = ReportFromJson(old_doc);
  ASSERT_TRUE(old_back.ok()) << old_back.status().ToString();
  EXPECT_TRUE(old_back->dest_change.empty());
}

// A commit stuck at one step (a dest flush that does not return): shown
// from kCommitSlowNanos on, in JSON and the human block; from
// kCommitStalledNanos on the health says so. The key is absent otherwise (so
// documents stay as they were), and reads as no commit running.
TEST(StatusJsonTest, AStalledCommitIsReported) {
  EngineStats s = SampleStats();
  s.commit_step = "flushing the destination";
  s.commit_step_ns = kCommitSlowNanos - 1;
  StatusReport quick = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_TRUE(quick.commit_step.empty());
  EXPECT_FALSE(ParseJson(ReportToJson(quick)).contains("commit_running"));
  EXPECT_EQ(FormatHuman(quick).find("Commit:"), std::string::npos);
  EXPECT_EQ(quick.health, "ok");

  s.commit_step_ns = 42'500'000'000;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_EQ(r.health, "degraded: commit stalled");
  Json doc = ParseJson(ReportToJson(r));
  EXPECT_EQ(doc.at("commit_running").at("step").get<std::string>(), "flushing the destination");
  EXPECT_EQ(doc.at("commit_running").at("seconds").get<uint64_t>(), 42u);
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("Commit:       still flushing the destination after 42s"), std::string::npos)
      << h;
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->commit_step, "flushing the destination");
  EXPECT_EQ(back->commit_step_s, 42u);
  EXPECT_EQ(ReportToJson(*back), ReportToJson(r));

  s.commit_step_ns = kCommitStalledNanos - 1;
  EXPECT_EQ(BuildLiveReport(s, SampleInfo(), 1, 2).health, "ok");
  doc.erase("commit_running");
  Result<StatusReport> old = ReportFromJson(doc);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_TRUE(old->commit_step.empty());
}

// SPEC §7a: a source that changed under the clone is said in JSON and in
// the human block, and such a clone is never "complete".
TEST(StatusJsonTest, SourceChangeIsReportedAndNeverComplete) {
  EngineStats s = SampleStats();
  s.source_change = "/data/src.img shrank from 67108864 to 33554432 bytes";
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_EQ(r.State(), "source-changed");
  EXPECT_FALSE(r.eta_s.has_value());  // copying has stopped
  Json doc = ParseJson(ReportToJson(r));
  EXPECT_EQ(doc.at("state").get<std::string>(), "source-changed");
  EXPECT_EQ(doc.at("source_state").get<std::string>(), "changed");
  EXPECT_EQ(doc.at("source_change").get<std::string>(), s.source_change);
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
  // Without its health, the line ends where the health would have begun.
  const std::string bare = FormatProgress(r, 0, ProgressHealth::kOmit);
  EXPECT_EQ(bare.find("failed"), std::string::npos) << bare;
  EXPECT_EQ(FormatProgress(r, 0), bare + "  " + r.health);
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

// The precondition that keeps another version of an http(s) source out is
// shown (human and JSON), survives the reader, and is null where there is
// none or in a document from a daemon that predates it.
TEST(StatusJsonTest, TheSourceGuardIsReported) {
  EngineStats s = SampleStats();
  StatusReport none = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_TRUE(ParseJson(ReportToJson(none)).at("source_connection").at("guard").is_null());
  EXPECT_NE(FormatHuman(none).find("Source link:  connected\n"), std::string::npos);
  s.source_health.guard = "If-Match: \"6b0d44b9-800000\"";
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_EQ(ParseJson(ReportToJson(r)).at("source_connection").at("guard").get<std::string>(),
            "If-Match: \"6b0d44b9-800000\"");
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->source_health.guard, s.source_health.guard);
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("Source link:  connected (every request carries If-Match: "
                   "\"6b0d44b9-800000\")\n"),
            std::string::npos)
      << h;
  // Not once the source changed: the change is what matters then.
  s.source_health.state = SourceHealth::State::kChanged;
  s.source_health.change = "the file under the URL was replaced";
  EXPECT_EQ(FormatHuman(BuildLiveReport(s, SampleInfo(), 1, 2)).find("every request carries"),
            std::string::npos);
  std::string old = ReportToJson(r, 0);
  const std::string key = ",\"guard\":\"If-Match: \\\"6b0d44b9-800000\\\"\"";
  const size_t at = old.find(key);
  ASSERT_NE(at, std::string::npos) << old;
  old.erase(at, key.size());
  Result<StatusReport> older = ReportFromJsonText(old);
  ASSERT_TRUE(older.ok()) << older.status().ToString();
  EXPECT_EQ(older->source_health.guard, "");
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
  Json doc = ParseJson(ReportToJson(r));
  const Json& c = doc.at("source_connection");
  ASSERT_TRUE(c.is_object());
  EXPECT_EQ(c.at("state").get<std::string>(), "reconnecting");
  EXPECT_EQ(c.at("since_unix_s").get<uint64_t>(), 1'795'000'000u);
  EXPECT_EQ(c.at("last_error").get<std::string>(), "nbd: connection reset by peer");
  EXPECT_EQ(c.at("errors").get<uint64_t>(), 7u);
  EXPECT_EQ(c.at("reconnects").get<uint64_t>(), 2u);
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
  EXPECT_TRUE(c.at("oldest_request_unix_s").is_null());
  // A request that has waited a while (before any timeout): JSON gives when
  // it was sent, the text how long it has waited (from a second on).
  s.source_health = SourceHealth();
  s.source_health.oldest_request_unix_ns = 1'795'000'000'000'000'000ull;
  StatusReport waiting = BuildLiveReport(s, SampleInfo(), 1, 2);
  EXPECT_EQ(ParseJson(ReportToJson(waiting))
                .at("source_connection")
                .at("oldest_request_unix_s")
                .get<uint64_t>(),
            1'795'000'000u);
  Result<StatusReport> waiting_back = ReportFromJsonText(ReportToJson(waiting, 0));
  ASSERT_TRUE(waiting_back.ok()) << waiting_back.status().ToString();
  EXPECT_EQ(waiting_back->source_health.oldest_request_unix_ns, 1'795'000'000'000'000'000ull);
  const std::string w = FormatHuman(waiting, 1'795'000'012'500'000'000ull);
  EXPECT_NE(w.find("Source link:  connected, a request unanswered for 12s\n"), std::string::npos)
      << w;
  EXPECT_NE(FormatHuman(waiting, 1'795'000'000'400'000'000ull).find("Source link:  connected\n"),
            std::string::npos)
      << "under a second is an ordinary round trip";
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

// A source found changed (SPEC §7a) is not "connected": the link says
// changed, since when and what, in JSON and text alike, and survives the
// reader.
TEST(StatusJsonTest, SourceConnectionSaysTheSourceChanged) {
  EngineStats s = SampleStats();
  const std::string what =
      "source nbd://h/e is not the same after reconnecting: source fingerprint differs";
  s.source_change = what;
  s.source_health.state = SourceHealth::State::kChanged;
  s.source_health.since_unix_ns = 1'795'000'000'000'000'000ull;
  s.source_health.change = what;
  s.source_health.last_error = what;
  s.source_health.last_error_unix_ns = 1'795'000'000'000'000'000ull;
  s.source_health.errors = 1;
  s.source_health.reconnects = 1;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  Json doc = ParseJson(ReportToJson(r));
  const Json& c = doc.at("source_connection");
  EXPECT_EQ(c.at("state").get<std::string>(), "changed");
  EXPECT_EQ(c.at("since_unix_s").get<uint64_t>(), 1'795'000'000u);
  EXPECT_EQ(c.at("change").get<std::string>(), what);
  EXPECT_EQ(doc.at("source_state").get<std::string>(), "changed");
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->source_health.state, SourceHealth::State::kChanged);
  EXPECT_EQ(back->source_health.change, what);
  EXPECT_EQ(ReportToJson(*back), ReportToJson(r));
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("Source link:  changed since 2026-11-18 "), std::string::npos) << h;
  EXPECT_NE(h.find(" UTC: " + what + "  (1 errors, 0 retries, 1 reconnects)\n"), std::string::npos)
      << h;
  EXPECT_EQ(h.find("Source link:  connected"), std::string::npos) << h;
  // While connected, the field is null.
  Json ok = ParseJson(ReportToJson(BuildLiveReport(SampleStats(), SampleInfo(), 1, 2)));
  EXPECT_TRUE(ok.at("source_connection").at("change").is_null());
}

// `changed` and `released` are states a script acts on, which a reader of
// schema 2 did not know: documents that may carry them say schema 3 (an
// older reader then refuses them as newer, rather than as malformed).
TEST(StatusJsonTest, ReleasedAndChangedStatesComeWithSchema3) {
  EngineStats s = SampleStats();
  s.hydration_done = true;
  s.source_health.state = SourceHealth::State::kReleased;
  s.source_health.since_unix_ns = 1'795'000'000'000'000'000ull;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  Json doc = ParseJson(ReportToJson(r));
  EXPECT_EQ(doc.at("source_connection").at("state").get<std::string>(), "released");
  EXPECT_EQ(doc.at("schema_version").get<uint64_t>(), 3u);
  Result<StatusReport> back = ReportFromJsonText(ReportToJson(r, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->source_health.state, SourceHealth::State::kReleased);
  // Daemons that wrote these states under schema 2 are still read.
  std::string old = ReportToJson(r, 0);
  const std::string v3 = "\"schema_version\":3";
  ASSERT_NE(old.find(v3), std::string::npos);
  old.replace(old.find(v3), v3.size(), "\"schema_version\":2");
  Result<StatusReport> older = ReportFromJsonText(old);
  ASSERT_TRUE(older.ok()) << older.status().ToString();
  EXPECT_EQ(older->source_health.state, SourceHealth::State::kReleased);
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
  Json d = ParseJson(ReportToJson(r));
  for (const char* k :
       {"pid", "uptime_seconds", "mountpoint", "log", "mode", "copy_rate_bytes_per_s",
        "zero_rate_bytes_per_s", "copy_rate_window_seconds", "eta_seconds", "eta_reason", "knobs",
        "failures", "commits", "source_state", "source_change", "dest_state", "dest_change",
        "read_driven"}) {
    ASSERT_TRUE(d.contains(k)) << k;
    EXPECT_TRUE(d.at(k).is_null()) << k;
  }
  EXPECT_TRUE(d.at("regions").at("hydrating").is_null());
  EXPECT_EQ(d.at("state").get<std::string>(), "complete");
  Result<StatusReport> back = ReportFromJson(d);
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
  // ...and zeroing goes on between the copies, not after them: the longer
  // of the two, not their sum (13 s), which counted the same seconds twice.
  EXPECT_EQ(EstimateEta(s).seconds, 10u);
  s.zero_rate_bytes_per_s = 6 << 20;
  EXPECT_EQ(EstimateEta(s).seconds, 15u);  // zeroing is the longer
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
  // The rate still shows the copies before, but every region left is
  // failing: no ETA (before, "ETA 1s" for two rate windows). A region
  // failing among others that copy leaves the ETA to the rate.
  s.copy_rate_bytes_per_s = 1 << 20;
  s.region_size = 1 << 20;
  s.hydrated_bytes = s.image_size - (3 << 20);
  s.copy_failing_regions = 3;
  EXPECT_FALSE(EstimateEta(s).seconds.has_value());
  EXPECT_EQ(EstimateEta(s).reason, "copies failing, retrying");
  s.copy_failing_regions = 2;
  EXPECT_EQ(EstimateEta(s).seconds, std::optional<uint64_t>(3));
  s.copy_failing_regions = 0;
  s.hydrated_bytes = 0;
  // A source that has not answered for 10 s or more: no ETA from the rate
  // measured before, and why; an answer awaited for less is no news.
  s.source_silent_ns = 9'000'000'000;
  EXPECT_EQ(EstimateEta(s).seconds, 10u);
  s.source_silent_ns = 12'500'000'000;
  EXPECT_FALSE(EstimateEta(s).seconds.has_value());
  EXPECT_EQ(EstimateEta(s).reason, "waiting for the source (no answer for 12s)");
  s.remaining_copy_bytes = 0;  // only holes left: zeroing needs no source
  EXPECT_EQ(EstimateEta(s).seconds, 0u);
  s.remaining_copy_bytes = 10 << 20;
  // A link already said to be stalled (a --source-timeout under 10 s): no
  // ETA either (before, "ETA 2m10s" beside "stalled").
  s.source_silent_ns = 8'000'000'000;
  s.source_health.state = SourceHealth::State::kStalled;
  EXPECT_EQ(EstimateEta(s).reason, "waiting for the source (stalled, no answer for 8s)");
  s.source_health.state = SourceHealth::State::kConnected;
  s.copy_rate_bytes_per_s = 0;
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
  const std::string current = "\"schema_version\":" + std::to_string(kStatusSchemaVersion);
  const size_t v = doc.find(current);
  ASSERT_NE(v, std::string::npos);
  doc.replace(v, current.size(), "\"schema_version\":1");
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
  // Regions whose copies keep failing while the source as a whole is
  // fine (bad sectors in a few places): before, health stayed ok.
  s.copy_failing_regions = 2;
  EXPECT_EQ(HealthOf(s), "degraded: copies failing");
  s.copier_pause = "source failing";
  EXPECT_EQ(HealthOf(s), "degraded: source read errors");
  // Nothing from the source for 10 s while a request waits, before the
  // timeout makes it stalled: before, ok until then.
  s.source_silent_ns = 9'000'000'000;
  EXPECT_EQ(HealthOf(s), "degraded: source read errors");
  s.source_silent_ns = 10'000'000'000;
  EXPECT_EQ(HealthOf(s), "degraded: source not answering");
  s.source_health.state = SourceHealth::State::kStalled;
  EXPECT_EQ(HealthOf(s), "degraded: source stalled");
  // The copier pauses for a stalled source as for one that is down: still
  // stalled, not "unreachable" (a file source whose file system stopped
  // answering changed from one to the other 4 s into its stall).
  s.copier_pause = "source down";
  EXPECT_EQ(HealthOf(s), "degraded: source stalled");
  s.source_health.state = SourceHealth::State::kReconnecting;
  EXPECT_EQ(HealthOf(s), "degraded: source unreachable");
  s.source_health.state = SourceHealth::State::kConnected;
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

// Regions whose copies keep failing: the health says so, the human block
// counts them, and the JSON carries the count (absent from older daemons:
// 0).
TEST(HealthTest, FailingRegionsAreShownAndCarried) {
  EngineStats s = SampleStats();
  s.copy_failures = 15;
  s.commit_failures = 0;
  s.copy_failing_regions = 2;
  const StatusReport r = BuildLiveReport(s, SampleInfo(), 1, 2);
  const std::string h = FormatHuman(r);
  EXPECT_NE(h.find("Health:       degraded: copies failing\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Failures:     15 copy, 0 commit; 2 regions failing to copy, retried with "
                   "backoff (see Last error)\n"),
            std::string::npos)
      << h;
  std::string json = ReportToJson(r, 0);
  Result<StatusReport> back = ReportFromJsonText(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->copy_failing_regions, 2u);
  const std::string key = ",\"failing_regions\":2";
  const size_t at = json.find(key);
  ASSERT_NE(at, std::string::npos) << json;
  json.erase(at, key.size());
  back = ReportFromJsonText(json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->copy_failing_regions, 0u);
  s.copy_failing_regions = 0;
  EXPECT_NE(FormatHuman(BuildLiveReport(s, SampleInfo(), 1, 2)).find("15 copy, 0 commit\n"),
            std::string::npos);
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

// Every kind of field at once: a last error, a reconnecting source, a
// replayed and a recorded profile, stored settings, strings that need
// escaping, a fractional percent.
StatusReport GoldenLiveReport() {
  EngineStats s = DestFullStats();
  s.last_error.what = "copy write to dest\tat \"offset\" 4194304:\x01 No space left on device";
  s.source_health.state = SourceHealth::State::kReconnecting;
  s.source_health.since_unix_ns = 1'795'000'000'000'000'000ull;
  s.source_health.last_error = "nbd: connection reset by peer";
  s.source_health.last_error_unix_ns = 1'795'000'001'000'000'000ull;
  s.source_health.errors = 7;
  s.source_health.retries = 3;
  s.source_health.reconnects = 2;
  s.copy_on_read = true;
  s.profile_hydrated = 7;
  s.profile_total = 28;
  s.record_profile_path = "/var/lib/clonefs/boot.profile";
  s.profile_recorded = 111;
  s.copier_prefetch_room_bytes = 16 << 20;
  s.source_latency_floor_ns = 4'512'345;
  s.copier_window_bytes = 64 << 20;
  s.copy_failing_regions = 2;
  StatusReport r = BuildLiveReport(s, SampleInfo(), 4321, 99);
  r.settings.rate_bytes_per_s = 200 << 20;
  r.settings.name = "vm1.img";
  r.fuse.passthrough = "waiting for completion";
  r.fuse.opens = 2;
  r.fuse.read_requests = 81234;
  r.fuse.write_requests = 5120;
  r.fuse.transport = "/dev/fuse (--fuse-transport dev)";
  return r;
}

StatusReport GoldenOfflineReport() {
  StatusReport r = GoldenLiveReport();
  r.live = false;
  r.hydrated_regions = r.committed_hydrated_regions = r.nr_regions;
  r.hydrated_bytes = r.image_size;
  r.hydration_done = true;
  r.settings_error = "settings: checksum mismatch";
  return r;
}

// SPEC §7a: a full dest shows as the health and as the last error (what,
// errno, when, how many), in JSON (ISO 8601 UTC time) and in the human block
// (how long ago), and survives the reader.
TEST(StatusJsonTest, HealthAndLastErrorAreReported) {
  StatusReport r = BuildLiveReport(DestFullStats(), SampleInfo(), 1, 2);
  EXPECT_EQ(r.health, "degraded: dest full");
  Json doc = ParseJson(ReportToJson(r));
  EXPECT_GE(doc.at("schema_version").get<uint64_t>(), 2u);  // health: since 2
  EXPECT_EQ(doc.at("health").get<std::string>(), "degraded: dest full");
  const Json& e = doc.at("last_error");
  ASSERT_TRUE(e.is_object());
  EXPECT_EQ(e.at("kind").get<std::string>(), "dest-full");
  EXPECT_EQ(e.at("what").get<std::string>(),
            "copy write to dest at offset 4194304: No space left on device");
  EXPECT_EQ(e.at("errno").get<uint64_t>(), 28u);
  EXPECT_EQ(e.at("errno_name").get<std::string>(), "ENOSPC");
  EXPECT_EQ(e.at("time").get<std::string>(), "2026-11-18T11:06:40Z");
  EXPECT_EQ(e.at("count").get<uint64_t>(), 4641u);

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
  doc = ParseJson(ReportToJson(ok));
  EXPECT_EQ(doc.at("health").get<std::string>(), "ok");
  EXPECT_TRUE(doc.at("last_error").is_null());
  h = FormatHuman(ok, now);
  EXPECT_NE(h.find("Health:       ok\n"), std::string::npos) << h;
  EXPECT_NE(h.find("Last error:   none\n"), std::string::npos) << h;
  back = ReportFromJsonText(ReportToJson(ok, 0));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_TRUE(back->last_error.empty());

  // Offline: both null.
  StatusReport off = ok;
  off.live = false;
  doc = ParseJson(ReportToJson(off));
  EXPECT_TRUE(doc.at("health").is_null());
  EXPECT_TRUE(doc.at("last_error").is_null());
}

// A document from a daemon that predates schema 2 has neither field.
TEST(StatusJsonTest, ReaderToleratesSchema1WithoutHealth) {
  Json doc = ParseJson(ReportToJson(BuildLiveReport(DestFullStats(), SampleInfo(), 1, 2), 0));
  std::string text = ReportToJson(BuildLiveReport(DestFullStats(), SampleInfo(), 1, 2), 0);
  auto cut = [&](const std::string& key) {
    const size_t a = text.find("\"" + key + "\":");
    ASSERT_NE(a, std::string::npos) << key;
    const size_t b = text.find("\"hydration_done\"", a);
    ASSERT_NE(b, std::string::npos);
    text.erase(a, b - a);
  };
  cut("health");  // removes health and last_error, which precede hydration_done
  const std::string current = "\"schema_version\":" + std::to_string(kStatusSchemaVersion);
  const size_t v = text.find(current);
  ASSERT_NE(v, std::string::npos) << text;
  text.replace(v, current.size(), "\"schema_version\":1");
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

// The documents, byte for byte, as the project's own JSON writer wrote them
// before nlohmann/json took over (docs/control.md: field order, two-space
// indent, escapes, whole percents without a fraction): scripts that compare
// or grep the text see no change. ("passthrough", "fuse" and "guard" came later.)
constexpr char kGoldenLive[] = R"json({
  "schema_version": 3,
  "live": true,
  "pid": 4321,
  "uptime_seconds": 99,
  "mountpoint": "/mnt/clone",
  "source": "/data/src \"x\".img",
  "dest": "/data/dest.img",
  "metadata": "/data/dest.img.clonefs",
  "uuid": "123e4567-e89b-12d3-a456-426614174000",
  "log": "/data/dest.img.clonefs/clonefs.log",
  "name": "dest.img",
  "mode": "rw",
  "state": "hydrating",
  "source_state": "ok",
  "source_change": null,
  "dest_state": "ok",
  "dest_change": null,
  "source_connection": {
    "state": "reconnecting",
    "since_unix_s": 1795000000,
    "change": null,
    "oldest_request_unix_s": null,
    "last_error": "nbd: connection reset by peer",
    "last_error_unix_s": 1795000001,
    "errors": 7,
    "retries": 3,
    "reconnects": 2,
    "guard": null
  },
  "health": "degraded: dest full",
  "last_error": {
    "kind": "dest-full",
    "what": "copy write to dest\tat \"offset\" 4194304:\u0001 No space left on device",
    "errno": 28,
    "errno_name": "ENOSPC",
    "time": "2026-11-18T11:06:40Z",
    "count": 4641
  },
  "hydration_done": false,
  "image_size": 65540096,
  "region_size": 65536,
  "regions": {
    "total": 1001,
    "hydrated": 250,
    "committed": 240,
    "hydrating": 7
  },
  "bytes": {
    "total": 65540096,
    "hydrated": 16384000,
    "remaining": 49156096,
    "copied": 123456789,
    "zeroed": 4096,
    "remaining_copy": 49156096
  },
  "hydrated_percent": 24.9984,
  "copy_rate_bytes_per_s": 1048576,
  "zero_rate_bytes_per_s": 1073741824,
  "copy_rate_window_seconds": 8,
  "eta_seconds": 47,
  "eta_reason": null,
  "knobs": {
    "hydration_enabled": true,
    "hydration_threshold": 33,
    "hydration_batch_size": 9,
    "rate_bytes_per_s": 5000000,
    "discard_passdown": true
  },
  "failures": {
    "copy": 3,
    "commit": 1,
    "failing_regions": 2
  },
  "commits": 42,
  "read_driven": {
    "copy_on_read": true,
    "read_hints": false,
    "source_bytes": {
      "users": 0,
      "copier": 0,
      "copier_read_ahead": 0,
      "copier_near_reads": 0
    },
    "regions_hydrated_by": {
      "read_ahead": 0,
      "near_reads": 0,
      "profile": 0,
      "cursor": 0,
      "copy_on_read": 0
    },
    "sequential_readers": 0,
    "near_hints": 0,
    "profile": {
      "hydrated_regions": 7,
      "total_regions": 28
    },
    "recording_profile": {
      "path": "/var/lib/clonefs/boot.profile",
      "regions": 111
    },
    "prefetch": {
      "room_bytes": 16777216,
      "source_latency_floor_us": 4512
    },
    "pipeline": {
      "shared_link": false,
      "window_bytes": 67108864
    }
  },
  "passthrough": "waiting for completion",
  "fuse": {
    "opens": 2,
    "passthrough_opens": 0,
    "read_requests": 81234,
    "write_requests": 5120,
    "transport": "/dev/fuse (--fuse-transport dev)",
    "uring_requests": 0,
    "uring_direct": 0
  },
  "metadata_space": {
    "block_size": 4096,
    "used_blocks": 77,
    "total_blocks": 100000
  },
  "settings": {
    "name": "vm1.img",
    "rate": "209715200"
  },
  "settings_error": null
}
)json";
constexpr char kGoldenLiveCompact[] =
    R"json({"schema_version":3,"live":true,"pid":4321,"uptime_seconds":99,"mountpoint":"/mnt/clone","source":"/data/src \"x\".img","dest":"/data/dest.img","metadata":"/data/dest.img.clonefs","uuid":"123e4567-e89b-12d3-a456-426614174000","log":"/data/dest.img.clonefs/clonefs.log","name":"dest.img","mode":"rw","state":"hydrating","source_state":"ok","source_change":null,"dest_state":"ok","dest_change":null,"source_connection":{"state":"reconnecting","since_unix_s":1795000000,"change":null,"oldest_request_unix_s":null,"last_error":"nbd: connection reset by peer","last_error_unix_s":1795000001,"errors":7,"retries":3,"reconnects":2,"guard":null},"health":"degraded: dest full","last_error":{"kind":"dest-full","what":"copy write to dest\tat \"offset\" 4194304:\u0001 No space left on device","errno":28,"errno_name":"ENOSPC","time":"2026-11-18T11:06:40Z","count":4641},"hydration_done":false,"image_size":65540096,"region_size":65536,"regions":{"total":1001,"hydrated":250,"committed":240,"hydrating":7},"bytes":{"total":65540096,"hydrated":16384000,"remaining":49156096,"copied":123456789,"zeroed":4096,"remaining_copy":49156096},"hydrated_percent":24.9984,"copy_rate_bytes_per_s":1048576,"zero_rate_bytes_per_s":1073741824,"copy_rate_window_seconds":8,"eta_seconds":47,"eta_reason":null,"knobs":{"hydration_enabled":true,"hydration_threshold":33,"hydration_batch_size":9,"rate_bytes_per_s":5000000,"discard_passdown":true},"failures":{"copy":3,"commit":1,"failing_regions":2},"commits":42,"read_driven":{"copy_on_read":true,"read_hints":false,"source_bytes":{"users":0,"copier":0,"copier_read_ahead":0,"copier_near_reads":0},"regions_hydrated_by":{"read_ahead":0,"near_reads":0,"profile":0,"cursor":0,"copy_on_read":0},"sequential_readers":0,"near_hints":0,"profile":{"hydrated_regions":7,"total_regions":28},"recording_profile":{"path":"/var/lib/clonefs/boot.profile","regions":111},"prefetch":{"room_bytes":16777216,"source_latency_floor_us":4512},"pipeline":{"shared_link":false,"window_bytes":67108864}},"passthrough":"waiting for completion","fuse":{"opens":2,"passthrough_opens":0,"read_requests":81234,"write_requests":5120,"transport":"/dev/fuse (--fuse-transport dev)","uring_requests":0,"uring_direct":0},"metadata_space":{"block_size":4096,"used_blocks":77,"total_blocks":100000},"settings":{"name":"vm1.img","rate":"209715200"},"settings_error":null}
)json";
constexpr char kGoldenOffline[] = R"json({
  "schema_version": 3,
  "live": false,
  "pid": null,
  "uptime_seconds": null,
  "mountpoint": "/mnt/clone",
  "source": "/data/src \"x\".img",
  "dest": "/data/dest.img",
  "metadata": "/data/dest.img.clonefs",
  "uuid": "123e4567-e89b-12d3-a456-426614174000",
  "log": "/data/dest.img.clonefs/clonefs.log",
  "name": "dest.img",
  "mode": null,
  "state": "complete",
  "source_state": null,
  "source_change": null,
  "dest_state": null,
  "dest_change": null,
  "source_connection": null,
  "health": null,
  "last_error": null,
  "hydration_done": true,
  "image_size": 65540096,
  "region_size": 65536,
  "regions": {
    "total": 1001,
    "hydrated": 1001,
    "committed": 1001,
    "hydrating": null
  },
  "bytes": {
    "total": 65540096,
    "hydrated": 65540096,
    "remaining": 0,
    "copied": null,
    "zeroed": null,
    "remaining_copy": null
  },
  "hydrated_percent": 100,
  "copy_rate_bytes_per_s": null,
  "zero_rate_bytes_per_s": null,
  "copy_rate_window_seconds": null,
  "eta_seconds": null,
  "eta_reason": null,
  "knobs": null,
  "failures": null,
  "commits": null,
  "read_driven": null,
  "passthrough": null,
  "fuse": null,
  "metadata_space": {
    "block_size": 4096,
    "used_blocks": 77,
    "total_blocks": 100000
  },
  "settings": {
    "name": "vm1.img",
    "rate": "209715200"
  },
  "settings_error": "settings: checksum mismatch"
}
)json";

TEST(StatusJsonTest, DocumentTextIsByteCompatible) {
  EXPECT_EQ(ReportToJson(GoldenLiveReport()), kGoldenLive);
  EXPECT_EQ(ReportToJson(GoldenLiveReport(), 0), kGoldenLiveCompact);
  EXPECT_EQ(ReportToJson(GoldenOfflineReport()), kGoldenOffline);
  // And each reads back to a report that writes it again.
  for (const char* text : {kGoldenLive, kGoldenLiveCompact, kGoldenOffline}) {
    Result<StatusReport> back = ReportFromJsonText(text);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(ReportToJson(*back, text == kGoldenLiveCompact ? 0 : 2), text);
  }
}

// Paths and messages are bytes: one that is not UTF-8 still gives a valid
// document (the bad byte as U+FFFD), and control characters are escaped.
TEST(StatusJsonTest, BytesThatAreNotUtf8StillMakeValidJson) {
  StatusReport r = GoldenLiveReport();
  r.info.source = "/data/caf\xe9.img";  // Latin-1, not UTF-8
  r.info.dest = "/data/d\x7f\x1f.img";
  const std::string text = ReportToJson(r);
  EXPECT_NE(text.find("\"source\": \"/data/caf\xef\xbf\xbd.img\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"dest\": \"/data/d\x7f\\u001f.img\""), std::string::npos) << text;
  Result<StatusReport> back = ReportFromJsonText(text);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->info.source, "/data/caf\xef\xbf\xbd.img");
  EXPECT_EQ(back->info.dest, r.info.dest);
}

// What is not JSON, or not a status document, is an InvalidArgument that
// says where or which field; nothing escapes as an exception.
TEST(StatusJsonTest, ReaderRejectsWithAReason) {
  struct Case {
    std::string text, want;
  };
  const std::string good = ReportToJson(GoldenLiveReport(), 0);
  std::string wrong_type = good;
  wrong_type.replace(wrong_type.find("\"live\":true"), 11, "\"live\":\"yes\"");
  std::string negative = good;
  negative.replace(negative.find("\"image_size\":"), 14, "\"image_size\":-");
  std::string fraction = good;
  fraction.replace(fraction.find("\"commits\":42"), 12, "\"commits\":4.5");
  std::string bad_setting = good;
  bad_setting.replace(bad_setting.find("\"rate\":\"209715200\""), 18, "\"rate\":7");
  const Case cases[] = {
      {"", "not valid JSON at byte 1"},
      {"{\"schema_version\":2,", "not valid JSON at byte 21"},
      {"[1, 2]", "not an object"},
      {"{\"schema_version\":1e999}", "status JSON: "},
      {"{\"schema_version\":\"2\"}", "field 'schema_version' is not an unsigned integer"},
      {"{\"schema_version\":4}", "newer than this client understands"},
      {"{\"schema_version\":3}", "missing field 'live'"},
      {wrong_type, "field 'live' is not a boolean"},
      {negative, "field 'image_size' is not an unsigned integer"},
      {fraction, "field 'commits' is not an unsigned integer"},
      {bad_setting, "field 'settings.rate' is not a string"},
      {std::string(100000, '[') + std::string(100000, ']'), "not an object"},
  };
  for (const Case& c : cases) {
    Result<StatusReport> r = ReportFromJsonText(c.text);
    ASSERT_FALSE(r.ok()) << c.text.substr(0, 80);
    EXPECT_NE(r.status().message().find(c.want), std::string::npos)
        << c.text.substr(0, 80) << " -> " << r.status().ToString();
  }
}

}  // namespace
}  // namespace clonefs::control
