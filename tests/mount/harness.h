// Mount-test harness for the real `clonefs` binary: run commands, make
// images, mount and unmount clones, read a clone's metadata offline.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "control/status_report.h"
#include "metadata/metadata.h"
#include "mount/mount_test_util.h"

namespace clonefs::testing {

struct RunResult {
  int code = -1;    // exit code, or -1 if killed
  std::string out;  // stdout and stderr together
};

// Runs `cmd` with /bin/sh -c, capturing stdout+stderr.
RunResult Sh(const std::string& cmd);
// Runs `cmd`; on failure adds a test failure naming cmd and its output.
bool ShOk(const std::string& cmd);
// Single-quotes `s` for the shell.
std::string Quote(const std::string& s);

// Path of the clonefs binary under test.
std::string ClonefsBinary();

std::string Sha256(const std::string& path);
// Writes `size` bytes of seeded pseudo-random data (4 KiB-block granular).
void WriteRandomFile(const std::string& path, uint64_t size, uint64_t seed);
std::vector<uint8_t> ReadAll(const std::string& path);

// A clone's metadata opened read-only (the clone must not be mounted), or
// nullptr with a test failure.
std::unique_ptr<metadata::Metadata> OpenMetadataOffline(const std::string& metadata_dir);

// `clonefs status --json MNT`, parsed. Errors: IoError (the command failed,
// with its output), or the parser's.
Result<control::StatusReport> QueryStatus(const std::string& mnt);

// Regions hydrated in a clone's metadata, read offline (the clone must not be
// mounted). -1 on error (with a test failure).
int64_t HydratedRegions(const std::string& metadata_dir);

// One clone in a temporary directory: src.img, dst.img, mnt/, log, and a
// "complete" flag file touched by --on-complete.
class CloneDir {
 public:
  CloneDir();
  ~CloneDir();  // unmounts whatever is left (loop devices, ext4, the clone)

  std::string src, dst, mnt, log, done_flag, metadata;
  std::string exposed() const { return mnt + "/dst.img"; }
  const TempDir& dir() const { return dir_; }

  // clonefs mount --log-file LOG --on-complete 'touch DONE' EXTRA SRC DST MNT
  RunResult Mount(const std::string& extra = "");
  RunResult Unmount(const std::string& extra = "");
  // Waits (up to `seconds`) for --on-complete to have run.
  bool WaitComplete(int seconds);
  // True if a clonefs mount (live or stale) sits on mnt.
  bool IsMounted() const;
  // pid of the serving daemon, from its record (found through the mount, or
  // in `metadata`); 0 if none.
  int DaemonPid() const;
  std::string LogText() const;

  // Loop device over the exposed file (--direct-io=on); "" on failure.
  std::string AttachLoop();
  // Detaches it and waits (up to 10 s) until it has let go of the file.
  void DetachLoop(const std::string& dev);

 private:
  TempDir dir_;
  std::vector<std::string> loops_;
};

}  // namespace clonefs::testing
