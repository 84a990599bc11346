#include "control/discovery.h"

#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>

#include "base/mountinfo.h"
#include "control/socket_io.h"
#include "metadata/clone_files.h"

namespace clonefs::control {

std::string ControlSocketPath(const std::string& metadata_dir) {
  return metadata::CloneFilePath(metadata_dir, metadata::kControlSocketName);
}

Result<std::string> CanonicalMountpoint(const std::string& path) {
  // Without a trailing slash realpath(3) only reads links: behind one it
  // must stat the mount, which would wait for its daemon.
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  char buf[PATH_MAX];
  if (realpath(p.c_str(), buf) != nullptr) return std::string(buf);
  int err = errno;
  if (err != ENOTCONN && err != ECONNABORTED && err != EACCES) return Status::FromErrno(err, path);
  // The mountpoint's daemon died (ENOTCONN; ECONNABORTED while the kernel
  // tears down a dead daemon's io_uring queues), or it is a FUSE mount that
  // denies other users even a stat (EACCES).
  return CanonicalBesideMount(path);
}

namespace {

// A mount table line plus FUSE's user_id= super option.
MountEntry FromMountInfo(MountInfoLine m) {
  MountEntry e;
  e.mount_point = std::move(m.mount_point);
  e.fstype = std::move(m.fstype);
  e.source = std::move(m.source);
  e.super_options = std::move(m.super_options);
  if (std::optional<uint32_t> uid = FuseUserId(e.super_options)) e.user_id = *uid;
  return e;
}

}  // namespace

Result<MountEntry> ParseMountInfoLine(std::string_view line) {
  Result<MountInfoLine> m = clonefs::ParseMountInfoLine(line);
  if (!m.ok()) return m.status();
  return FromMountInfo(std::move(*m));
}

Result<MountEntry> FindMount(std::string_view mountinfo, const std::string& canonical) {
  std::optional<MountEntry> found;
  for (MountInfoLine& m : clonefs::ParseMountInfo(mountinfo)) {
    if (m.mount_point == canonical) found = FromMountInfo(std::move(m));  // last = topmost
  }
  if (!found) return Status::NotFound(canonical + " is not a mount point");
  return *found;
}

std::vector<MountEntry> ClonefsMounts(std::string_view mountinfo) {
  std::vector<MountEntry> out;
  for (MountInfoLine& m : clonefs::ParseMountInfo(mountinfo)) {
    MountEntry e = FromMountInfo(std::move(m));
    if (IsClonefsMount(e)) out.push_back(std::move(e));
  }
  return out;
}

bool IsClonefsMount(const MountEntry& e) {
  if (e.fstype == "fuse.clonefs") return true;
  return (e.fstype == "fuse" || e.fstype == "fuseblk") && e.source == "clonefs";
}

Result<std::string> ReadSelfMountInfo() { return clonefs::ReadSelfMountInfo(); }

Result<std::string> ResolveControlSocket(const std::string& mountpoint) {
  // Nothing here may send a request to the mount: a daemon that is alive but
  // does not answer (stopped, stuck) would hold this command in the kernel,
  // unkillably once FUSE over io_uring has taken the request. Whether the
  // daemon died is asked of its control socket instead (below).
  Result<std::string> canonical = CanonicalMountpoint(mountpoint);
  if (!canonical.ok()) {
    if (canonical.status().IsNotFound()) {
      return Status::NotFound(mountpoint + ": no such file or directory");
    }
    return canonical.status();
  }
  Result<std::string> info = ReadSelfMountInfo();
  if (!info.ok()) return info.status();
  Result<MountEntry> entry = FindMount(*info, *canonical);
  if (!entry.ok() || !IsClonefsMount(*entry)) {
    if (entry.ok()) {
      return Status::InvalidArgument(mountpoint + " is not a clonefs mount (mounted there: " +
                                     entry->fstype + ")");
    }
    return Status::InvalidArgument(
        mountpoint + " is not a clonefs mount (nothing is mounted there): mount a clone with "
        "clonefs mount SOURCE DEST " + mountpoint + ", or see a clone that is not mounted with "
        "clonefs info DEST");
  }
  const uid_t owner = entry->user_id.value_or(geteuid());
  const std::string path = ControlSocketPath(entry->source);
  struct stat st;  // lstat: a symlink is never the daemon's socket
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == EACCES) {
      return Status::Permission(mountpoint + " is controlled by uid " + std::to_string(owner) +
                                "; only that user and root may query or steer it");
    }
    return Status::NotFound("no control socket for " + mountpoint + " (looked for " + path +
                            "): is the clonefs daemon running?");
  }
  if (!S_ISSOCK(st.st_mode) || (st.st_uid != owner && st.st_uid != 0)) {
    return Status::Permission(path + " is not a socket of the clone's owner (uid " +
                              std::to_string(owner) + "); refusing to talk to it");
  }
  if (access(path.c_str(), R_OK | W_OK) != 0 && errno == EACCES) {
    return Status::Permission(mountpoint + " is controlled by uid " + std::to_string(owner) +
                              "; only that user and root may query or steer it");
  }
  // A socket nobody listens on any more, under a clonefs mount that is
  // still there: its daemon died (a daemon that exits removes both). The
  // server answers nothing to a connection closed before any request.
  Result<int> probe = ConnectUnix(path);
  if (probe.ok()) {
    close(*probe);
  } else if (probe.status().sys_errno() == ECONNREFUSED) {
    return Status::IoError(
        mountpoint +
        ": the clonefs daemon serving it died (transport endpoint is not "
        "connected); its clone is intact up to its last commit. Resume it with clonefs mount "
        "SOURCE DEST " +
        mountpoint +
        " (the stale mount is replaced), or remove the stale mount "
        "with clonefs unmount " +
        mountpoint);
  }
  return path;
}

}  // namespace clonefs::control
