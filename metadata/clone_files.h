// The files clonefs keeps in a metadata directory beside its RocksDB store.
//
// The metadata directory is the clone's home: the mount's FUSE fsname (the
// `source` field of /proc/self/mountinfo) is this directory, so anyone who
// can see the mount finds the daemon's log, its record and its control
// socket from the mount alone, whoever runs the command and whatever its
// environment (docs/cli.md, "Where things are").
//
// These files are not part of the store: deciding whether a directory is
// empty, an interrupted format or foreign (metadata_open.cc) ignores them.
//
// THREAD SAFETY: constants and a pure function.
#pragma once

#include <string>
#include <string_view>

namespace clonefs::metadata {

// The daemon's log (size-capped; rotated once to kRotatedLogFileName).
inline constexpr char kLogFileName[] = "clonefs.log";
inline constexpr char kRotatedLogFileName[] = "clonefs.log.1";
// The running daemon's record (src/fuse/runtime_info.h), written through a
// temporary kDaemonRecordName + ".tmp".
inline constexpr char kDaemonRecordName[] = "daemon.info";
inline constexpr char kDaemonRecordTempName[] = "daemon.info.tmp";
// The control channel's Unix socket (docs/control.md).
inline constexpr char kControlSocketName[] = "control.sock";
// The record that another program wrote dest while the clone was mounted
// (src/clone/dest_written.h), written through kDestWrittenTempName.
inline constexpr char kDestWrittenName[] = "dest-written";
inline constexpr char kDestWrittenTempName[] = "dest-written.tmp";

// True for the names above.
inline bool IsCloneSideFile(std::string_view name) {
  return name == kLogFileName || name == kRotatedLogFileName || name == kDaemonRecordName ||
         name == kDaemonRecordTempName || name == kControlSocketName || name == kDestWrittenName ||
         name == kDestWrittenTempName;
}

// `dir` + "/" + `name`.
inline std::string CloneFilePath(const std::string& dir, const char* name) {
  return dir + (dir.empty() || dir.back() != '/' ? "/" : "") + name;
}

}  // namespace clonefs::metadata
