// The record a running daemon keeps of itself in its clone's metadata
// directory, so the command line (`clonefs unmount`, tests) finds the daemon
// from a mount point alone, whoever runs it and whatever its environment.
//
// Location: METADATA/daemon.info (metadata/clone_files.h). The mount's FUSE
// fsname, the `source` field of /proc/self/mountinfo, is the metadata
// directory, so FindDaemonInfo goes mount point -> mountinfo -> metadata
// directory -> record; nothing depends on the caller's uid, XDG_RUNTIME_DIR
// or the length of the mount point's path. Content: "key=value" lines (pid,
// mountpoint, source, dest, metadata, name, log, final_error when the
// final commit failed, and profile_error when the access profile could not
// be written); a '\' or newline in a value is written as "\\" or
// "\n". Written atomically (daemon.info.tmp + rename) once the mount exists
// (if the file system is full, the existing record is rewritten in place);
// removed when the daemon exits after a successful final commit (and, if it
// recorded an access profile, after writing it). A record
// whose pid is gone is stale (a killed daemon); the next mount replaces it.
//
// THREAD SAFETY: stateless functions.
#pragma once

#include <sys/types.h>

#include <string>

#include "base/result.h"
#include "base/status.h"

namespace clonefs::fuse {

struct DaemonInfo {
  pid_t pid = 0;
  std::string mountpoint;  // canonical
  std::string source;
  std::string dest;
  std::string metadata_dir;  // where the record lives
  std::string name;          // exposed file name
  std::string log_file;      // the daemon's log file ("" if none)
  // Set (and the record left behind) when the daemon's final commit failed.
  std::string final_error;
  // Set (and the record left behind) when the access profile being recorded
  // (--record-profile) could not be written at exit.
  std::string profile_error;
};

// METADATA/daemon.info.
std::string DaemonRecordPath(const std::string& metadata_dir);

// Writes the record into info.metadata_dir. Errors: the file system's.
Status WriteDaemonInfo(const DaemonInfo& info);
// Errors: NotFound if there is no record in `metadata_dir`; IoError if it
// cannot be read.
Result<DaemonInfo> ReadDaemonRecord(const std::string& metadata_dir);
void RemoveDaemonInfo(const std::string& metadata_dir);

// The record of the daemon serving the clonefs mount at `mountpoint` (a
// canonical path): the topmost mount there must be fuse.clonefs; its source
// names the metadata directory. Errors: NotFound (not a clonefs mount, or
// no record, or a record of another mount point), IoError.
Result<DaemonInfo> FindDaemonInfo(const std::string& mountpoint);

// True if `pid` is a live clonefs process: not a zombie, and either its
// command name starts with "clonefs" or it runs the same executable as the
// caller (a renamed copy or link of the binary).
bool IsClonefsProcess(pid_t pid);

// Waits until the process `pid`, found dead (IsClonefsProcess false: a
// zombie leader, or gone), has exited with all of its threads, or until
// `timeout_ms` passed; true if it has (or was never there). A killed
// daemon's leader is a zombie while its other threads still exit and hold
// its files -- the metadata directory's lock, dest's lock -- for a moment.
// A live process under `pid` (not a zombie) is another program that got the
// id after the daemon was gone: true at once.
bool WaitUntilAllThreadsExited(pid_t pid, int timeout_ms);

}  // namespace clonefs::fuse
