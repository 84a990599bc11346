// StatusReport: everything `clonefs status` and `clonefs info` show, as one
// value built from the engine's stats (live clone) or from the metadata store
// (clone not mounted), serialised as the JSON document of docs/control.md and
// parsed back by the client.
//
// THREAD SAFETY: values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "base/result.h"
#include "devices/source_health.h"
#include "clone/settings.h"
#include "engine/engine.h"

namespace clonefs::control {

// Bumped when a field changes meaning or disappears, or when a field that
// scripts are expected to act on is added (readers must ignore unknown
// fields). 2: `health` and `last_error`; copy_rate_bytes_per_s counts bytes
// copied from the source only (zeroing is zero_rate_bytes_per_s) and is
// smoothed; the ETA counts only what is left to copy and says why when it is
// unknown (eta_reason). 3: source_connection.state may also be `changed`
// (with source_connection.change) and `released` (the clone is complete and
// let go of its source), and source_connection.oldest_request_unix_s says
// how long the source has been silent. ReportFromJson reads versions 1 to 3.
inline constexpr int kStatusSchemaVersion = 3;

// What the daemon knows about the clone besides the engine's stats. Passed to
// ControlServer::Start.
struct ControlInfo {
  // Canonical (realpath) mountpoint. Required for the default socket path.
  std::string mountpoint;
  std::string source;        // source path as given at mount
  std::string dest;          // destination path
  std::string metadata_dir;  // metadata directory
  std::string uuid;          // clone UUID from the superblock; may be empty
  std::string log_file;      // the daemon's log file; "" if none (or offline)
  std::string name;          // the exposed file's name in mountpoint; may be empty
};

// Live only: read-driven hydration (SPEC §10) -- the hydration order in
// effect and who the source's bytes were read for. JSON "read_driven";
// absent from older daemons' documents (then all zero / off).
struct ReadDrivenReport {
  bool copy_on_read = false;
  bool read_hints = false;
  uint64_t user_source_bytes = 0;    // read from the source for users' requests
  uint64_t copier_source_bytes = 0;  // read from the source by the copier
  uint64_t ahead_source_bytes = 0;   // of those, ahead of sequential readers
  uint64_t near_source_bytes = 0;    // of those, near recent reads
  // Regions hydrated since the mount, by why.
  uint64_t ahead_regions = 0, near_regions = 0, profile_regions = 0, cursor_regions = 0,
           cor_regions = 0;
  uint64_t sequential_readers = 0;
  uint64_t near_hints = 0;
  uint64_t profile_hydrated = 0, profile_total = 0;  // profile_total 0: none replayed
  std::string record_profile;                        // "": not recording
  uint64_t profile_recorded = 0;
  // The copier's prefetch room (read-ahead, the profile) and the source
  // latency floor that sizes it (BackgroundCopier::PrefetchRoom), in
  // microseconds; 0: no copier read answered yet. JSON "prefetch"; absent
  // from older daemons' documents (then 0).
  uint64_t prefetch_room_bytes = 0;
  uint64_t source_latency_floor_us = 0;
  // Whether the source's user reads queue behind the copier's (one
  // connection), and the bytes the copier may keep in flight now
  // (BackgroundCopier::SourceWindow). JSON "pipeline"; absent from older
  // daemons' documents (then false / 0).
  bool shared_link = false;
  uint64_t window_bytes = 0;
  bool operator==(const ReadDrivenReport&) const = default;
};

// Live only: the FUSE layer (the daemon's FuseStats): FUSE passthrough after
// completion (docs/design.md) and the requests the daemon itself served.
// JSON "passthrough" and "fuse"; absent from older daemons' documents (then
// empty / 0). Passed-through I/O never reaches the daemon: it is in none of
// the counters.
struct FuseReport {
  // "active", "active for read-only opens (...)", "waiting for completion",
  // "off: <why>"; "" when unknown.
  std::string passthrough;
  uint64_t opens = 0;              // opens of the image file since the mount
  uint64_t passthrough_opens = 0;  // of those, passed through to dest
  uint64_t read_requests = 0;      // READ requests the daemon served
  uint64_t write_requests = 0;     // WRITE requests the daemon served
  // "io_uring (2 queues, 9 entries, 3 workers)" or "/dev/fuse (<why not
  // io_uring>)"; "" when unknown (older daemons).
  std::string transport;
  uint64_t uring_requests = 0;  // requests that came through io_uring
  uint64_t uring_direct = 0;    // of those, READs and WRITEs served by direct I/O
  bool operator==(const FuseReport&) const = default;
};

struct StatusReport {
  int schema_version = kStatusSchemaVersion;
  // true: a running daemon answered (every field is meaningful). false: read
  // offline from the metadata store; the live-only fields (pid, mode,
  // hydrating, copied/zeroed, rate, ETA, knobs, failures, commits, uptime) are
  // unknown and written as null.
  bool live = true;
  uint64_t pid = 0;
  uint64_t uptime_s = 0;
  ControlInfo info;
  // Live only: why the log file is not taking lines, with how many are held
  // (LogFileTrouble, base/log.h); "" when it takes every line. JSON
  // "log_trouble", present only when not "".
  std::string log_trouble;

  EngineMode mode = EngineMode::kReadWrite;
  uint64_t image_size = 0;
  uint64_t region_size = 0;
  uint64_t nr_regions = 0;
  uint64_t hydrated_regions = 0;
  uint64_t committed_hydrated_regions = 0;
  uint64_t hydrating_regions = 0;
  uint64_t hydrated_bytes = 0;
  uint64_t bytes_copied = 0;
  uint64_t bytes_zeroed = 0;
  // Live only (EngineStats): smoothed bytes/s copied from the source, and
  // hydrated by zeroing without a source read; the copy rate's window.
  uint64_t copy_rate_bytes_per_s = 0;
  uint64_t zero_rate_bytes_per_s = 0;
  uint64_t copy_rate_window_s = 0;
  // Live only: unhydrated bytes the source holds data for (an estimate,
  // EngineStats::remaining_copy_bytes). Version-1 documents: the remaining
  // bytes.
  uint64_t remaining_copy_bytes = 0;
  std::optional<uint64_t> eta_s;  // unknown: see eta_reason
  // Live only: why there is no ETA (EstimateEta); empty when eta_s is set.
  std::string eta_reason;
  bool hydration_done = false;
  HydrationKnobs knobs;
  bool discard_passdown = true;
  uint64_t copy_failures = 0;
  // Live only: unhydrated regions whose last copy failed, being retried
  // (EngineStats::copy_failing_regions); 0 from daemons that predate it.
  uint64_t copy_failing_regions = 0;
  uint64_t commit_failures = 0;
  uint64_t commits = 0;
  // Live only: a commit that has been at one step for kCommitSlowNanos or
  // longer (EngineStats::commit_step), and for how many seconds; empty / 0
  // otherwise (also from daemons that do not say).
  std::string commit_step;
  uint64_t commit_step_s = 0;
  uint64_t metadata_used_blocks = 0;
  uint64_t metadata_total_blocks = 0;
  // Live only. Empty while the source is what the clone was made from;
  // otherwise what changed under the live clone (EngineStats::source_change):
  // copying has stopped for good and the clone cannot complete.
  std::string source_change;
  // Live only. Empty while dest is the size the clone opened it with;
  // otherwise what changed (EngineStats::dest_change): every request fails
  // with EIO. Absent from older daemons' documents: then empty.
  std::string dest_change;
  // Live only: the source's reachability (a remote source reconnecting, a
  // source whose reads wait past the source timeout). Absent from older
  // daemons' documents: then connected with no errors.
  SourceHealth source_health;
  // Live only: "ok", or "degraded: <why>" / "failed: <why>" (HealthOf).
  // Absent from older daemons' documents: then "".
  std::string health;
  // Live only: the most recent device or metadata error (empty() if none).
  LastError last_error;
  ReadDrivenReport read_driven;
  FuseReport fuse;
  // The settings stored with the clone (docs/cli.md "Stored settings"), live
  // and offline.
  clone::Settings settings;
  // Why the stored settings could not be read; "" when they were.
  std::string settings_error;

  // 0..100 by bytes (the last region may be partial), floored to 4 decimals
  // (never 100 before every byte is hydrated). 100 for an empty image.
  double HydratedPercent() const;
  // "complete", "hydrating", "paused" (disabled or hydration_threshold 0),
  // "read-only", "failed", "dest-changed", "source-changed" (never
  // "complete" then);
  // offline: "complete" or "incomplete".
  std::string State() const;
  // "ok" or "changed"; live only.
  const char* SourceState() const { return source_change.empty() ? "ok" : "changed"; }
  // "ok" or "changed"; live only.
  const char* DestState() const { return dest_change.empty() ? "ok" : "changed"; }
};

// The clone's health in one phrase, from what the engine knows, the first
// that applies:
//   "failed: metadata failed"        fail mode (every I/O fails)
//   "failed: source changed"         the source changed under the clone
//   "degraded: metadata read-only"   a commit failed; nothing more is hydrated
//   "degraded: commit stalled"       a commit has been at one step (a dest
//                                    flush, the metadata write) for
//                                    kCommitStalledNanos or longer
//   "degraded: dest full"            dest answered ENOSPC/EDQUOT, no copy
//                                    succeeded since
//   "degraded: dest I/O error"       dest answered another error, likewise
//   "degraded: source unreachable"   a remote source is reconnecting
//   "degraded: source stalled"       source reads wait past the source timeout
//                                    (the copier pausing for it changes nothing)
//   "degraded: source unreachable"   the copier paused because the source is
//                                    down (its link neither of the above)
//   "degraded: source not answering" a request has waited kSourceSilentNanos
//                                    with nothing delivered meanwhile
//                                    (EngineStats::source_silent_ns)
//   "degraded: source read errors"   the copier backs off the whole source
//                                    after reads failed in a row
//   "ok"
// "failed" states do not clear while mounted; "degraded" ones clear by
// themselves when their cause does.
std::string HealthOf(const EngineStats& stats);
// A commit this long at one step is shown in status (StatusReport::
// commit_step); this long, the health says it is stalled.
inline constexpr uint64_t kCommitSlowNanos = 1'000'000'000;
inline constexpr uint64_t kCommitStalledNanos = 10'000'000'000;
// Whether `health` (a HealthOf value, or "" from an older daemon) is "ok".
inline bool HealthOk(const std::string& health) { return health.empty() || health == "ok"; }

// Builds a live report. `now_s`/`started_s` give the uptime.
StatusReport BuildLiveReport(const EngineStats& stats, const ControlInfo& info, uint64_t pid,
                             uint64_t uptime_s);

// The time until every region is hydrated, or why it cannot be said.
struct Eta {
  std::optional<uint64_t> seconds;
  std::string reason;  // non-empty exactly when seconds is unset
};
// From a live engine's stats:
//   - nothing left: 0;
//   - copying stopped (EngineStats::copy_stopped): no ETA, that reason
//     ("hydration disabled", "hydration_threshold 0", "metadata read-only",
//     "fail mode", "source changed", "waiting for the source (...)");
//   - otherwise what is left to copy (remaining_copy_bytes) at the smoothed
//     copy rate bounded by the rate ceiling in force, or what is left to
//     zero at the zero rate if that takes longer (the copier does both at
//     once; nothing when no zeroing is measured: holes take no copying),
//     rounded up;
//   - data left to copy and a source request unanswered for
//     kSourceSilentNanos or more (EngineStats::source_silent_ns): no ETA,
//     "waiting for the source (no answer for 12s)"; likewise once the link
//     is kStalled ("(stalled, no answer for 8s)");
//   - a copy rate of 0 with data left: no ETA, "copies failing, retrying"
//     when copies have failed since the start, else "measuring".
Eta EstimateEta(const EngineStats& s);
inline constexpr uint64_t kSourceSilentNanos = 10'000'000'000;

// The JSON document (schema in docs/control.md). Pretty-printed when indent>0.
std::string ReportToJson(const StatusReport& r, int indent = 2);

// Parses a document written by ReportToJson (nlohmann/json holds the parsed
// text). Errors: InvalidArgument naming the missing or ill-typed field, or
// the byte offset where the text is not JSON; NotSupported if
// schema_version is newer than kStatusSchemaVersion.
Result<StatusReport> ReportFromJson(const nlohmann::json& doc);
Result<StatusReport> ReportFromJsonText(const std::string& text);

// "rw", "ro", "Fail" (dm-clone's words).
const char* ModeWord(EngineMode m);

}  // namespace clonefs::control
