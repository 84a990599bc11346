// Writes the seed corpora of the binary and generated formats with the real
// encoders: superblocks, bitmap chunks, settings records, status documents
// and profiles. Run after a format changes, then commit the files:
//
//   ninja -C build-fuzz make_seeds && build-fuzz/tests/fuzz/make_seeds tests/fuzz/corpus
//
// The text seeds (requests, messages, sizes) are written by hand.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "clone/settings.h"
#include "control/protocol.h"
#include "control/status_report.h"
#include "metadata/chunk_codec.h"
#include "metadata/superblock_codec.h"
#include "profile/profile.h"

namespace clonefs {
namespace {

std::filesystem::path g_dir;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::filesystem::path dir = g_dir / target;
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

metadata::FileIdentity Identity(const std::string& path) {
  metadata::FileIdentity id;
  id.size = 10ull << 30;
  id.inode = 1234567;
  id.mtime_ns = 1764331384123456789;
  id.fingerprint = 0x9313d23ea6431c5eull;
  id.path = path;
  id.btime_ns = 1764331300000000000;
  id.fingerprint2 = 0x601c2ebeb616a565ull;
  return id;
}

void Superblocks() {
  metadata::Superblock sb;
  sb.format_version = metadata::kFormatVersion;
  sb.uuid = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
  sb.region_size = 64 << 10;
  sb.image_size = (10ull << 30) + 4096;  // a partial last region
  sb.nr_regions = metadata::NrRegionsFor(sb.image_size, sb.region_size);
  sb.created_unix_s = 1764331384;
  sb.source = Identity("/srv/images/base.img");
  sb.dest = Identity("/var/lib/clones/vm1.img");
  sb.dest.device_id = "nvme-eui.0025388b71b1c2d3";
  Write("superblock", "v2_file_source", metadata::EncodeSuperblock(sb));
  sb.source.path = "nbd+unix:///disk?socket=/run/nbd.sock";
  sb.source.flags = metadata::FileIdentity::kRemote | metadata::FileIdentity::kMtimeUnstable;
  sb.source.device_id = "nbd export disk";
  Write("superblock", "v2_remote_source", metadata::EncodeSuperblock(sb));
  sb.format_version = 1;
  sb.region_size = 4096;
  sb.image_size = 1 << 20;
  sb.nr_regions = 256;
  Write("superblock", "v1", metadata::EncodeSuperblock(sb));
}

void Chunks() {
  using namespace metadata;
  auto write = [](const std::string& name, uint64_t valid, const std::vector<uint64_t>& words) {
    std::string in;
    in += static_cast<char>((valid - 1) >> 8);
    in += static_cast<char>((valid - 1) & 0xff);
    Write("chunk", name, in + EncodeChunkValue(words.data(), valid));
  };
  std::vector<uint64_t> w(kWordsPerChunk, 0);
  w[0] = 0xff;  // regions 0..7
  w[10] = ~0ull;
  w[11] = 1;
  write("runs", kRegionsPerChunk, w);
  std::fill(w.begin(), w.end(), ~0ull);
  write("full", kRegionsPerChunk, w);
  std::fill(w.begin(), w.end(), 0x5555555555555555ull);  // every other region: raw
  write("raw", kRegionsPerChunk, w);
  std::fill(w.begin(), w.end(), 0);
  for (uint64_t r = 0; r < 1000; ++r) w[r / 64] |= 1ull << (r % 64);
  write("last_chunk_full", 1000, w);  // the image's last, partial chunk
  w[3] = 0;
  write("last_chunk_runs", 1000, w);
}

void SettingsRecords() {
  clone::Settings s;
  Write("settings", "empty", clone::EncodeSettings(s));
  s.rate_bytes_per_s = 100 << 20;
  s.hydration_threshold = 64;
  s.hydration_batch_size = 16;
  s.hydration_enabled = false;
  s.on_complete = "touch '/tmp/clone done'";
  s.name = "vm1.img";
  s.discard_passdown = true;
  s.direct_io = true;
  s.allow_other = false;
  s.passthrough = false;
  s.fuse_options = "max_read=131072";
  s.threads = 8;
  s.source_timeout_ms = 2500;
  s.copy_on_read = true;
  s.read_hints = false;
  s.profile = "/var/lib/boot.profile";
  s.record_profile = "";
  Write("settings", "every_key", clone::EncodeSettings(s));
  clone::Settings u;
  u.rate_bytes_per_s = 0;
  u.unknown["future_knob"] = "42";
  Write("settings", "unknown_key", clone::EncodeSettings(u));
}

control::StatusReport LiveReport() {
  control::StatusReport r;
  r.pid = 4242;
  r.uptime_s = 3605;
  r.info = {"/mnt/clone",
            "/srv/base.img",
            "/var/lib/vm1.img",
            "/var/lib/vm1.img.clonefs",
            "1b4e28ba-2fa1-41d2-883f-0016d3cca427",
            "/var/lib/vm1.img.clonefs/daemon.log",
            "vm1.img"};
  r.image_size = (10ull << 30) + 4096;
  r.region_size = 64 << 10;
  r.nr_regions = 163841;
  r.hydrated_regions = 81920;
  r.committed_hydrated_regions = 81900;
  r.hydrating_regions = 32;
  r.hydrated_bytes = 81920ull << 16;
  r.bytes_copied = 5ull << 30;
  r.bytes_zeroed = 1 << 20;
  r.copy_rate_bytes_per_s = 200 << 20;
  r.eta_s = 26;
  r.knobs.rate_bytes_per_s = 200 << 20;
  r.copy_failures = 1;
  r.commits = 900;
  r.metadata_used_blocks = 300;
  r.metadata_total_blocks = 1 << 20;
  r.read_driven.copy_on_read = true;
  r.read_driven.read_hints = true;
  r.read_driven.user_source_bytes = 1 << 20;
  r.read_driven.copier_source_bytes = 5ull << 30;
  r.read_driven.ahead_regions = 40;
  r.read_driven.profile_hydrated = 10;
  r.read_driven.profile_total = 100;
  r.read_driven.record_profile = "/var/lib/next.profile";
  r.read_driven.profile_recorded = 77;
  r.settings.rate_bytes_per_s = 200 << 20;
  r.settings.name = "vm1.img";
  return r;
}

void StatusDocuments() {
  control::StatusReport r = LiveReport();
  Write("status_report", "live", control::ReportToJson(r));
  Write("status_report", "live_compact", control::ReportToJson(r, 0));
  r.source_health.state = SourceHealth::State::kReconnecting;
  r.source_health.since_unix_ns = 1764331384000000000;
  r.source_health.last_error = "connection reset by peer";
  r.source_health.last_error_unix_ns = 1764331384000000000;
  r.source_health.errors = 3;
  r.source_health.retries = 7;
  r.source_health.reconnects = 1;
  r.mode = EngineMode::kReadOnly;
  r.source_change = "size changed from 10737418240 to 10737422336 bytes";
  r.settings_error = "";
  Write("status_report", "reconnecting_read_only", control::ReportToJson(r));
  control::StatusReport off;
  off.live = false;
  off.info.dest = "/var/lib/vm1.img";
  off.info.metadata_dir = "/var/lib/vm1.img.clonefs";
  off.image_size = 1 << 20;
  off.region_size = 4096;
  off.nr_regions = 256;
  off.hydrated_regions = 256;
  off.committed_hydrated_regions = 256;
  off.hydrated_bytes = 1 << 20;
  off.hydration_done = true;
  off.settings_error = "settings: checksum mismatch (the record is damaged)";
  Write("status_report", "offline", control::ReportToJson(off));
  Write("control_response", "status_json",
        control::EncodeResponse({true, control::ReportToJson(LiveReport())}));
}

void Profiles() {
  profile::Profile p;
  p.source = {2147483648ull, 0x9313d23ea6431c5eull, 0x601c2ebeb616a565ull};
  p.region_size = 65536;
  p.runs = {{128, 16}, {32, 4}, {4096, 1}};
  Write("profile", "doc_example", profile::Serialize(p));
  p.source.size = 6553610;  // a partial last region
  p.region_size = 4096;
  p.runs = {{1600, 1}, {0, 8}, {100, 50}};
  Write("profile", "partial_last_region", profile::Serialize(p));
}

}  // namespace
}  // namespace clonefs

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  clonefs::g_dir = argv[1];
  clonefs::Superblocks();
  clonefs::Chunks();
  clonefs::SettingsRecords();
  clonefs::StatusDocuments();
  clonefs::Profiles();
  return 0;
}
