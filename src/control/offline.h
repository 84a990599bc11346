// Offline inspection of a clone that is not mounted: `clonefs info` and
// `clonefs check` read the metadata store directly. Both take the store's
// lock like a mount does, so they never open a store a live daemon holds
// (Metadata::Open / ReadSuperblock fail with Busy; we then name the mount).
//
// THREAD SAFETY: functions; each opens and closes its own store.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "control/status_report.h"

namespace clonefs::control {

// The metadata directory of a clone: `metadata_opt` if given, otherwise
// DEST + ".clonefs" (the mount command's default). InvalidArgument if neither
// is given.
Result<std::string> MetadataDirFor(const std::string& dest, const std::string& metadata_opt);

// The mountpoint of the clonefs mount whose FUSE source (fsname) is this
// metadata directory, or "" if none is found in /proc/self/mountinfo.
std::string FindMountOfMetadata(const std::string& metadata_dir);

// Busy, with "clone is mounted at MP; use: clonefs status MP" (or a message
// without the mountpoint when it cannot be found).
Status MountedError(const std::string& metadata_dir);

// Reads a StatusReport (live = false) from the store. Errors: Busy (see
// MountedError), NotFound (no metadata), Corruption, IoError, Permission.
Result<StatusReport> ReadOfflineReport(const std::string& metadata_dir);

// Which kind of problem `check` found; decides the exit code.
enum class ProblemKind { kCannotOpen, kLocked, kCorrupt, kMismatch };

struct CheckProblem {
  ProblemKind kind;
  std::string what;
};

struct CheckOptions {
  // Metadata directory to check. Required.
  std::string metadata_dir;
  // Files to compare with the recorded identities. Default: "" = the paths
  // recorded in the superblock.
  std::string source;
  std::string dest;
};

struct CheckResult {
  std::vector<CheckProblem> problems;
  // One line per check that passed, for the verbose output.
  std::vector<std::string> passed;
  // 0 when clean; otherwise the code of the most severe problem kind
  // (locked, cannot open, corrupt, then mismatch) as in commands.h CheckExit.
  int ExitCode() const;
};

// What to do about a damaged metadata store in `dir` (check, info): clonefs
// will not mount it; restore it from a backup (dest is unchanged), or start
// again over dest with --overwrite-dest.
std::string DamagedStoreAdvice(const std::string& dir);

// Validates the store (superblock fields, bitmap bounds and consistency) and
// the identities of the source and dest files against the superblock, using
// the mount command's identity functions. Never modifies anything.
CheckResult CheckClone(const CheckOptions& options);

}  // namespace clonefs::control
