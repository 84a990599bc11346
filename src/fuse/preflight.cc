#include "fuse/preflight.h"

#include <fcntl.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <dirent.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/log.h"
#include "base/printable.h"
#include "clone/dest_written.h"
#include "clone/identity.h"
#include "clone/same_storage.h"
#include "clone/storage_probe.h"
#include "devices/posix_device.h"
#include "fuse/mount_table.h"
#include "fuse/read_only_place.h"
#include "fuse/runtime_info.h"
#include "metadata/clone_files.h"
#include "profile/profile.h"
#include "sources/open_source.h"
#include "sources/source_spec.h"
#include "sources/timed_device.h"
#include "sources/unopened_source.h"

namespace clonefs::fuse {
namespace {

std::string Errno(int err) { return std::strerror(err); }

std::string Parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool Inside(const std::string& path, const std::string& dir) {
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         (dir == "/" || path[dir.size()] == '/'));
}

// Whether `path` or one of its ancestors is the directory `dir` (by device
// and inode, symlinks followed): a path that reaches the mount point through
// a symlink or a bind mount lies inside it as much as one spelled under it.
// REQUIRES: path absolute and normalised.
bool ReachesDirectory(const std::string& path, const struct stat& dir) {
  for (std::string p = path;; p = Parent(p)) {
    struct stat st;
    if (stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_dev == dir.st_dev &&
        st.st_ino == dir.st_ino) {
      return true;
    }
    if (p == "/") return false;
  }
}

// The paths the daemon opens by name once mounted, with their names for
// messages; empty ones are not given. (An access profile being recorded is
// written after the unmount.)
struct NamedPath {
  const char* what;
  const std::string* path;
};
std::vector<NamedPath> PathsOffTheMount(const MountOptions& o) {
  return {{"source", &o.source},
          {"dest", &o.dest},
          {"metadata directory", &o.metadata_dir},
          {"log file", &o.log_file}};
}

// `how`: "" for a path spelled under the mount point, else how it gets there.
Status InsideMountpoint(const char* what, const std::string& path, const std::string& mp,
                        const std::string& how = "") {
  return Status::InvalidArgument(std::string(what) + " " + path + " lies inside the mount point " +
                                 mp + how + "; put it elsewhere");
}

// The check of CheckPathLayout by inode, for paths that reach the mount
// point `mp` (whose stat is `mp_st`) under another name.
Status CheckNotReachingMountpoint(const MountOptions& o, const struct stat& mp_st) {
  for (const auto& p : PathsOffTheMount(o)) {
    if (p.path->empty() || p.path->front() != '/') continue;  // a remote source
    if (ReachesDirectory(*p.path, mp_st)) {
      return InsideMountpoint(p.what, *p.path, o.mountpoint,
                              " (it is reached through a symlink or a bind mount)");
    }
  }
  return Status::OK();
}

// Opens with O_DIRECT if asked, falling back to buffered I/O where the file
// system refuses O_DIRECT.
Result<std::unique_ptr<Device>> OpenDevice(const std::string& path, PosixDeviceOptions po,
                                           const NoteFn& note) {
  auto dev = OpenPosixDevice(path, po);
  if (!dev.ok() && po.direct && dev.status().IsInvalidArgument()) {
    po.direct = false;
    auto buffered = OpenPosixDevice(path, po);
    if (buffered.ok()) {
      note(path + ": the file system refuses O_DIRECT; using buffered I/O");
      return buffered;
    }
  }
  return dev;
}

Status CheckSourceStat(const std::string& path, struct stat* st) {
  if (stat(path.c_str(), st) != 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound("source " + path + " does not exist; check the path");
    return Status::FromErrno(err, "source " + path + " cannot be examined");
  }
  if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode)) {
    return Status::InvalidArgument("source " + path +
                                   " is neither a regular file nor a block device; give an image");
  }
  if (access(path.c_str(), R_OK) != 0) {
    return Status::Permission("source " + path + " is not readable (" + Errno(errno) +
                              "); run clonefs as a user who can read it");
  }
  return Status::OK();
}

Status CheckDestBeforeOpen(const MountOptions& o, bool* exists,
                           struct stat* st) {
  *exists = stat(o.dest.c_str(), st) == 0;
  if (!*exists) {
    if (errno != ENOENT) return Status::FromErrno(errno, "dest " + o.dest + " cannot be examined");
    struct stat pst;
    std::string parent = Parent(o.dest);
    if (stat(parent.c_str(), &pst) != 0 || !S_ISDIR(pst.st_mode)) {
      return Status::NotFound("directory " + parent + " for dest " + o.dest +
                              " does not exist; create it first");
    }
  } else {
    if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode)) {
      return Status::InvalidArgument("dest " + o.dest +
                                     " is neither a regular file nor a block device");
    }
    if (S_ISBLK(st->st_mode) && o.metadata_dir == o.dest + ".clonefs") {
      return Status::InvalidArgument("dest " + o.dest + " is a block device; give the metadata " +
                                     "a directory on a file system with --metadata DIR");
    }
  }
  struct statvfs sv;
  const std::string probe = *exists && !S_ISBLK(st->st_mode) ? o.dest : Parent(o.dest);
  if (!(*exists && S_ISBLK(st->st_mode)) && statvfs(probe.c_str(), &sv) == 0 &&
      (sv.f_flag & ST_RDONLY)) {
    return Status::Permission("dest " + o.dest +
                              " is on a read-only file system; choose a writable location");
  }
  return Status::OK();
}

// For a mismatch (`message`, metadata::Metadata::Open's) whose only
// difference is the source's mtime -- its size and sampled content are as
// recorded, e.g. a source put back after it changed under the live clone
// (which says "restore the source and mount again") -- how to mount again;
// "" otherwise.
std::string MtimeOnlyRemedy(const std::string& message, const MountOptions& o) {
  const std::string lead = "belongs to a different clone: ";
  const size_t at = message.find(lead);
  if (at == std::string::npos) return "";
  const std::string diffs = message.substr(at + lead.size());
  if (diffs.rfind("source mtime: ", 0) != 0 || diffs.find("; ") != std::string::npos) return "";
  Result<metadata::Superblock> sb = metadata::Metadata::ReadSuperblock(o.metadata_dir);
  if (!sb.ok() || sb->source.mtime_ns <= 0) return "";
  const int64_t ns = sb->source.mtime_ns;
  char when[48];
  if ((sb->source.flags & metadata::FileIdentity::kRemote) != 0) {
    // The web server's Last-Modified date: whole seconds.
    snprintf(when, sizeof(when), "@%lld", static_cast<long long>(ns / 1'000'000'000));
    return "only the web server's Last-Modified date for it differs (its size and sampled "
           "content are as recorded), and the samples cannot rule out a change elsewhere. If "
           "the file on the server is unchanged since the clone last used it (copied or moved "
           "there without its modification time), give it back that time on the server and "
           "mount again: touch -m -d " +
           std::string(when) +
           " FILE (the served file); if its content changed, start a new clone with a new dest";
  }
  snprintf(when, sizeof(when), "@%lld.%09lld", static_cast<long long>(ns / 1'000'000'000),
           static_cast<long long>(ns % 1'000'000'000));
  return "only the source's modification time differs (its size and sampled content are as "
         "recorded). If " +
         o.source +
         " is unchanged since the clone last used it (put back "
         "from a copy, or truncated back to its size), give it back that time and mount again: "
         "touch -m -d " +
         when + " " + ShellWord(o.source) +
         "; if its content changed, start a new clone "
         "with a new dest";
}

// The longest existing prefix of `path` (stat) that is not a directory
// (a file where a directory of the path should be), or "" if none.
std::string FirstNonDirectory(const std::string& path) {
  std::filesystem::path p(path);
  for (std::filesystem::path q = p; !q.empty() && q != q.root_path(); q = q.parent_path()) {
    struct stat st;
    if (stat(q.c_str(), &st) != 0) continue;
    return S_ISDIR(st.st_mode) ? std::string() : q.string();
  }
  return "";
}

// `existing`: a clone is recorded in the metadata (false: this mount was
// creating it).
Status ExplainMetadataError(const Status& s, const MountOptions& o, bool existing) {
  const std::string& md = o.metadata_dir;
  if (s.IsBusy()) {
    return Status::Busy("metadata " + md + " is locked by another clonefs daemon: this clone is " +
                        "already mounted (see: mount -t fuse.clonefs); unmount it first. A clone "
                        "not listed there was detached (clonefs unmount --force) and still serves "
                        "the programs that have its file open: it makes its final commit and "
                        "exits once they close it");
  }
  if (s.IsMismatch()) {
    if (o.region_size_given && s.message().find("region size:") != std::string::npos) {
      // Never advise a new clone over this dest: it would overwrite its data.
      return Status::Mismatch(s.message() + "; a clone's region size is fixed when it is " +
                              "created: mount it without --region-size to use its own");
    }
    if (std::string touch = MtimeOnlyRemedy(s.message(), o); !touch.empty()) {
      return Status::Mismatch(s.message() + "; " + touch);
    }
    return Status::Mismatch(s.message() + "; mount the clone with its own source and dest (see: "
                            "clonefs info --metadata " + md + "). If its dest was replaced, the "
                            "data it held is gone: start a new clone with a new dest");
  }
  if (s.IsCorruption()) {
    return Status::Corruption("metadata " + md + " is damaged: " + s.message() +
                              "; refusing to mount. Restore it from a backup; dest " + o.dest +
                              " is unchanged (a clone may only restart over it with "
                              "--overwrite-dest, which discards what it holds)");
  }
  if (s.IsInvalidArgument()) return Status::InvalidArgument(s.message());
  if (std::optional<ReadOnlyPlace> ro = ReadOnlyFileSystemAt(md)) {
    // RocksDB cannot take its lock or write its log there. That says
    // nothing against the store (clonefs check, which only reads, finds it
    // clean): the file system is what to fix.
    const std::string where = ro->mount_point.empty() ? ro->dir : ro->mount_point;
    const std::string remount =
        "remount " + where + " read-write (mount -o remount,rw " + where + ")";
    const std::string repair =
        "; if it went read-only by itself (after I/O errors), repair it (fsck) first";
    if (!existing) {
      return Status::Permission("metadata " + md + " cannot be created: " + ro->dir +
                                " is on a read-only file system (mounted read-only at " + where +
                                "). Give --metadata a directory on a writable file system, or " +
                                remount + ", then mount again; no clone was created");
    }
    return Status::Permission("metadata " + md +
                              " is on a read-only file system (mounted read-only at " + where +
                              "): mounting the clone writes there (its lock, its log, every "
                              "commit). R" +
                              remount.substr(1) + ", or copy " + md +
                              " to a writable file system and mount with --metadata NEWDIR, "
                              "then mount again: the clone resumes from its last commit" +
                              repair);
  }
  if (s.IsNoSpace() && !existing) {
    return Status::NoSpace("the metadata file system is full: metadata " + md +
                           " cannot be created (" + s.message() + "). Free space on the file " +
                           "system that holds " + md + " (see df), or give a directory on a " +
                           "file system with free space with --metadata NEWDIR, then mount " +
                           "again; no clone was created");
  }
  if (s.IsNoSpace()) {
    return Status::NoSpace("the metadata file system is full: metadata " + md +
                           " cannot be opened (" + s.message() +
                           "). Free space on the file system that holds " +
                           md + " (see df), or move that directory to a file system with free " +
                           "space and mount with --metadata NEWDIR, then mount again: the clone " +
                           "resumes from its last commit");
  }
  if (s.sys_errno() == ENOTDIR) {
    // Not a store to examine: a file stands where a directory must be.
    const std::string file = FirstNonDirectory(md);
    return Status::InvalidArgument(
        "metadata " + md +
        " cannot be a directory: " + (file.empty() ? std::string("a part of its path") : file) +
        " is not a directory; give --metadata a directory path (one that does not exist "
        "yet is created)");
  }
  return Status::IoError("metadata " + md + " cannot be opened: " + s.message() +
                         "; examine it with clonefs check --metadata " + md);
}

// Why a new clone may not start on an existing dest, or OK.
Status CheckDestIsBlank(const MountOptions& o) {
  CLONEFS_ASSIGN_OR_RETURN(clone::DestContent content, clone::ExamineDestContent(o.dest));
  if (content.blank()) return Status::OK();
  const std::string what =
      content.kind == clone::DestContent::Kind::kHoldsData
          ? "dest " + o.dest + " already holds data (from offset " +
                std::to_string(content.first_data) + ")"
          : "dest " + o.dest + " is a block device that may hold data (clonefs cannot tell "
                               "an unused device from a used one)";
  return Status::Busy(what + ", and no clone is recorded for it in " + o.metadata_dir +
                      ": a new clone would overwrite it with the source. If it is a clone whose "
                      "metadata is elsewhere, give that directory with --metadata; if it is a "
                      "finished clone, it is the image already: use it directly; to overwrite "
                      "it, add --overwrite-dest");
}

}  // namespace

namespace {

// Mounting hides what the directory holds: say so, and name one entry.
void NoteHiddenEntries(const std::string& mp, const NoteFn& note) {
  DIR* d = opendir(mp.c_str());
  if (d == nullptr) return;  // the mount itself will say what is wrong
  uint64_t count = 0;
  std::string example;
  while (struct dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (count++ == 0) example = e->d_name;
  }
  closedir(d);
  if (count == 0) return;
  note("mount point " + mp + " is not empty (" + std::to_string(count) +
       (count == 1 ? " entry: '" : " entries, e.g. '") + Printable(example) +
       "'); they are hidden while the clone is mounted and visible again after clonefs "
       "unmount " + mp);
}

// Whether the daemon serving the mount `e` at `mp` died. A clonefs mount's
// daemon is looked up by its record (runtime_info.h), never asked through
// the mount: one that is alive but does not answer (stopped, stuck) would
// hold a statfs, and this mount, for as long as it does not answer.
// Otherwise (another program's mount, a clonefs daemon that left no record)
// statfs, which always reaches the daemon (stat may be answered from the
// kernel's attribute cache): ENOTCONN means the daemon died, and so does
// ECONNABORTED, what a request gets while the kernel is still tearing down
// the io_uring queues of a daemon that died.
// A dead daemon found by its record is waited for (up to 5 s) until every
// one of its threads has exited: until then they hold its files, and the
// locks of its metadata and dest would refuse or confuse this mount.
bool MountsDaemonDied(const std::string& mp, const MountEntry& e) {
  if (e.fstype == "fuse.clonefs") {
    Result<DaemonInfo> info = FindDaemonInfo(mp);
    if (info.ok()) {
      if (IsClonefsProcess(info->pid)) return false;
      (void)WaitUntilAllThreadsExited(info->pid, 5000);
      return true;
    }
  }
  struct statfs sfs;
  return statfs(mp.c_str(), &sfs) != 0 && (errno == ENOTCONN || errno == ECONNABORTED);
}

// What to tell the user when a stale mount was still in use as it was
// detached: its users (the loop devices `loops`, a VM) keep the dead
// mount's file and are not served by the new mount.
std::string StaleUsersNote(const std::string& mp, const std::vector<std::string>& loops) {
  if (loops.empty()) {
    return "the dead mount's file was still open (by a VM or another program): that program "
           "is not served by the new mount until it opens the file in " +
           mp + " again (restart the VM, or reattach its disk)";
  }
  std::string list, detach;
  for (const std::string& l : loops) {
    list += (list.empty() ? "" : ", ") + l;
    detach += " " + l;
  }
  return std::string(loops.size() == 1 ? "loop device " : "loop devices ") + list +
         (loops.size() == 1 ? " still uses the dead mount's file and is"
                            : " still use the dead mount's file and are") +
         " not served by the new mount: unmount what "
         "is mounted from " +
         (loops.size() == 1 ? "it" : "them") + ", detach " + (loops.size() == 1 ? "it" : "them") +
         " (losetup -d" + detach + ") and attach the file in " + mp + " again";
}

}  // namespace

Status CheckMountpoint(const MountOptions& o, const NoteFn& note) {
  const std::string& mp = o.mountpoint;
  auto entry = FindMount(mp);
  if (!entry.ok()) return entry.status();
  if (*entry) {
    const MountEntry& e = **entry;
    const bool dead = MountsDaemonDied(mp, e);
    if (!dead) {
      return Status::Busy("mount point " + mp + " is already a mount point (" + e.fstype +
                          " from " + e.source + "); unmount it first" +
                          (e.fstype == "fuse.clonefs" ? " (clonefs unmount " + mp + ")"
                                                      : std::string("")));
    }
    if (e.fstype != "fuse.clonefs") {
      return Status::Busy("mount point " + mp + " is a dead FUSE mount (" + e.fstype +
                          ") of another program; detach it with: umount -l " + mp);
    }
    // Whatever still has the dead mount's file open (a loop device, a VM)
    // stays with the dead mount when it is detached, and is not served by
    // the new one: a plain unmount tells whether there is any, and the note
    // names the loop devices and what to do.
    const std::vector<std::string> loops = LoopDevicesBackedByFilesIn(mp);
    Status plain = UnmountPath(mp, /*lazy=*/false);
    const bool in_use = plain.IsBusy();
    if (!plain.ok()) {
      Status u = UnmountPath(mp, /*lazy=*/true);
      if (!u.ok()) {
        return Status::Busy("mount point " + mp + " is a stale clonefs mount and could not be " +
                            "detached (" + u.message() + "); run: umount -l " + mp);
      }
    }
    note("mount point " + mp + " was a stale mount of a clonefs daemon that died; " +
         (in_use ? "detached it (umount -l)" : "unmounted it") + " and mounting again");
    if (in_use) note(StaleUsersNote(mp, loops));
  }
  struct stat st;
  if (stat(mp.c_str(), &st) != 0) {
    int err = errno;
    if (err == ENOENT) {
      return Status::NotFound("mount point " + mp + " does not exist; create it: mkdir -p " + mp);
    }
    return Status::FromErrno(err, "mount point " + mp + " cannot be examined");
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::InvalidArgument("mount point " + mp + " is not a directory; give a directory");
  }
  CLONEFS_RETURN_IF_ERROR(CheckNotReachingMountpoint(o, st));
  NoteHiddenEntries(mp, note);
  return Status::OK();
}

// Whether `name` (stat'ed as `*st`, or nullptr if it does not exist) is the
// file `path` names: the same path, or the same inode under an absolute
// path.
static bool NamesFile(const std::string& name, const struct stat* st, const std::string& path) {
  struct stat other;
  return name == path || (st != nullptr && !path.empty() && path.front() == '/' &&
                          ::stat(path.c_str(), &other) == 0 && other.st_dev == st->st_dev &&
                          other.st_ino == st->st_ino);
}

// --log-file is appended to, and renamed to FILE.1 when it reaches its cap:
// it must be a file of its own, not the source or the dest (by path, or by
// inode under another name), not a block device, and not one of the files
// of the metadata directory but the log kept there anyway.
Status CheckLogFileIsItsOwn(const MountOptions& o) {
  const std::string& log = o.log_file;
  if (log.empty()) return Status::OK();
  auto refuse = [&log](const std::string& what) {
    return Status::InvalidArgument(
        "log file " + Printable(log) + " " + what +
        ": the log is appended to it and renames it to " + Printable(log) +
        ".1 when it is full; give --log-file a file of its own, or leave --log-file out to log "
        "to the metadata directory's clonefs.log");
  };
  struct stat st;
  const bool exists = ::stat(log.c_str(), &st) == 0;
  auto is = [&](const std::string& path) { return NamesFile(log, exists ? &st : nullptr, path); };
  if (is(o.source)) return refuse("is the source " + Printable(o.source));
  if (is(o.dest)) return refuse("is the dest " + Printable(o.dest));
  if (exists && S_ISBLK(st.st_mode)) return refuse("is a block device");
  if (!o.metadata_dir.empty() && Inside(log, o.metadata_dir) &&
      log != metadata::CloneFilePath(o.metadata_dir, metadata::kLogFileName)) {
    return refuse("lies inside the metadata directory " + Printable(o.metadata_dir) +
                  ", which holds the clone's own files");
  }
  return Status::OK();
}

Status CheckPathLayout(const MountOptions& o) {
  for (const auto& p : PathsOffTheMount(o)) {
    if (!p.path->empty() && Inside(*p.path, o.mountpoint)) {
      return InsideMountpoint(p.what, *p.path, o.mountpoint);
    }
  }
  // By inode too, unless the mount point is a mount (whose daemon might not
  // answer a stat): CheckMountpoint then refuses it, or repeats this check
  // once it has removed a stale one.
  auto entry = FindMount(o.mountpoint);
  struct stat mp_st;
  if (entry.ok() && !entry->has_value() && stat(o.mountpoint.c_str(), &mp_st) == 0) {
    CLONEFS_RETURN_IF_ERROR(CheckNotReachingMountpoint(o, mp_st));
  }
  if (o.source == o.dest) {
    return Status::InvalidArgument("dest " + o.dest +
                                   " is the source itself; give a different file to write to");
  }
  if (!o.metadata_dir.empty() && Inside(o.dest, o.metadata_dir) && o.dest != o.metadata_dir) {
    return Status::InvalidArgument("dest " + o.dest + " lies inside the metadata directory " +
                                   o.metadata_dir + ", which holds the clone's own files only; " +
                                   "put the dest or the metadata (--metadata) elsewhere");
  }
  if (Inside(o.metadata_dir, o.dest) || o.metadata_dir == o.source) {
    return Status::InvalidArgument("metadata directory " + o.metadata_dir +
                                   " collides with source or dest; choose another --metadata");
  }
  return CheckLogFileIsItsOwn(o);
}

Status CheckWritesOffSource(const MountOptions& o) {
  Result<SourceSpec> spec = ParseSource(o.source);
  struct stat st;
  if (!spec.ok() || spec->IsRemote() || stat(o.source.c_str(), &st) != 0) return Status::OK();
  CLONEFS_RETURN_IF_ERROR(clone::CheckDistinctStorage(o.source, o.dest));
  CLONEFS_RETURN_IF_ERROR(
      clone::CheckNotStoredOnSource(o.source, o.metadata_dir, "metadata directory", "--metadata"));
  if (o.log_file.empty()) return Status::OK();
  return clone::CheckNotStoredOnSource(o.source, o.log_file, "log file", "--log-file");
}

Status CheckRecordingTarget(const MountOptions& o, const struct stat& dest_st) {
  const std::string& rp = o.record_profile;
  if (rp.empty()) return Status::OK();
  auto refuse = [&rp](const std::string& what) {
    return Status::InvalidArgument(
        "--record-profile " + Printable(rp) + " " + what +
        ": the recording replaces that file when the clone is unmounted; give --record-profile "
        "a file of its own, or --record-profile '' to mount without recording");
  };
  // The name itself is what the rename replaces (a symlink, not its target).
  struct stat st;
  const bool exists = ::lstat(rp.c_str(), &st) == 0;
  auto is = [&](const std::string& path) { return NamesFile(rp, exists ? &st : nullptr, path); };
  if (rp == o.dest || (exists && st.st_dev == dest_st.st_dev && st.st_ino == dest_st.st_ino)) {
    return refuse("is this clone's dest " + Printable(o.dest));
  }
  if (is(o.source)) return refuse("is this clone's source " + Printable(o.source));
  if (!o.log_file.empty() && is(o.log_file)) {
    return refuse("is this clone's log file (--log-file)");
  }
  if (exists && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISDIR(st.st_mode)) {
    return refuse("is a device node, FIFO or socket, not a file");
  }
  if (!o.metadata_dir.empty() && Inside(rp, o.metadata_dir) &&
      !(exists && profile::BeginsAsProfile(rp))) {
    return refuse("lies inside the metadata directory " + Printable(o.metadata_dir) +
                  ", which holds the clone's own files");
  }
  if (Status s = profile::CheckReplaceable(rp); !s.ok()) {
    return Status::InvalidArgument(
        "--record-profile " + s.message() +
        " when the clone is unmounted; give --record-profile another file (or remove this one "
        "first if it may go), or --record-profile '' to mount without recording");
  }
  return Status::OK();
}

void RemoveCreated(const CreatedByMount& c) {
  std::error_code ec;
  if (!c.metadata_top_made.empty()) {
    std::filesystem::remove_all(c.metadata_top_made, ec);
    if (ec) {
      CLONEFS_LOG_WARN("cannot remove the directory %s this mount created: %s",
                       c.metadata_top_made.c_str(), ec.message().c_str());
    }
  } else if (!c.metadata_dir.empty()) {
    const std::set<std::string> kept(c.metadata_kept.begin(), c.metadata_kept.end());
    for (std::filesystem::directory_iterator it(c.metadata_dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (kept.count(it->path().filename().string()) != 0) continue;
      std::error_code rm;
      std::filesystem::remove_all(it->path(), rm);
    }
    if (ec) {
      CLONEFS_LOG_WARN("cannot remove the metadata %s this mount created: %s",
                       c.metadata_dir.c_str(), ec.message().c_str());
    }
  }
  if (!c.dest.empty() && unlink(c.dest.c_str()) != 0 && errno != ENOENT) {
    CLONEFS_LOG_WARN("cannot remove the dest %s this mount created: %s", c.dest.c_str(),
                     std::strerror(errno));
  }
}

namespace {

// Opens the source read-only: a path as a POSIX device whose reads are
// bounded by the source timeout (a stalled network file system), a URI as a
// remote source (SPEC §9).
Result<std::unique_ptr<Device>> OpenSourceDevice(const MountOptions& o, const SourceSpec& spec,
                                                 const NoteFn& note) {
  const uint64_t timeout_ns = o.source_timeout_ms * 1'000'000ull;
  if (spec.IsRemote()) {
    SourceOpenOptions so;
    so.timeout_ns = timeout_ns;
    return OpenSource(spec, so);
  }
  // A file: as OpenSource does, but with O_DIRECT where asked and available.
  struct stat src_st;
  CLONEFS_RETURN_IF_ERROR(CheckSourceStat(o.source, &src_st));
  PosixDeviceOptions spo;
  spo.read_only = true;
  spo.direct = o.direct_io;
  // A FUSE server may invent mtimes (nbdfuse: its own mount time); there an
  // mtime says nothing about the content (SPEC §5).
  spo.watch_mtime = !clone::MtimeIsUnstable(o.source);
  auto src = OpenDevice(o.source, spo, note);
  if (!src.ok()) return src.status().WithContext("cannot open source " + o.source);
  TimedSourceOptions to;
  to.timeout_ns = timeout_ns;
  return MakeTimedSource(std::move(*src), to);
}

// The stand-in for a source that could not be opened (`why`), when the
// clone it names does not need it: an existing clone of that very source
// (as recorded: its path or URI), every region hydrated and committed
// (SPEC §4: dest alone is the image). *recorded: the source identity the
// clone recorded, for the metadata open. Otherwise `why` itself.
Result<std::unique_ptr<Device>> StandInForCompleteClone(const MountOptions& o,
                                                        const SourceSpec& spec, const Status& why,
                                                        metadata::FileIdentity* recorded) {
  Result<metadata::Superblock> sb = metadata::Metadata::ReadSuperblock(o.metadata_dir);
  if (!sb.ok()) return why;
  const std::string named = spec.IsRemote() ? spec.display : o.source;
  if (sb->source.path != named) return why;
  metadata::MetadataOptions mo;
  mo.dir = o.metadata_dir;
  mo.image_size = sb->image_size;
  mo.region_size = sb->region_size;
  mo.create_if_missing = false;
  mo.read_only = true;
  mo.verify_identities = false;
  Result<std::unique_ptr<metadata::Metadata>> md = metadata::Metadata::Open(mo);
  if (!md.ok() || (*md)->NrCommittedHydratedRegions() != (*md)->nr_regions()) return why;
  *recorded = sb->source;
  return MakeUnopenedSource(spec.display, sb->image_size, why.message());
}

// Records in `c` what a new clone's metadata open may create under `dir`:
// the outermost directory missing on the way to it, or, if `dir` exists,
// which of its entries to keep on failure: clonefs's own files beside the
// store (clone_files.h). The rest can only be an interrupted creation
// (RocksDB files without a clone: ReadSuperblock said NotFound), which the
// open completes and a failure removes, as it does with what it wrote.
void NoteMetadataToCreate(const std::string& dir, CreatedByMount* c) {
  c->metadata_dir = dir;
  // An entry that is there is not made by this mount, even a symlink whose
  // target is missing (lstat: the open fails on it, and the link stays).
  for (std::filesystem::path p = dir; !p.empty(); p = p.parent_path()) {
    struct stat st;
    if (lstat(p.c_str(), &st) == 0 || errno != ENOENT) break;
    c->metadata_top_made = p.string();
    if (p == p.parent_path()) break;
  }
  std::error_code ec;
  if (!c->metadata_top_made.empty()) return;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (metadata::IsCloneSideFile(name)) c->metadata_kept.push_back(name);
  }
}

}  // namespace

Result<OpenedClone> OpenClone(const MountOptions& o, const NoteFn& note) {
  OpenedClone c;
  Result<SourceSpec> spec = ParseSource(o.source);
  if (!spec.ok()) return spec.status();
  auto src = OpenSourceDevice(o, *spec, note);
  // Set when a complete clone is mounted without its source.
  std::optional<metadata::FileIdentity> recorded;
  if (!src.ok()) {
    metadata::FileIdentity id;
    auto stand_in = StandInForCompleteClone(o, *spec, src.status(), &id);
    if (!stand_in.ok()) return src.status();
    note("the source cannot be opened (" + src.status().message() +
         "), but this clone is complete and no longer reads it: mounting without it");
    recorded = id;
    src = std::move(*stand_in);
  }
  c.source = std::move(*src);
  const uint64_t size = c.source->Size();
  if (size == 0) {
    return Status::InvalidArgument("source " + spec->display + " is empty; nothing to clone");
  }

  bool dest_existed = false;
  struct stat dst_st;
  CLONEFS_RETURN_IF_ERROR(CheckDestBeforeOpen(o, &dest_existed, &dst_st));
  struct stat src_st;
  if (!spec->IsRemote() && (!recorded || stat(o.source.c_str(), &src_st) == 0)) {
    CLONEFS_RETURN_IF_ERROR(clone::CheckDistinctStorage(o.source, o.dest));
  }
  auto lock = clone::DestLock::Acquire(o.dest, /*create=*/!dest_existed);
  if (!lock.ok()) {
    Status s = lock.status();
    if (s.code() == Status::Code::kPermission && !dest_existed) {
      return Status::Permission("cannot create dest " + o.dest + ": " + s.message() +
                                "; choose a writable location");
    }
    return s;
  }
  c.dest_lock = std::move(*lock);
  if (c.dest_lock->created()) c.created.dest = o.dest;
  auto fail = [&](Status s) -> Status {
    c.dest.reset();
    c.dest_lock.reset();
    RemoveCreated(c.created);
    return s;
  };

  // An existing clone, a new one, or one whose creation was interrupted.
  bool existing = false;
  Result<metadata::Superblock> sb = metadata::Metadata::ReadSuperblock(o.metadata_dir);
  if (sb.ok()) {
    existing = true;
  } else if (sb.status().IsNotFound()) {
    if (sb.status().message().find("interrupted creation") != std::string::npos) {
      note("metadata " + o.metadata_dir + " holds an interrupted creation; completing it");
    }
  } else {
    return fail(ExplainMetadataError(sb.status(), o, /*existing=*/true));
  }

  if (existing && c.dest_lock->created()) {
    return fail(Status::NotFound(
        "dest " + o.dest + " does not exist, but " + o.metadata_dir + " records a clone (uuid " +
        sb->uuid + ") of " + sb->source.path + " into it: whatever it had hydrated is gone. "
        "Restore dest, or start a new clone with a new --metadata directory"));
  }
  if (!existing && !c.dest_lock->created() && !o.overwrite_dest) {
    Status blank = CheckDestIsBlank(o);
    if (!blank.ok()) return fail(blank);
  }

  PosixDeviceOptions dpo;
  dpo.direct = o.direct_io;
  dpo.min_size = existing ? 0 : size;  // a new clone's regular dest grows to the image
  auto dst = OpenDevice(o.dest, dpo, note);
  if (!dst.ok()) {
    Status s = dst.status();
    if (s.code() == Status::Code::kPermission && s.message().find("read-only") != std::string::npos) {
      return fail(Status::Permission("dest " + o.dest +
                                     " is on a read-only file system; choose a writable location"));
    }
    return fail(s.WithContext("cannot open dest " + o.dest + " for writing"));
  }
  c.dest = std::move(*dst);
  if (stat(o.dest.c_str(), &c.dest_stat) != 0) {
    return fail(Status::FromErrno(errno, "dest " + o.dest + " cannot be examined"));
  }
  if (c.dest->Size() < size) {
    if (existing && S_ISREG(c.dest_stat.st_mode)) {
      return fail(Status::Mismatch(
          "dest " + o.dest + " is " + std::to_string(c.dest->Size()) +
          " bytes, shorter than the image (" + std::to_string(size) +
          " bytes): it was truncated or replaced, and what was hydrated beyond that is gone. "
          "clonefs never extends an existing clone's dest; restore dest, or start a new clone "
          "with a new dest"));
    }
    return fail(Status::InvalidArgument(
        "dest " + o.dest + " is smaller than the source (" + std::to_string(c.dest->Size()) +
        " < " + std::to_string(size) + " bytes); use a device at least as large as the source"));
  }
  if (existing) {
    if (Status w = clone::CheckNoDestWritten(o.metadata_dir, o.dest); !w.ok()) return fail(w);
  }
  if (!existing) {
    // The dest (its size, its directory entry) is durable before any
    // metadata names it.
    Status durable = c.dest->Flush();
    if (durable.ok() && c.dest_lock->created()) durable = clone::SyncParentDir(o.dest);
    if (!durable.ok()) return fail(durable.WithContext("cannot make dest " + o.dest + " durable"));
  }

  auto src_id = recorded           ? Result<metadata::FileIdentity>(*recorded)
                : spec->IsRemote() ? clone::RemoteSourceIdentity(*c.source, spec->display,
                                                                 SourceIdentityDeviceId(*spec))
                                   : clone::SourceIdentity(*c.source, o.source);
  if (!src_id.ok()) {
    Status e = src_id.status().WithContext("cannot read source " + spec->display);
    if (e.IsIoError()) {
      // It reads samples of the source to recognise it by; no clone starts
      // or resumes without them.
      e = Status::IoError(e.message() +
                              "; the mount reads samples of the source to recognise it: check "
                              "the source (its disk, file system or server) and mount again",
                          e.sys_errno());
    }
    return fail(e);
  }
  auto dst_id = clone::DestIdentity(o.dest);
  if (!dst_id.ok()) return fail(dst_id.status().WithContext("cannot examine dest " + o.dest));
  metadata::MetadataOptions mo;
  mo.dir = o.metadata_dir;
  mo.image_size = size;
  mo.region_size = o.region_size;
  mo.use_stored_region_size = !o.region_size_given;  // a resumed clone keeps its own
  mo.source = *src_id;
  mo.dest = *dst_id;
  mo.create_if_missing = !existing;
  // A new clone's store (and any directory made for it) is removed if the
  // mount fails, from the open on: a failed format leaves files too
  // (RocksDB's LOCK and LOG on a full file system).
  if (!existing) NoteMetadataToCreate(o.metadata_dir, &c.created);
  auto md = metadata::Metadata::Open(mo);
  if (!md.ok() && md.status().IsBusy()) {
    // Another clonefs took the directory first (a clone being created there
    // now): what is in it is that one's, not this mount's.
    c.created.metadata_dir.clear();
    c.created.metadata_top_made.clear();
  }
  if (!md.ok()) return fail(ExplainMetadataError(md.status(), o, existing));
  c.metadata = std::move(*md);
  // The source matched the clone's recorded identity; a remote one checks
  // again after every reconnect and now and then (SPEC §7a).
  if (spec->IsRemote() && !recorded) {
    c.source->SetIdentityCheck(
        clone::RemoteIdentityCheck(*src_id, spec->display, SourceIdentityDeviceId(*spec)));
  }
  // So does a local block device now and then: it has no mtime to tell that
  // it was rewritten.
  struct stat sst;
  if (!spec->IsRemote() && !recorded && stat(o.source.c_str(), &sst) == 0 && S_ISBLK(sst.st_mode)) {
    c.source->SetIdentityCheck(clone::LocalIdentityCheck(*src_id, o.source));
  }
  return c;
}

}  // namespace clonefs::fuse
