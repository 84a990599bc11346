#include "control/offline.h"

#include <sys/stat.h>

#include <climits>
#include <cstdlib>

#include "clone/dest_written.h"
#include "clone/identity.h"
#include "clone/settings.h"
#include "control/commands.h"
#include "control/discovery.h"
#include "control/units.h"
#include "devices/posix_device.h"
#include "metadata/metadata.h"
#include "sources/open_source.h"
#include "sources/source_spec.h"

namespace clonefs::control {
namespace {

std::string RealOr(const std::string& p) {
  char buf[PATH_MAX];
  return realpath(p.c_str(), buf) != nullptr ? std::string(buf) : p;
}

// Opens the store read-only, without comparing identities, and without ever
// formatting anything.
Result<std::unique_ptr<metadata::Metadata>> OpenForReading(const std::string& dir,
                                                           const metadata::Superblock& sb) {
  metadata::MetadataOptions o;
  o.dir = dir;
  o.image_size = sb.image_size;
  o.region_size = sb.region_size;
  o.create_if_missing = false;
  o.read_only = true;
  o.verify_identities = false;
  return metadata::Metadata::Open(o);
}

// Bytes of the image inside hydrated regions (the last region may be short).
uint64_t HydratedBytes(const metadata::Metadata& md, const metadata::Superblock& sb) {
  uint64_t n = md.NrHydratedRegions();
  if (n == 0 || sb.nr_regions == 0) return 0;
  uint64_t bytes = n * sb.region_size;
  uint64_t last_len = sb.image_size - (sb.nr_regions - 1) * sb.region_size;
  if (md.IsRegionHydrated(sb.nr_regions - 1)) bytes -= sb.region_size - last_len;
  return bytes;
}

Status Decorate(const Status& s, const std::string& dir) {
  if (s.IsBusy()) return MountedError(dir);
  return s;
}

}  // namespace

Result<std::string> MetadataDirFor(const std::string& dest, const std::string& metadata_opt) {
  if (!metadata_opt.empty()) return metadata_opt;
  if (dest.empty()) return Status::InvalidArgument("give DEST or --metadata DIR");
  std::string d = dest;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d + ".clonefs";
}

std::string FindMountOfMetadata(const std::string& metadata_dir) {
  Result<std::string> info = ReadSelfMountInfo();
  if (!info.ok()) return "";
  const std::string real = RealOr(metadata_dir);
  for (const MountEntry& e : ClonefsMounts(*info)) {
    if (e.source == metadata_dir || e.source == real || RealOr(e.source) == real) {
      return e.mount_point;
    }
  }
  return "";
}

Status MountedError(const std::string& metadata_dir) {
  std::string mp = FindMountOfMetadata(metadata_dir);
  if (!mp.empty()) {
    return Status::Busy("clone is mounted at " + mp + "; use: clonefs status " + mp);
  }
  return Status::Busy("metadata " + metadata_dir +
                      " is in use by a running clonefs daemon; use clonefs status MOUNTPOINT");
}

Result<StatusReport> ReadOfflineReport(const std::string& dir) {
  Result<metadata::Superblock> sb = metadata::Metadata::ReadSuperblock(dir);
  if (!sb.ok()) return Decorate(sb.status(), dir);
  Result<std::unique_ptr<metadata::Metadata>> md = OpenForReading(dir, *sb);
  if (!md.ok()) return Decorate(md.status(), dir);
  StatusReport r;
  r.live = false;
  r.info.source = sb->source.path;
  r.info.dest = sb->dest.path;
  r.info.metadata_dir = RealOr(dir);
  r.info.uuid = sb->uuid;
  r.image_size = sb->image_size;
  r.region_size = sb->region_size;
  r.nr_regions = sb->nr_regions;
  r.hydrated_regions = (*md)->NrHydratedRegions();
  r.committed_hydrated_regions = (*md)->NrCommittedHydratedRegions();
  r.hydrated_bytes = HydratedBytes(**md, *sb);
  r.hydration_done = (*md)->IsHydrationDone();
  Result<metadata::SpaceInfo> space = (*md)->GetSpace();
  if (space.ok()) {
    r.metadata_used_blocks = space->used_blocks;
    r.metadata_total_blocks = space->total_blocks;
  }
  Result<std::optional<std::string>> raw = (*md)->GetSettings();
  if (!raw.ok()) {
    r.settings_error = raw.status().message();
  } else if (raw->has_value()) {
    Result<clone::Settings> settings = clone::DecodeSettings(**raw);
    if (settings.ok()) {
      r.settings = std::move(settings).value();
    } else {
      r.settings_error = settings.status().message() +
                         "; a mount needs --reset-settings and the options this clone needs";
    }
  }
  return r;
}

// ---- check ----

int CheckResult::ExitCode() const {
  bool kinds[4] = {false, false, false, false};
  for (const CheckProblem& p : problems) kinds[static_cast<int>(p.kind)] = true;
  if (kinds[static_cast<int>(ProblemKind::kLocked)]) return kCheckLocked;
  if (kinds[static_cast<int>(ProblemKind::kCannotOpen)]) return kCheckCannotOpen;
  if (kinds[static_cast<int>(ProblemKind::kCorrupt)]) return kCheckCorrupt;
  if (kinds[static_cast<int>(ProblemKind::kMismatch)]) return kCheckMismatch;
  return kCheckClean;
}

namespace {

class Checker {
 public:
  explicit Checker(const CheckOptions& o) : o_(o) {}

  CheckResult Run() {
    Result<metadata::Superblock> sb = metadata::Metadata::ReadSuperblock(o_.metadata_dir);
    if (!sb.ok()) {
      FailOpen(sb.status());
      return std::move(r_);
    }
    CheckSuperblock(*sb);
    Result<std::unique_ptr<metadata::Metadata>> md = OpenForReading(o_.metadata_dir, *sb);
    if (!md.ok()) {
      FailOpen(md.status());
    } else {
      CheckBitmap(**md, *sb);
      md->reset();  // release the store before reading the images
    }
    CheckSource(*sb);
    CheckDest(*sb);
    return std::move(r_);
  }

 private:
  void Problem(ProblemKind k, std::string what) { r_.problems.push_back({k, std::move(what)}); }
  void Pass(std::string what) { r_.passed.push_back(std::move(what)); }

  void FailOpen(const Status& s) {
    if (s.IsBusy()) {
      Problem(ProblemKind::kLocked, MountedError(o_.metadata_dir).message());
    } else if (s.IsCorruption() || s.IsMismatch()) {
      Problem(ProblemKind::kCorrupt, "metadata: " + s.message());
    } else {
      Problem(ProblemKind::kCannotOpen, "cannot open metadata: " + s.ToString());
    }
  }

  void CheckSuperblock(const metadata::Superblock& sb) {
    size_t before = r_.problems.size();
    if (sb.format_version == 0 || sb.format_version > metadata::kFormatVersion) {
      Problem(ProblemKind::kCorrupt, "superblock: format version " +
                                         std::to_string(sb.format_version) + ", expected " +
                                         std::to_string(metadata::kFormatVersion));
    }
    Status rs = metadata::ValidateRegionSize(sb.region_size);
    if (!rs.ok()) Problem(ProblemKind::kCorrupt, "superblock: " + rs.message());
    if (sb.image_size == 0) Problem(ProblemKind::kCorrupt, "superblock: image size is 0");
    if (rs.ok() && sb.image_size != 0) {
      uint64_t want = sb.image_size / sb.region_size + (sb.image_size % sb.region_size != 0);
      if (sb.nr_regions != want) {
        Problem(ProblemKind::kCorrupt, "superblock: " + std::to_string(sb.nr_regions) +
                                           " regions recorded, but image size " +
                                           std::to_string(sb.image_size) + " / region size " +
                                           std::to_string(sb.region_size) + " gives " +
                                           std::to_string(want));
      }
    }
    if (sb.uuid.size() != 36) Problem(ProblemKind::kCorrupt, "superblock: malformed uuid '" + sb.uuid + "'");
    if (r_.problems.size() == before) {
      Pass("superblock: format " + std::to_string(sb.format_version) + ", uuid " + sb.uuid +
           ", image " + std::to_string(sb.image_size) + " bytes, region size " +
           FormatBytes(sb.region_size) + ", " + std::to_string(sb.nr_regions) + " regions");
    }
  }

  void CheckBitmap(const metadata::Metadata& md, const metadata::Superblock& sb) {
    const uint64_t nr = md.nr_regions();
    const uint64_t counted = md.NrHydratedRegions();
    size_t before = r_.problems.size();
    if (nr != sb.nr_regions) {
      Problem(ProblemKind::kCorrupt, "bitmap covers " + std::to_string(nr) +
                                         " regions, superblock says " +
                                         std::to_string(sb.nr_regions));
    }
    if (counted > nr) {
      Problem(ProblemKind::kCorrupt, "bitmap: " + std::to_string(counted) +
                                         " hydrated regions out of " + std::to_string(nr));
    }
    // Walk the runs and recount; the walk also exercises every chunk's bounds.
    uint64_t walked = 0;
    for (uint64_t r = md.FindNextHydratedRegion(0); r < nr;) {
      uint64_t end = md.FindNextUnhydratedRegion(r);
      if (end <= r || end > nr) {
        Problem(ProblemKind::kCorrupt, "bitmap: inconsistent run at region " + std::to_string(r));
        break;
      }
      walked += end - r;
      r = end < nr ? md.FindNextHydratedRegion(end) : nr;
    }
    if (walked != counted) {
      Problem(ProblemKind::kCorrupt, "bitmap: hydrated count " + std::to_string(counted) +
                                         " differs from the bitmap's content " +
                                         std::to_string(walked));
    }
    if (md.IsHydrationDone() != (counted == nr)) {
      Problem(ProblemKind::kCorrupt, "bitmap: hydration-done flag disagrees with the count");
    }
    if (r_.problems.size() == before) {
      Pass("bitmap: " + std::to_string(counted) + "/" + std::to_string(nr) + " regions hydrated" +
           (counted == nr ? " (complete)" : ""));
    }
  }

  // A remote source (SPEC §9) is contacted only when asked (--source URI):
  // check and info work offline, whatever the network.
  void CheckRemoteSource(const metadata::Superblock& sb) {
    if (o_.source.empty()) {
      Pass("source " + sb.source.path + ": remote; not contacted (give --source URI to compare it)");
      return;
    }
    Result<SourceSpec> spec = ParseSource(o_.source);
    if (!spec.ok()) {
      Problem(ProblemKind::kMismatch, "source " + o_.source + ": " + spec.status().message());
      return;
    }
    SourceOpenOptions so;
    so.timeout_ns = 10'000'000'000ull;
    Result<std::unique_ptr<Device>> dev = OpenSource(*spec, so);
    if (!dev.ok()) {
      Problem(ProblemKind::kMismatch, "source " + spec->display + ": " + dev.status().message());
      return;
    }
    Result<metadata::FileIdentity> id =
        clone::RemoteSourceIdentity(**dev, spec->display, SourceIdentityDeviceId(*spec));
    CompareSource(sb, spec->display, id);
  }

  void CompareSource(const metadata::Superblock& sb, const std::string& path,
                     const Result<metadata::FileIdentity>& id) {
    if (!id.ok()) {
      Problem(ProblemKind::kMismatch, "source " + path + ": " + id.status().message());
      return;
    }
    size_t before = r_.problems.size();
    for (const std::string& d : metadata::IdentityDifferences("source", sb.source, *id)) {
      Problem(ProblemKind::kMismatch, "source " + path + ": " + d);
    }
    if (id->size != sb.image_size) {
      Problem(ProblemKind::kMismatch, "source " + path + ": size " + std::to_string(id->size) +
                                          " differs from the image size " +
                                          std::to_string(sb.image_size));
    }
    if (r_.problems.size() == before) Pass("source " + path + ": identity matches");
  }

  void CheckSource(const metadata::Superblock& sb) {
    const std::string path = o_.source.empty() ? sb.source.path : o_.source;
    if (path.empty()) {
      Pass("source: no path recorded; not checked (give --source)");
      return;
    }
    Result<SourceSpec> given = o_.source.empty() ? Status::NotFound("") : ParseSource(o_.source);
    const bool remote_given = given.ok() && given->IsRemote();
    if (remote_given || (o_.source.empty() &&
                         (sb.source.flags & metadata::FileIdentity::kRemote) != 0)) {
      CheckRemoteSource(sb);
      return;
    }
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      Problem(ProblemKind::kMismatch, "source " + path + ": " + Status::FromErrno(errno, "stat").message());
      return;
    }
    PosixDeviceOptions po;
    po.read_only = true;
    Result<std::unique_ptr<Device>> dev = OpenPosixDevice(path, po);
    if (!dev.ok()) {
      Problem(ProblemKind::kMismatch, "source " + path + ": " + dev.status().message());
      return;
    }
    CompareSource(sb, path, clone::SourceIdentity(**dev, path));
  }

  // The verdict the mount would reach (src/fuse/preflight.cc OpenClone):
  // the same identity rules, and a dest shorter than the image refused.
  void CheckDest(const metadata::Superblock& sb) {
    const std::string path = o_.dest.empty() ? sb.dest.path : o_.dest;
    if (path.empty()) {
      Pass("dest: no path recorded; not checked (give --dest)");
      return;
    }
    Result<metadata::FileIdentity> id = clone::DestIdentity(path);
    if (!id.ok()) {
      Problem(ProblemKind::kMismatch, "dest " + path + ": " + id.status().message());
      return;
    }
    struct stat st;
    const bool regular = stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    size_t before = r_.problems.size();
    for (const std::string& d : metadata::IdentityDifferences("dest", sb.dest, *id)) {
      Problem(ProblemKind::kMismatch, "dest " + path + ": " + d);
    }
    const uint64_t size = regular ? static_cast<uint64_t>(st.st_size) : id->size;
    if ((regular || size != 0) && size < sb.image_size) {
      Problem(ProblemKind::kMismatch, "dest " + path + ": " + std::to_string(size) +
                                          " bytes, shorter than the image (" +
                                          std::to_string(sb.image_size) +
                                          "): truncated or replaced; the mount refuses it");
    }
    // Another program wrote dest while the clone was live (its record).
    if (Status w = clone::CheckNoDestWritten(o_.metadata_dir, path); !w.ok()) {
      Problem(ProblemKind::kMismatch, w.message());
    }
    if (r_.problems.size() == before) Pass("dest " + path + ": identity matches");
  }

  const CheckOptions& o_;
  CheckResult r_;
};

}  // namespace

CheckResult CheckClone(const CheckOptions& options) { return Checker(options).Run(); }

std::string DamagedStoreAdvice(const std::string& dir) {
  return "the metadata store " + dir +
         " is damaged and clonefs will not mount it. Restore it from a backup (this command "
         "changed nothing; dest is unchanged), or start the clone again over the same dest "
         "with --overwrite-dest, which discards what dest holds";
}

}  // namespace clonefs::control
