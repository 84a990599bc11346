#include "fuse/mount_options.h"

#include <cctype>

#include "base/printable.h"
#include "fuse/mount_table.h"
#include "metadata/metadata.h"

namespace clonefs::fuse {
namespace {

std::string Basename(const std::string& path) {
  std::string p = NormalizePath(path);
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

bool IsPowerOfTwo(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Longest file name Linux file systems accept (NAME_MAX).
constexpr size_t kMaxNameBytes = 255;

}  // namespace

std::string NameProblem(const std::string& name, const std::string& what) {
  const std::string shown = "'" + Printable(name) + "'";
  if (name.empty()) {
    return what + " is empty; give a file name, or leave --name out to use DEST's basename";
  }
  if (name == "." || name == "..") {
    return what + " " + shown + " names a directory, not a file; give a file name";
  }
  if (name.find('/') != std::string::npos) {
    return what + " " + shown + " contains '/'; give a file name without directories (the "
           "file appears as MOUNTPOINT/NAME)";
  }
  if (HasControlCharacter(name)) {
    return what + " " + shown + " contains a control character (shown as \\xNN); use "
           "printable characters only";
  }
  if (name.size() > kMaxNameBytes) {
    return what + " is " + std::to_string(name.size()) + " bytes long; a file name is at most " +
           std::to_string(kMaxNameBytes) + " bytes";
  }
  return "";
}

namespace {

}  // namespace

std::vector<std::string> ValidateMountOptions(const MountOptions& o) {
  std::vector<std::string> problems;
  if (o.source.empty()) problems.push_back("SOURCE is missing; give the image to clone");
  if (!o.fuse_transport.empty() && o.fuse_transport != "auto" && o.fuse_transport != "uring" &&
      o.fuse_transport != "dev") {
    problems.push_back("--fuse-transport " + o.fuse_transport +
                       " is not a transport; use auto, uring or dev");
  }
  if (o.dest.empty()) problems.push_back("DEST is missing; give the file or device to write to");
  if (o.mountpoint.empty()) problems.push_back("MOUNTPOINT is missing; give an empty directory");
  if (!IsPowerOfTwo(o.region_size)) {
    problems.push_back("region size " + std::to_string(o.region_size) +
                       " is not a power of two; use e.g. 64K or 1M");
  } else if (o.region_size < metadata::kMinRegionSize || o.region_size > metadata::kMaxRegionSize) {
    problems.push_back("region size " + std::to_string(o.region_size) +
                       " is out of range; use a power of two from 4K to 1G");
  }
  if (o.given.name || !o.name.empty()) {
    // Given now (an empty --name included) or stored with the clone.
    std::string p = NameProblem(o.name, "--name");
    if (!p.empty()) problems.push_back(p);
  } else if (!o.dest.empty() && !Basename(o.dest).empty()) {
    std::string p = NameProblem(Basename(o.dest), "the file name taken from DEST");
    if (!p.empty()) problems.push_back(p + " (or give one with --name)");
  }
  if (o.threads < 1 || o.threads > 1024) {
    problems.push_back("--threads " + std::to_string(o.threads) +
                       " is out of range; use 1 to 1024");
  }
  if (o.knobs.hydration_batch_size == 0) {
    problems.push_back("--hydration-batch-size must be at least 1");
  }
  // The settings record holds values of at most 64 KiB (docs/metadata-format.md §11).
  if (o.on_complete.size() > 65536) {
    problems.push_back("--on-complete is longer than 64 KiB; put the commands in a script and "
                       "give its path");
  }
  if (o.given.fuse_options && o.given.fuse_options->size() > 65536) {
    problems.push_back("the -o options are longer than 64 KiB together; give fewer");
  }
  for (const auto& opt : o.fuse_options) {
    if (opt.empty()) problems.push_back("-o needs a non-empty FUSE option");
    // Each -o may be a comma list. max_read fights the request size clonefs
    // negotiates (libfuse then fails the connection setup after the mount).
    for (size_t b = 0; b <= opt.size();) {
      size_t e = opt.find(',', b);
      if (e == std::string::npos) e = opt.size();
      const std::string one = opt.substr(b, e - b);
      if (one.rfind("max_read=", 0) == 0) {
        problems.push_back("-o " + one +
                           " is not supported: clonefs sets the request size itself (1 MiB); "
                           "drop the option");
      }
      b = e + 1;
    }
  }
  if (!o.profile.empty() && o.profile == o.record_profile) {
    problems.push_back("--profile and --record-profile name the same file " + o.profile +
                       "; recording would replace the profile being replayed: record into "
                       "another file");
  }
  return problems;
}

void ApplySettings(const clone::Settings& s, MountOptions* o) {
  if (s.rate_bytes_per_s) o->knobs.rate_bytes_per_s = *s.rate_bytes_per_s;
  if (s.hydration_threshold) o->knobs.hydration_threshold = *s.hydration_threshold;
  if (s.hydration_batch_size) o->knobs.hydration_batch_size = *s.hydration_batch_size;
  if (s.hydration_enabled) o->knobs.hydration_enabled = *s.hydration_enabled;
  if (s.on_complete) o->on_complete = *s.on_complete;
  if (s.name) o->name = *s.name;
  if (s.discard_passdown) o->discard_passdown = *s.discard_passdown;
  if (s.direct_io) o->direct_io = *s.direct_io;
  if (s.allow_other) o->allow_other = *s.allow_other;
  if (s.passthrough) o->passthrough = *s.passthrough;
  if (s.fuse_transport) o->fuse_transport = *s.fuse_transport;
  if (s.fuse_options) {
    o->fuse_options.clear();
    if (!s.fuse_options->empty()) o->fuse_options.push_back(*s.fuse_options);
  }
  if (s.threads) o->threads = *s.threads;
  if (s.source_timeout_ms) o->source_timeout_ms = *s.source_timeout_ms;
  if (s.copy_on_read) o->copy_on_read = *s.copy_on_read;
  if (s.read_hints) o->read_hints = *s.read_hints;
  if (s.profile) o->profile = *s.profile;
  if (s.record_profile) o->record_profile = *s.record_profile;
}

bool IsSourceUri(const std::string& s) {
  const size_t colon = s.find("://");
  if (colon == std::string::npos || colon == 0) return false;
  if (!std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  for (size_t i = 0; i < colon; ++i) {
    const char c = s[i];
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return false;
    }
  }
  return true;
}

MountOptions ResolveMountDefaults(const MountOptions& in) {
  MountOptions o = in;
  if (!o.source.empty() && !IsSourceUri(o.source)) o.source = NormalizePath(o.source);
  if (!o.dest.empty()) o.dest = NormalizePath(o.dest);
  if (!o.mountpoint.empty()) o.mountpoint = NormalizePath(o.mountpoint);
  if (o.metadata_dir.empty() && !o.dest.empty()) o.metadata_dir = o.dest + ".clonefs";
  if (!o.metadata_dir.empty()) o.metadata_dir = NormalizePath(o.metadata_dir);
  if (o.name.empty() && !o.dest.empty()) o.name = Basename(o.dest);
  if (!o.log_file.empty()) o.log_file = NormalizePath(o.log_file);
  return o;
}

}  // namespace clonefs::fuse
