#include "fuse/preflight.h"

#include <fcntl.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "devices/posix_device.h"
#include "fuse/identity.h"
#include "fuse/mount_table.h"

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

Status CheckDestBeforeOpen(const MountOptions& o, const struct stat& src_st, bool* exists,
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
    const bool same = S_ISBLK(st->st_mode)
                          ? (S_ISBLK(src_st.st_mode) && st->st_rdev == src_st.st_rdev)
                          : (st->st_dev == src_st.st_dev && st->st_ino == src_st.st_ino);
    if (same) {
      return Status::InvalidArgument("dest " + o.dest + " is the source itself (same " +
                                     (S_ISBLK(st->st_mode) ? "device" : "inode") +
                                     "); give a different file to write to");
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

Status ExplainMetadataError(const Status& s, const MountOptions& o) {
  const std::string& md = o.metadata_dir;
  if (s.IsBusy()) {
    return Status::Busy("metadata " + md + " is locked by another clonefs daemon: this clone is " +
                        "already mounted (see: mount -t fuse.clonefs); unmount it first");
  }
  if (s.IsMismatch()) {
    if (o.region_size_given && s.message().find("region size:") != std::string::npos) {
      // Never advise a new clone over this dest: it would overwrite its data.
      return Status::Mismatch(s.message() + "; a clone's region size is fixed when it is " +
                              "created: mount it without --region-size to use its own");
    }
    return Status::Mismatch(s.message() + "; mount the clone with its own source, dest and region size, or " +
                            "give --metadata a new directory to start a new clone");
  }
  if (s.IsCorruption()) {
    return Status::Corruption("metadata " + md + " is damaged: " + s.message() +
                              "; refusing to mount (restore it, or start a new clone with a new " +
                              "--metadata directory)");
  }
  if (s.IsInvalidArgument()) return Status::InvalidArgument(s.message());
  if (s.IsNoSpace()) {
    return Status::NoSpace("the metadata file system is full: metadata " + md +
                           " cannot be opened (" + s.message() +
                           "). Free space on the file system that holds " +
                           md + " (see df), or move that directory to a file system with free " +
                           "space and mount with --metadata NEWDIR, then mount again: the clone " +
                           "resumes from its last commit");
  }
  return Status::IoError("metadata " + md + " cannot be opened: " + s.message() +
                         "; examine it with clonefs check --metadata " + md +
                         ", or give --metadata a new directory to start a new clone");
}

}  // namespace

Status CheckMountpoint(const MountOptions& o, const NoteFn& note) {
  const std::string& mp = o.mountpoint;
  auto entry = FindMount(mp);
  if (!entry.ok()) return entry.status();
  if (*entry) {
    // statfs always reaches the daemon (stat may be answered from the
    // kernel's attribute cache): ENOTCONN means the daemon died.
    struct statfs sfs;
    const bool dead = statfs(mp.c_str(), &sfs) != 0 && errno == ENOTCONN;
    const MountEntry& e = **entry;
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
    Status u = UnmountPath(mp, /*lazy=*/true);
    if (!u.ok()) {
      return Status::Busy("mount point " + mp + " is a stale clonefs mount and could not be " +
                          "detached (" + u.message() + "); run: umount -l " + mp);
    }
    note("mount point " + mp + " was a stale mount of a clonefs daemon that died; " +
         "detached it (umount -l) and mounting again");
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
  return Status::OK();
}

Status CheckPathLayout(const MountOptions& o) {
  struct Named { const char* what; const std::string* path; };
  const Named paths[] = {{"source", &o.source}, {"dest", &o.dest},
                         {"metadata directory", &o.metadata_dir}, {"log file", &o.log_file}};
  for (const auto& p : paths) {
    if (!p.path->empty() && Inside(*p.path, o.mountpoint)) {
      return Status::InvalidArgument(std::string(p.what) + " " + *p.path +
                                     " lies inside the mount point " + o.mountpoint +
                                     "; put it elsewhere");
    }
  }
  if (o.source == o.dest) {
    return Status::InvalidArgument("dest " + o.dest +
                                   " is the source itself; give a different file to write to");
  }
  if (Inside(o.metadata_dir, o.dest) || o.metadata_dir == o.source) {
    return Status::InvalidArgument("metadata directory " + o.metadata_dir +
                                   " collides with source or dest; choose another --metadata");
  }
  return Status::OK();
}

Result<OpenedClone> OpenClone(const MountOptions& o, const NoteFn& note) {
  OpenedClone c;
  struct stat src_st;
  CLONEFS_RETURN_IF_ERROR(CheckSourceStat(o.source, &src_st));
  PosixDeviceOptions spo;
  spo.read_only = true;
  spo.direct = o.direct_io;
  auto src = OpenDevice(o.source, spo, note);
  if (!src.ok()) return src.status().WithContext("cannot open source " + o.source);
  c.source = std::move(*src);
  const uint64_t size = c.source->Size();
  if (size == 0) return Status::InvalidArgument("source " + o.source + " is empty; nothing to clone");

  bool dest_existed = false;
  struct stat dst_st;
  CLONEFS_RETURN_IF_ERROR(CheckDestBeforeOpen(o, src_st, &dest_existed, &dst_st));
  PosixDeviceOptions dpo;
  dpo.direct = o.direct_io;
  dpo.create = true;
  dpo.min_size = size;  // sparse create / extend a shorter regular file
  auto dst = OpenDevice(o.dest, dpo, note);
  if (!dst.ok()) {
    Status s = dst.status();
    if (s.code() == Status::Code::kPermission && s.message().find("read-only") != std::string::npos) {
      return Status::Permission("dest " + o.dest +
                                " is on a read-only file system; choose a writable location");
    }
    return s.WithContext("cannot open dest " + o.dest + " for writing");
  }
  c.dest = std::move(*dst);
  c.created_dest = !dest_existed;
  auto cleanup = [&](Status s) -> Status {
    if (c.created_dest) {
      c.dest.reset();
      unlink(o.dest.c_str());
    }
    return s;
  };
  if (stat(o.dest.c_str(), &c.dest_stat) != 0) {
    return cleanup(Status::FromErrno(errno, "dest " + o.dest + " cannot be examined"));
  }
  if (c.dest->Size() < size) {
    return cleanup(Status::InvalidArgument(
        "dest " + o.dest + " is smaller than the source (" + std::to_string(c.dest->Size()) +
        " < " + std::to_string(size) + " bytes); use a device at least as large as the source"));
  }

  auto src_id = SourceIdentity(*c.source, src_st, o.source);
  if (!src_id.ok()) return cleanup(src_id.status().WithContext("cannot read source " + o.source));
  metadata::MetadataOptions mo;
  mo.dir = o.metadata_dir;
  mo.image_size = size;
  mo.region_size = o.region_size;
  mo.use_stored_region_size = !o.region_size_given;  // a resumed clone keeps its own
  mo.source = *src_id;
  mo.dest = DestIdentity(c.dest_stat, o.dest);
  auto md = metadata::Metadata::Open(mo);
  if (!md.ok()) return cleanup(ExplainMetadataError(md.status(), o));
  c.metadata = std::move(*md);
  return c;
}

}  // namespace clonefs::fuse
