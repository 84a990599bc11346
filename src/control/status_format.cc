#include "control/status_format.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "base/clock.h"
#include "control/units.h"
#include "metadata/metadata.h"

namespace clonefs::control {
namespace {

constexpr uint64_t kSectorSize = 512;

// Paths may hold any byte; keep one field per line.
std::string Printable(const std::string& s) {
  if (s.empty()) return "-";
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

void Line(std::string* out, const char* label, const std::string& value) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%-14s", label);
  *out += buf;
  *out += value;
  *out += '\n';
}

std::string U(uint64_t v) { return std::to_string(v); }

}  // namespace

std::string FormatHuman(const StatusReport& r) { return FormatHuman(r, WallNowNanos()); }

std::string FormatLastError(const LastError& e, uint64_t now_unix_ns) {
  if (e.empty()) return "none";
  std::string out = Printable(e.what);
  if (e.err != 0) {
    const char* name = strerrorname_np(e.err);
    out += " (errno " + U(static_cast<uint64_t>(e.err)) + (name ? std::string(" ") + name : "") +
           ")";
  }
  const uint64_t ago = now_unix_ns > e.unix_ns ? (now_unix_ns - e.unix_ns) / 1'000'000'000ull : 0;
  out += ", " + FormatDuration(ago) + " ago";
  out += ", " + U(e.count) + (e.count == 1 ? " time" : " times");
  return out;
}

std::string FormatHuman(const StatusReport& r, uint64_t now_unix_ns) {
  std::string out;
  if (r.live) {
    Line(&out, "Mountpoint:", Printable(r.info.mountpoint) + "  (daemon pid " + U(r.pid) +
                                  ", up " + FormatDuration(r.uptime_s) + ")");
  } else {
    Line(&out, "Mountpoint:", "not mounted");
  }
  if (r.live && !r.info.name.empty()) {
    Line(&out, "File:", Printable(r.info.mountpoint + "/" + r.info.name));
  }
  Line(&out, "Source:", Printable(r.info.source));
  Line(&out, "Destination:", Printable(r.info.dest));
  std::string md = Printable(r.info.metadata_dir);
  if (!r.info.uuid.empty()) md += "  (uuid " + Printable(r.info.uuid) + ")";
  Line(&out, "Metadata:", md);
  if (r.live) {
    std::string log = r.info.log_file.empty() ? std::string("syslog only (no log file)")
                                              : Printable(r.info.log_file);
    if (!r.log_trouble.empty()) log += "  (" + Printable(r.log_trouble) + ")";
    Line(&out, "Log:", log);
  }
  Line(&out, "State:", r.State() + (r.live ? std::string("  (metadata mode ") + ModeWord(r.mode) + ")"
                                           : std::string()));
  if (r.live) {
    Line(&out, "Source state:",
         r.source_change.empty()
             ? std::string("ok")
             : "changed: " + Printable(r.source_change) +
                   "; copying has stopped and reads of regions not yet hydrated fail with EIO "
                   "(restore the source and mount again, or start a new clone)");
    if (!r.dest_change.empty()) {
      Line(&out, "Dest state:",
           "changed: " + Printable(r.dest_change) +
               "; every request fails with EIO and copying has stopped (unmount, then "
               "restore dest, or start a new clone)");
    }
    Line(&out, "Source link:", FormatSourceHealth(r.source_health, now_unix_ns));
    Line(&out, "Health:", r.health.empty() ? std::string("unknown") : Printable(r.health));
    Line(&out, "Last error:", FormatLastError(r.last_error, now_unix_ns));
    if (!r.commit_step.empty()) {
      Line(&out, "Commit:",
           "still " + Printable(r.commit_step) + " after " + FormatDuration(r.commit_step_s) +
               "; fsync and O_SYNC writes wait for it");
    }
  }
  Line(&out, "Hydrated:", FormatPercent(r.hydrated_bytes, r.image_size, 2) + "  " + FormatBytes(r.hydrated_bytes) +
                              " of " + FormatBytes(r.image_size));
  std::string regions = U(r.hydrated_regions) + "/" + U(r.nr_regions) + " hydrated, " +
                        U(r.committed_hydrated_regions) + " committed";
  if (r.live) regions += ", " + U(r.hydrating_regions) + " hydrating";
  regions += "  (region size " + FormatBytes(r.region_size) + ")";
  Line(&out, "Regions:", regions);
  if (r.live) {
    std::string rate = FormatRate(r.copy_rate_bytes_per_s) + " copied";
    if (r.knobs.rate_bytes_per_s != 0) {
      rate += " (limit " + FormatRate(r.knobs.rate_bytes_per_s, true) + ")";
    }
    rate += ", " + FormatRate(r.zero_rate_bytes_per_s) + " zeroed";
    if (r.hydration_done) {
      rate += "  (done)";
    } else {
      rate += "  " + FormatEta(r);
    }
    Line(&out, "Copy rate:", rate);
    Line(&out, "Copied:", FormatBytes(r.bytes_copied) + " copied, " + FormatBytes(r.bytes_zeroed) +
                              " zeroed since start");
    Line(&out, "Knobs:", std::string("hydration ") +
                             (r.knobs.hydration_enabled ? "enabled" : "disabled") +
                             ", hydration_threshold " + U(r.knobs.hydration_threshold) +
                             ", hydration_batch_size " + U(r.knobs.hydration_batch_size) +
                             ", rate " + FormatRate(r.knobs.rate_bytes_per_s, true) +
                             ", discard passdown " + (r.discard_passdown ? "on" : "off"));
    Line(&out, "Order:", FormatOrder(r));
    Line(&out, "Hydrated by:", FormatHydratedBy(r.read_driven));
    Line(&out, "Source reads:", FormatSourceReads(r.read_driven));
    Line(&out, "Prefetch:", FormatPrefetch(r.read_driven));
    if (r.read_driven.shared_link) {
      Line(&out, "Pipeline:",
           "up to " + FormatBytes(r.read_driven.window_bytes) +
               " of copies in flight (one connection: user reads queue "
               "behind copies, so the copier keeps about two round trips)");
    }
    if (!r.read_driven.record_profile.empty()) {
      Line(&out, "Recording:", "profile " + Printable(r.read_driven.record_profile) + " (" +
                                   U(r.read_driven.profile_recorded) +
                                   " regions so far; written at unmount)");
    }
    std::string failures = U(r.copy_failures) + " copy, " + U(r.commit_failures) + " commit";
    if (r.copy_failing_regions != 0) {
      failures += "; " + U(r.copy_failing_regions) +
                  (r.copy_failing_regions == 1 ? " region" : " regions") +
                  " failing to copy, retried with backoff (see Last error)";
    }
    Line(&out, "Failures:", failures);
    Line(&out, "Commits:", U(r.commits));
    if (!r.fuse.passthrough.empty()) {
      const FuseReport& f = r.fuse;
      Line(&out, "Passthrough:", Printable(f.passthrough) + "  (" + U(f.passthrough_opens) +
                                     " of " + U(f.opens) + " opens passed through)");
      Line(&out, "Requests:", U(f.read_requests) + " reads, " + U(f.write_requests) +
                                  " writes served by the daemon (passed-through I/O is not "
                                  "counted anywhere in this status)");
      if (!f.transport.empty()) {
        Line(&out, "Transport:",
             Printable(f.transport) + "  (" + U(f.uring_requests) + " requests through io_uring, " +
                 U(f.uring_direct) + " of them direct)");
      }
    }
  }
  Line(&out, "Settings:", r.settings_error.empty()
                              ? (r.settings.empty()
                                     ? std::string("none stored (built-in defaults)")
                                     : Printable(clone::DescribeSettings(r.settings)))
                              : "cannot be read: " + Printable(r.settings_error));
  Line(&out, "Metadata use:", U(r.metadata_used_blocks) + "/" + U(r.metadata_total_blocks) +
                                  " blocks of " + FormatBytes(metadata::kMetadataBlockSize) +
                                  " (" + FormatBytes(r.metadata_used_blocks *
                                                     metadata::kMetadataBlockSize) +
                                  " used)");
  return out;
}

std::string FormatEta(const StatusReport& r) {
  if (r.eta_s.has_value()) return "ETA " + FormatDuration(*r.eta_s);
  return "no ETA: " + (r.eta_reason.empty() ? std::string("unknown") : Printable(r.eta_reason));
}

std::string FormatOrder(const StatusReport& r) {
  const ReadDrivenReport& d = r.read_driven;
  std::vector<std::string> parts;
  if (d.read_hints) {
    parts.push_back("read-ahead for " + U(d.sequential_readers) + " sequential reader" +
                    (d.sequential_readers == 1 ? "" : "s"));
    parts.push_back(U(d.near_hints) + " near-read hint" + (d.near_hints == 1 ? "" : "s"));
  } else {
    parts.push_back("read hints off");
  }
  if (d.profile_total != 0) {
    parts.push_back("profile " + FormatPercent(d.profile_hydrated, d.profile_total, 0) + " (" +
                    U(d.profile_hydrated) + "/" + U(d.profile_total) + " regions)");
  }
  parts.push_back("then bitmap order");
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : ", ") + p;
  out += "; copy-on-read " + std::string(d.copy_on_read ? "on" : "off");
  return out;
}

std::string FormatHydratedBy(const ReadDrivenReport& d) {
  return "read-ahead " + U(d.ahead_regions) + ", near reads " + U(d.near_regions) + ", profile " +
         U(d.profile_regions) + ", copy-on-read " + U(d.cor_regions) + ", bitmap " +
         U(d.cursor_regions) + " regions since start";
}

std::string FormatSourceReads(const ReadDrivenReport& d) {
  const uint64_t all = d.user_source_bytes + d.copier_source_bytes;
  // The users' share of what was read, once something was: of nothing,
  // FormatPercent's 100% would say that users read it all.
  const std::string share = all == 0 ? "" : " (" + FormatPercent(d.user_source_bytes, all, 0) + ")";
  return FormatBytes(d.user_source_bytes) + " for users" + share + ", " +
         FormatBytes(d.copier_source_bytes) + " by the copier (read-ahead " +
         FormatBytes(d.ahead_source_bytes) + ", near reads " + FormatBytes(d.near_source_bytes) +
         ")";
}

std::string FormatPrefetch(const ReadDrivenReport& d) {
  std::string out = "up to " + FormatBytes(d.prefetch_room_bytes) + " in flight (";
  if (d.source_latency_floor_us == 0) return out + "no source read answered yet)";
  char ms[32];
  std::snprintf(ms, sizeof ms, "%.1f", static_cast<double>(d.source_latency_floor_us) / 1000);
  return out + "the source answers in " + ms + " ms at best)";
}

std::string FormatSourceHealth(const SourceHealth& h, uint64_t now_unix_ns) {
  std::string out = SourceStateName(h.state);
  if (!h.up() && h.since_unix_ns != 0) {
    out += " since " + FormatWallTime(h.since_unix_ns);
  }
  const bool changed = h.state == SourceHealth::State::kChanged;
  if (changed && !h.change.empty()) out += ": " + Printable(h.change);
  if (h.state == SourceHealth::State::kReleased) {
    out += " (the clone is complete and no longer reads its source)";
  } else if (!h.guard.empty() && !changed) {
    // What keeps another version of the source out (http_validator.h).
    out += " (every request carries " + Printable(h.guard) + ")";
  }
  const uint64_t waited_s = h.oldest_request_unix_ns != 0 && now_unix_ns > h.oldest_request_unix_ns
                                ? (now_unix_ns - h.oldest_request_unix_ns) / 1'000'000'000ull
                                : 0;
  if (waited_s >= 1) out += ", a request unanswered for " + FormatDuration(waited_s);
  if (h.errors != 0 || h.retries != 0 || h.reconnects != 0) {
    out += "  (" + U(h.errors) + " errors, " + U(h.retries) + " retries, " + U(h.reconnects) +
           " reconnects)";
  }
  // The change is usually the last error too: not said twice.
  if (!h.last_error.empty() && !(changed && h.last_error == h.change)) {
    out += "; last error";
    if (h.last_error_unix_ns != 0) out += " at " + FormatWallTime(h.last_error_unix_ns);
    out += ": " + Printable(h.last_error);
  }
  return out;
}

std::string FormatDmLine(const StatusReport& r) {
  if (r.mode == EngineMode::kFail) return "Fail";
  std::vector<std::string> features;
  if (!r.knobs.hydration_enabled) features.push_back("no_hydration");
  if (!r.discard_passdown) features.push_back("no_discard_passdown");
  std::string out;
  out += U(metadata::kMetadataBlockSize / kSectorSize) + " ";
  out += U(r.metadata_used_blocks) + "/" + U(r.metadata_total_blocks) + " ";
  out += U(r.region_size / kSectorSize) + " ";
  out += U(r.hydrated_regions) + "/" + U(r.nr_regions) + " ";
  out += U(r.hydrating_regions) + " ";
  out += U(features.size()) + " ";
  for (const std::string& f : features) out += f + " ";
  out += "4 hydration_threshold " + U(r.knobs.hydration_threshold) + " hydration_batch_size " +
         U(r.knobs.hydration_batch_size) + " ";
  out += ModeWord(r.mode);
  return out;
}

std::string FormatProgress(const StatusReport& r, int bar_width, ProgressHealth health) {
  std::string out;
  if (bar_width > 0) {
    int filled = static_cast<int>(FlooredPercent(r.hydrated_bytes, r.image_size, 0) *
                                  static_cast<uint64_t>(bar_width) / 100);
    out += '[';
    out.append(static_cast<size_t>(filled), '#');
    out.append(static_cast<size_t>(bar_width - filled), '.');
    out += "] ";
  }
  std::string pct = FormatPercent(r.hydrated_bytes, r.image_size, 1);
  if (pct.size() < 6) out.append(6 - pct.size(), ' ');
  out += pct;
  out += "  " + FormatBytes(r.hydrated_bytes) + "/" + FormatBytes(r.image_size);
  out += "  " + FormatRate(r.copy_rate_bytes_per_s);
  const bool healthy = HealthOk(r.health);
  if (r.hydration_done) {
    out += "  done";
  } else if (healthy || r.eta_s.has_value()) {
    out += "  " + FormatEta(r);
  }
  if (!healthy && !r.hydration_done) {
    if (health == ProgressHealth::kShow) out += "  " + Printable(r.health);
  } else if (r.State() != "hydrating" && r.State() != "complete") {
    out += "  (" + r.State() + ")";
  }
  return out;
}

}  // namespace clonefs::control
