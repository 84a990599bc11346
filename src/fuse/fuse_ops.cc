// The FUSE operations of clonefs: one small function per operation, each
// decoding its request, calling the engine and replying exactly once. The
// whole surface is the table at the end of this file.
//
// Errors become errno here and only here (Status::ToErrno). Choices:
//   - size changes (truncate/ftruncate to another size)     -> EPERM
//   - creating, removing, renaming or linking entries (the
//     mount holds the image file and nothing else)          -> EPERM
//   - writes starting at or past the end, fallocate that
//     would grow the file                                   -> EFBIG
//   - fallocate modes other than punch-hole, zero-range and
//     plain allocation inside the file                      -> EOPNOTSUPP
//   - SEEK_DATA/SEEK_HOLE at or past the end, or no data
//     after the offset                                      -> ENXIO
//   - the source did not answer within --source-timeout     -> EIO
//   - the request was interrupted (the reader was killed)
//     while it waited for the source                        -> EINTR
//     (a signal the reader handles is not an interruption:
//     the request goes on)
//   - an open that may not be passed through while
//     passed-through opens are live (passthrough.h)         -> EIO
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "base/cancel.h"
#include "base/log.h"
#include "fuse/fuse_fs.h"
#include "fuse/fuse_kernel_abi.h"
#include "fuse/requester.h"
#include "fuse/uring_queues.h"

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

namespace clonefs::fuse {
namespace {

// fuse_file_info::fh of the opens OpOpen passed through (0 for the others),
// so that OpRelease can tell them apart.
constexpr uint64_t kPassthroughHandle = 1;

void InterruptToken(fuse_req_t, void* token) { static_cast<CancelToken*>(token)->Interrupt(); }

// Runs `op` (an engine call that may wait for the source) with a CancelToken
// current that the kernel's INTERRUPT for `req` cancels once the requester
// is being killed: a reader killed while it waits for a stalled source gets
// its answer (EINTR) at once and is never left in uninterruptible sleep
// (SPEC §7a). A signal the requester handles does not fail its read or
// write with EINTR, as it would not on a disk (requester.h); should it be
// killed later, the waiting code sees that at its next poll (the kernel
// sends one INTERRUPT per request). The interrupt callback is removed before
// returning, so the reply that follows can free the request.
template <typename Op>
Status Interruptible(fuse_req_t req, Op&& op) {
  const struct fuse_ctx* ctx = fuse_req_ctx(req);
  const pid_t tid = ctx != nullptr ? ctx->pid : 0;
  CancelToken token([tid] { return RequesterAbandoned(tid); });
  fuse_req_interrupt_func(req, InterruptToken, &token);
  Status s;
  {
    ScopedCancelToken scope(&token);
    s = op();
  }
  fuse_req_interrupt_func(req, nullptr, nullptr);  // waits for a running callback
  return s;
}

// The errno for a failed I/O request: a source that did not answer within
// the source timeout (ETIMEDOUT inside) is EIO to the reader, as a disk's
// timeout is (SPEC §7a); so is a transport errno a remote source's link
// could leak (ENOTCONN would read as "the clonefs mount is dead");
// everything else as Status::ToErrno says.
int IoErrno(const Status& s) {
  const int err = s.ToErrno();
  switch (err) {
    case ETIMEDOUT:
    case ESHUTDOWN:
    case ENOTCONN:
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
      return EIO;
    default:
      return err;
  }
}

FuseFs* Fs(fuse_req_t req) { return static_cast<FuseFs*>(fuse_req_userdata(req)); }

// A per-thread buffer for read replies, grown to the largest request seen
// (at most max_read = 1 MiB), so the hot path does not allocate. It is
// 4 KiB aligned so that an O_DIRECT device reads straight into it instead of
// through a bounce buffer. Returns nullptr if memory is exhausted.
char* ReadBuffer(size_t len) {
  // On an io_uring thread: the entry's own payload buffer, so the reply is
  // not copied again (uring_queues.h).
  if (char* entry = UringQueues::ReplyBuffer(len)) return entry;
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  constexpr size_t kAlign = 4096;
  thread_local std::unique_ptr<char, Free> buf;
  thread_local size_t cap = 0;
  if (cap < len) {
    size_t want = (len + kAlign - 1) / kAlign * kAlign;
    buf.reset(static_cast<char*>(std::aligned_alloc(kAlign, want)));
    cap = buf ? want : 0;
  }
  return buf.get();
}

void FillEntry(FuseFs* fs, fuse_ino_t ino, struct fuse_entry_param* e) {
  *e = {};
  e->ino = ino;
  e->generation = 1;
  e->attr_timeout = fs->options().attr_timeout_s;
  e->entry_timeout = fs->options().attr_timeout_s;
  fs->Stat(ino, &e->attr);
}

// ---- lifecycle ----

void OpInit(void* userdata, struct fuse_conn_info* conn) {
  auto* fs = static_cast<FuseFs*>(userdata);
  const FuseFsOptions& o = fs->options();
  conn->max_write = o.max_write;
  conn->max_background = o.max_background;
  conn->congestion_threshold = o.congestion_threshold;
  // Direct I/O to one image: no page cache features, no kernel-side
  // truncation on open (size changes must reach setattr and be refused),
  // no splice (data always comes through the engine's buffers).
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_AUTO_INVAL_DATA |
                  FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  if (conn->capable & FUSE_CAP_ASYNC_READ) conn->want |= FUSE_CAP_ASYNC_READ;
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  CLONEFS_LOG_INFO(
      "fuse: connection ready (protocol 7.%u, max_write %u, max_background %u, "
      "async_dio %s)",
      conn->proto_minor, conn->max_write, conn->max_background,
      (conn->want & FUSE_CAP_ASYNC_DIO) ? "on" : "off");
}

void OpDestroy(void* userdata) {
  Status s = static_cast<FuseFs*>(userdata)->Destroy();
  if (!s.ok()) CLONEFS_LOG_ERROR("fuse: final shutdown failed: %s", s.ToString().c_str());
}

// ---- names and attributes ----

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseFs* fs = Fs(req);
  if (parent != kRootIno || fs->options().file_name != name) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct fuse_entry_param e;
  FillEntry(fs, kFileIno, &e);
  fuse_reply_entry(req, &e);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
  FuseFs* fs = Fs(req);
  struct stat st;
  if (!fs->Stat(ino, &st)) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_reply_attr(req, &st, fs->options().attr_timeout_s);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               struct fuse_file_info*) {
  FuseFs* fs = Fs(req);
  int err = fs->SetAttr(ino, *attr, to_set);
  if (err != 0) {
    fuse_reply_err(req, err);
    return;
  }
  struct stat st;
  fs->Stat(ino, &st);
  fuse_reply_attr(req, &st, fs->options().attr_timeout_s);
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  FuseFs* fs = Fs(req);
  struct statvfs sv = {};
  sv.f_bsize = 4096;
  sv.f_frsize = 4096;
  sv.f_blocks = (fs->image_size() + 4095) / 4096;
  sv.f_files = 2;
  sv.f_namemax = 255;
  fuse_reply_statfs(req, &sv);
}

// ---- the fixed namespace ----
// The root holds the image file and nothing else, and the file stays: every
// operation that would add, remove or rename an entry is refused with EPERM,
// as a size change is ("Operation not permitted", not the "Function not
// implemented" a missing operation would give).

void RefuseMknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) {
  fuse_reply_err(req, EPERM);
}
void RefuseMkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EPERM); }
void RefuseRemove(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); }
void RefuseSymlink(fuse_req_t req, const char*, fuse_ino_t, const char*) {
  fuse_reply_err(req, EPERM);
}
void RefuseRename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) {
  fuse_reply_err(req, EPERM);
}
void RefuseLink(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); }
void RefuseCreate(fuse_req_t req, fuse_ino_t, const char*, mode_t, struct fuse_file_info*) {
  fuse_reply_err(req, EPERM);
}

// ---- the root directory ----

void OpOpendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  if (ino != kRootIno) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  fuse_reply_open(req, fi);
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info*) {
  FuseFs* fs = Fs(req);
  if (ino != kRootIno) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  struct Entry {
    const char* name;
    fuse_ino_t ino;
    mode_t type;
  };
  const Entry entries[] = {{".", kRootIno, S_IFDIR},
                           {"..", kRootIno, S_IFDIR},
                           {fs->options().file_name.c_str(), kFileIno, S_IFREG}};
  char buf[1024];
  size_t used = 0;
  for (off_t i = off; i < 3; ++i) {
    struct stat st = {};
    st.st_ino = entries[i].ino;
    st.st_mode = entries[i].type;
    size_t need = fuse_add_direntry(req, buf + used, std::min(size, sizeof(buf)) - used,
                                    entries[i].name, &st, i + 1);
    if (used + need > std::min(size, sizeof(buf))) break;
    used += need;
  }
  fuse_reply_buf(req, buf, used);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) { fuse_reply_err(req, 0); }

void OpFsyncdir(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info*) { fuse_reply_err(req, 0); }

// ---- the image file ----

void OpOpen(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FuseFs* fs = Fs(req);
  if (ino != kFileIno) {
    fuse_reply_err(req, ino == kRootIno ? EISDIR : ENOENT);
    return;
  }
  if (fi->flags & O_TRUNC) {  // only reaches us if atomic_o_trunc was granted
    fuse_reply_err(req, EPERM);
    return;
  }
  // libfuse 3.14's fuse_file_info has no field for the flags below (nor for
  // a backing id), so the reply is built here, exactly as fuse_reply_open
  // would build it otherwise.
  kabi::OpenOut out;
  std::memset(&out, 0, sizeof(out));
  const Passthrough::Decision d = fs->passthrough()->DecideOpen(fi->flags);
  switch (d.choice) {
    case OpenChoice::kRefuse:
      fuse_reply_err(req, d.refuse_errno);
      return;
    case OpenChoice::kPassthrough:
      // The kernel reads and writes dest itself (passthrough.h). No
      // FOPEN_DIRECT_IO: it would send reads and writes to us again.
      out.fh = kPassthroughHandle;
      out.open_flags = kabi::kFopenPassthrough;
      out.backing_id = d.backing_id;
      break;
    case OpenChoice::kDaemon:
      // No page cache: the image is not cached twice under a loop device,
      // and O_DIRECT opens (losetup --direct-io=on, QEMU cache=none) are
      // served. Parallel direct writes: the kernel takes the inode lock
      // shared for a direct write that does not extend the file (ours never
      // can), instead of holding it exclusively across the write's round
      // trip to us, which serialised synchronous writers such as QEMU's
      // thread pool. The engine takes concurrent writes anyway
      // (asynchronous direct I/O sends them).
      out.open_flags = kabi::kFopenDirectIo | kabi::kFopenParallelDirectWrites;
      break;
  }
  fs->HandleOpened();
  if (fuse_reply_buf(req, reinterpret_cast<const char*>(&out), sizeof(out)) != 0) {
    fs->HandleReleased();  // interrupted: no release follows
    if (out.fh == kPassthroughHandle) fs->passthrough()->PassthroughReleased();
  }
}

void OpRelease(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  FuseFs* fs = Fs(req);
  fs->HandleReleased();
  if (fi->fh == kPassthroughHandle) fs->passthrough()->PassthroughReleased();
  fuse_reply_err(req, 0);
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info*) {
  FuseFs* fs = Fs(req);
  if (ino != kFileIno) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  const uint64_t uoff = static_cast<uint64_t>(off);
  if (uoff >= fs->image_size() || size == 0) {
    fuse_reply_buf(req, nullptr, 0);  // end of file
    return;
  }
  const size_t len = static_cast<size_t>(std::min<uint64_t>(size, fs->image_size() - uoff));
  fs->CountRead();
  char* buf = ReadBuffer(len);
  if (buf == nullptr) {
    fuse_reply_err(req, ENOMEM);
    return;
  }
  Status s = Interruptible(req, [&] { return fs->engine()->Read(uoff, buf, len); });
  if (!s.ok()) {
    CLONEFS_LOG_DEBUG("fuse: read %zu at %llu: %s", len, static_cast<unsigned long long>(uoff),
                      s.ToString().c_str());
    fuse_reply_err(req, IoErrno(s));
    return;
  }
  fuse_reply_buf(req, buf, len);
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             struct fuse_file_info* fi) {
  FuseFs* fs = Fs(req);
  if (ino != kFileIno) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if (off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  if (size == 0) {
    fuse_reply_write(req, 0);
    return;
  }
  const uint64_t uoff = static_cast<uint64_t>(off);
  if (uoff >= fs->image_size()) {
    fuse_reply_err(req, EFBIG);
    return;
  }
  // A write crossing the end is cut there (a short write), like a block device.
  const size_t len = static_cast<size_t>(std::min<uint64_t>(size, fs->image_size() - uoff));
  // The kernel sends the file's open flags with each write, with O_DSYNC /
  // O_SYNC added for RWF_DSYNC / RWF_SYNC writes (O_SYNC includes O_DSYNC).
  const bool sync = (fi->flags & O_DSYNC) != 0;
  fs->CountWrite();
  Status s = Interruptible(req, [&] { return fs->engine()->Write(uoff, buf, len, sync); });
  if (!s.ok()) {
    CLONEFS_LOG_DEBUG("fuse: write %zu at %llu: %s", len, static_cast<unsigned long long>(uoff),
                      s.ToString().c_str());
    fuse_reply_err(req, IoErrno(s));
    return;
  }
  fs->TouchModified();
  fuse_reply_write(req, len);
}

void OpFlush(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) {
  // close() is not a durability point; never answer ENOSYS (SPEC §3).
  fuse_reply_err(req, 0);
}

void OpFsync(fuse_req_t req, fuse_ino_t, int /*datasync*/, struct fuse_file_info*) {
  // fsync and fdatasync are both a commit (SPEC §3, §5).
  Status s = Fs(req)->engine()->Fsync();
  if (!s.ok()) CLONEFS_LOG_DEBUG("fuse: fsync: %s", s.ToString().c_str());
  fuse_reply_err(req, s.ToErrno());
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length,
                 struct fuse_file_info*) {
  FuseFs* fs = Fs(req);
  if (ino != kFileIno) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  if (off < 0 || length <= 0 || off > INT64_MAX - length) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  constexpr int kKnown = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  const bool keep_size = mode & FALLOC_FL_KEEP_SIZE;
  const bool punch = mode & FALLOC_FL_PUNCH_HOLE;
  const bool zero = mode & FALLOC_FL_ZERO_RANGE;
  if ((mode & ~kKnown) || (punch && zero) || (punch && !keep_size)) {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  const uint64_t size = fs->image_size();
  const uint64_t start = static_cast<uint64_t>(off);
  const uint64_t end = start + static_cast<uint64_t>(length);
  if (end > size && !keep_size) {
    fuse_reply_err(req, EFBIG);  // would grow the file
    return;
  }
  if (!punch && !zero) {
    fuse_reply_err(req, 0);  // plain allocation inside the file: already allocated
    return;
  }
  if (start >= size) {
    fuse_reply_err(req, 0);  // KEEP_SIZE beyond the end: nothing to do
    return;
  }
  Status s = Interruptible(
      req, [&] { return fs->engine()->Zero(start, std::min(end, size) - start, punch); });
  if (s.ok()) fs->TouchModified();
  fuse_reply_err(req, IoErrno(s));
}

void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info*) {
  FuseFs* fs = Fs(req);
  if (ino != kFileIno || (whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0) {
    fuse_reply_err(req, EINVAL);
    return;
  }
  const uint64_t size = fs->image_size();
  const uint64_t uoff = static_cast<uint64_t>(off);
  if (uoff >= size) {
    fuse_reply_err(req, ENXIO);
    return;
  }
  Result<uint64_t> r =
      whence == SEEK_DATA ? fs->engine()->SeekData(uoff) : fs->engine()->SeekHole(uoff);
  if (!r.ok()) {
    if (r.status().IsNotSupported()) {  // "all data" is always a correct answer
      fuse_reply_lseek(req, whence == SEEK_DATA ? off : static_cast<off_t>(size));
    } else {
      fuse_reply_err(req, IoErrno(r.status()));
    }
    return;
  }
  if (whence == SEEK_DATA && *r >= size) {
    fuse_reply_err(req, ENXIO);
    return;
  }
  fuse_reply_lseek(req, static_cast<off_t>(std::min(*r, size)));
}

fuse_lowlevel_ops MakeOperations() {
  fuse_lowlevel_ops ops = {};
  ops.init = OpInit;
  ops.destroy = OpDestroy;
  ops.lookup = OpLookup;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.statfs = OpStatfs;
  ops.mknod = RefuseMknod;
  ops.mkdir = RefuseMkdir;
  ops.unlink = RefuseRemove;
  ops.rmdir = RefuseRemove;
  ops.symlink = RefuseSymlink;
  ops.rename = RefuseRename;
  ops.link = RefuseLink;
  ops.create = RefuseCreate;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.releasedir = OpReleasedir;
  ops.fsyncdir = OpFsyncdir;
  ops.open = OpOpen;
  ops.release = OpRelease;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.fsync = OpFsync;
  ops.fallocate = OpFallocate;
  ops.lseek = OpLseek;
  return ops;
}

}  // namespace

const fuse_lowlevel_ops& FuseFsOperations() {
  static const fuse_lowlevel_ops ops = MakeOperations();
  return ops;
}

}  // namespace clonefs::fuse
