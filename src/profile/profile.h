// Access profiles (SPEC §10): the order in which a workload first read or
// wrote the regions of an image, recorded by one clone (--record-profile)
// and replayed as the hydration order of a later clone of the same source
// (--profile). docs/profile-format.md describes the file.
//
// A profile is bound to the source's content, not to a path or transport:
// its size and the two fingerprints of the clone's superblock (fp1, fp2;
// src/clone/identity.h). A profile made for another source is refused.
//
// The runs are in the order first touched, in units of the recording
// clone's region size; ToRegions maps them onto any region size (a run
// covers every region it overlaps).
//
// THREAD SAFETY: values; the functions are stateless.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/status.h"
#include "regions/region_math.h"
#include "regions/region_run.h"

namespace clonefs::profile {

struct SourceKey {
  uint64_t size = 0;
  uint64_t fp1 = 0;
  uint64_t fp2 = 0;
  bool operator==(const SourceKey&) const = default;
};

struct Profile {
  SourceKey source;
  uint64_t region_size = 0;     // of the runs below
  std::vector<RegionRun> runs;  // in the order first touched; disjoint
  // Regions in all runs.
  uint64_t regions() const;
};

// The text form (docs/profile-format.md).
std::string Serialize(const Profile& p);
// Errors: InvalidArgument naming the line that is wrong.
Result<Profile> Parse(const std::string& text);

// Reads and parses `path`. Errors: IoError (with the errno) if it cannot be
// read, InvalidArgument ("PATH: line N: ...") if it is not a profile or not
// a regular file (a FIFO is refused at once, never waited on).
Result<Profile> Load(const std::string& path);
// Writes `p` to `path` atomically and durably (a new temporary file in the
// same directory, PATH.tmp.XXXXXX, never one that existed; fsync, rename,
// fsync of the directory). Errors: IoError.
Status Save(const Profile& p, const std::string& path);

// OK if Save(_, path) can create its temporary file beside `path` (which is
// not a directory); checks by creating a new one and removing it (nothing
// that exists is opened). Errors: InvalidArgument for a directory; IoError
// with the errno.
Status CheckRecordable(const std::string& path);

// Whether the regular file `path` begins as a profile does (its first line
// starts with "clonefs-profile "), of any version, whole or damaged: a file a
// recording may replace. False if it cannot be read or holds anything else.
bool BeginsAsProfile(const std::string& path);

// OK if a recording may replace what `path` names: nothing, a symlink (the
// rename replaces the link, not its target), an empty file, or a file that
// BeginsAsProfile (and a directory, which the rename cannot replace). Otherwise InvalidArgument
// ("PATH exists and is not an access profile ..."): a typo must not cost the user a file.
Status CheckReplaceable(const std::string& path);

// "" if `p` was recorded from the source `key` describes; otherwise what
// differs ("it was recorded from a source of N bytes, ...").
std::string SourceMismatch(const Profile& p, const SourceKey& key);

// OK if `p` was recorded from the source `key` describes; otherwise
// InvalidArgument saying what differs and what to do.
Status CheckSource(const Profile& p, const SourceKey& key, const std::string& path);

// The runs of `p` as regions of `geo`, in order, each clipped to the image;
// a region already listed by an earlier run is not listed again.
std::vector<RegionRun> ToRegions(const Profile& p, const RegionGeometry& geo);

// What a recording into `path` holds so far, as regions of `geo` in the order
// first touched: a later mount of the same clone continues the recording
// after them rather than replace the file with its own touches only.
// Empty (OK) if there is no file at `path` (nothing was written yet).
// Errors: Load's other errors; CheckSource's (recorded from another source).
Result<std::vector<RegionRun>> RecordedSoFar(const std::string& path, const SourceKey& key,
                                             const RegionGeometry& geo);

}  // namespace clonefs::profile
