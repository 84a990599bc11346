#include "devices/posix_device.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <optional>

#include "devices/direct_io.h"
#include "devices/posix_io.h"

namespace clonefs {

namespace {

using posix_io::Where;

// Zeros for the write-zeros fallback.
constexpr size_t kZeroChunk = 1 << 20;
alignas(4096) const uint8_t kZeros[kZeroChunk] = {};

bool Unsupported(int err) { return err == EOPNOTSUPP || err == ENOSYS || err == ENODEV; }

int FallocateRetry(int fd, int mode, uint64_t off, uint64_t len) {
  int r;
  do {
    r = ::fallocate(fd, mode, static_cast<off_t>(off), static_cast<off_t>(len));
  } while (r < 0 && errno == EINTR);
  return r;
}

int OpenRetry(const char* path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path, flags, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Pages of [off, off+len) of fd's file in the page cache, or `unknown`
// where the kernel cannot tell.
uint64_t CachedPages(int fd, uint64_t off, uint64_t len, uint64_t unknown) {
  std::optional<posix_io::CacheState> c = posix_io::Cachestat(fd, off, len);
  return c ? c->cached : unknown;
}

// STRUCTURE: fd_ is an ordinary descriptor; with O_DIRECT, direct_ routes
// reads and writes through a second, O_DIRECT descriptor. WriteCached always
// writes through fd_. evict_fd_ is a third open file description of the same
// file, only for DropCached: sync_file_range with its WAIT flags consumes a
// write-back error for the open file description it is called on (the
// kernel's errseq), so on fd_ it would hide the error from the next Flush's
// fdatasync, and a commit would call hydrated what never reached the disk.
// Everything is immutable after construction. THREAD SAFETY: positional I/O
// only (see device.h); DirectIo documents its own locking.
class PosixDevice final : public Device {
 public:
  PosixDevice(std::string path, int fd, int direct_fd, int evict_fd, uint64_t size, bool read_only,
              bool is_block, uint64_t zero_align, std::optional<timespec> mtime)
      : path_(std::move(path)),
        fd_(fd),
        direct_fd_(direct_fd),
        evict_fd_(evict_fd),
        size_(size),
        read_only_(read_only),
        is_block_(is_block),
        zero_align_(zero_align),
        mtime_(mtime) {
    if (direct_fd_ >= 0) direct_.emplace(direct_fd_, fd_, size_, path_);
  }
  ~PosixDevice() override {
    ::close(fd_);
    if (direct_fd_ >= 0) ::close(direct_fd_);
    if (evict_fd_ >= 0) ::close(evict_fd_);
  }

  uint64_t Size() const override { return size_; }
  bool ReadOnly() const override { return read_only_; }
  const std::string& Name() const override { return path_; }
  int SpliceFd() const override { return fd_; }
  Result<std::unique_ptr<ForeignWriteWatch>> WatchForeignWrites(
      ForeignWriteWatch::Options options) override {
    if (read_only_) return Status::NotSupported(path_ + " is open read-only");
    return ForeignWriteWatch::Start(fd_, std::move(options));
  }
  // With O_DIRECT only whole 4 KiB blocks: Read bounces anything else.
  int DirectReadFd(uint64_t off, size_t len) const override {
    if (len == 0 || off > size_ || len > size_ - off) return -1;
    if (!direct_) return fd_;
    if (off % DirectIo::kAlign != 0 || len % DirectIo::kAlign != 0) return -1;
    return direct_fd_;
  }
  // Write's path for whole 4 KiB blocks (which take no lock there).
  int DirectWriteFd(uint64_t off, size_t len) const override {
    if (read_only_) return -1;
    return DirectReadFd(off, len);
  }

  Status Read(uint64_t off, void* buf, size_t len) override {
    CLONEFS_RETURN_IF_ERROR(CheckRange("read", off, len));
    if (direct_) return direct_->Read(off, buf, len);
    return posix_io::PreadFull(fd_, off, buf, len, path_);
  }

  Status Write(uint64_t off, const void* buf, size_t len) override {
    return WriteVia(off, buf, len, direct_.has_value());
  }

  // Through the page cache even with O_DIRECT, where the range is whole
  // 4 KiB blocks (or ends at the file's end): a partly covered block goes
  // through DirectIo's locked read-modify-write like any other write. The
  // kernel keeps the two descriptors coherent (an O_DIRECT read or write
  // first writes back, and a write then evicts, the cached pages it covers).
  Status WriteCached(uint64_t off, const void* buf, size_t len) override {
    const bool whole_blocks =
        off % DirectIo::kAlign == 0 && (len % DirectIo::kAlign == 0 || off + len == size_);
    return WriteVia(off, buf, len, direct_.has_value() && !whole_blocks);
  }

  bool PageCached() const override { return evict_fd_ >= 0; }

  // Only whole 4 KiB blocks (or up to the file's end), only in direct mode
  // (otherwise Read goes through the cache anyway). If the pages are
  // evicted between the check and the read, the buffered read fetches them
  // from the disk: the same bytes, since eviction follows write-back. A
  // direct write invalidates the range's cached pages before and after it
  // writes (the kernel), so a cached read never returns data older than the
  // last write that completed before it began.
  bool ReadFromCache(uint64_t off, void* buf, size_t len) override {
    if (!direct_ || len == 0 || off > size_ || len > size_ - off) return false;
    if (off % DirectIo::kAlign != 0 || (len % DirectIo::kAlign != 0 && off + len != size_)) {
      return false;
    }
    const uint64_t pages = (len + DirectIo::kAlign - 1) / DirectIo::kAlign;
    if (CachedPages(fd_, off, len, /*unknown=*/0) != pages) return false;
    return posix_io::PreadFull(fd_, off, buf, len, path_).ok();
  }

  void DropCached(uint64_t off, uint64_t len) override {
    if (!PageCached()) return;
    // Dirty or under-writeback pages are not evicted: wait for them first.
    ::sync_file_range(evict_fd_, static_cast<off_t>(off), static_cast<off_t>(len),
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                          SYNC_FILE_RANGE_WAIT_AFTER);
    // A folio still held in another CPU's LRU batch, or locked for a
    // moment, is skipped: measured, about one 1 MiB range in a hundred
    // stayed. Ask again while the range is still cached, 1 ms later, then
    // twice as long each time (127 ms in all: with 1 ms and two attempts a
    // range still stayed about once in fifty clones of 32 MiB under TSan,
    // where the threads holding such folios run slowly).
    for (int attempt = 0; attempt < 8; attempt++) {
      if (attempt > 0) ::usleep(1000u << (attempt - 1));
      ::posix_fadvise(evict_fd_, static_cast<off_t>(off), static_cast<off_t>(len),
                      POSIX_FADV_DONTNEED);
      if (CachedPages(evict_fd_, off, len, /*unknown=*/1) == 0) break;
    }
  }

  Status Flush() override {
    if (read_only_) return Status::OK();  // nothing of ours to make durable
    int r;
    do {
      r = ::fdatasync(fd_);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return Status::FromErrno(errno, "fdatasync " + path_);
    return Status::OK();
  }

  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    CLONEFS_RETURN_IF_ERROR(CheckWritable("zero", off));
    CLONEFS_RETURN_IF_ERROR(CheckRange("zero", off, len));
    if (len == 0) return Status::OK();
    // fallocate on a block device needs logical-block alignment; write the
    // unaligned edges as zeros. With O_DIRECT the edges are the partly
    // covered 4 KiB blocks, written through DirectIo's read-modify-write
    // under the block's stripe lock: a fallocate there would race with a
    // concurrent read-modify-write of the same block, which would put back
    // the bytes it read before the zero.
    const uint64_t align = direct_ ? std::max(zero_align_, DirectIo::kAlign) : zero_align_;
    uint64_t end = off + len;
    uint64_t a = (off + align - 1) / align * align;
    uint64_t b = end / align * align;
    if (a >= b) return WriteZeros(off, len);
    CLONEFS_RETURN_IF_ERROR(WriteZeros(off, a - off));
    CLONEFS_RETURN_IF_ERROR(WriteZeros(b, end - b));
    return FallocateZero(a, b - a, mode);
  }

  Result<uint64_t> NextData(uint64_t off) override { return Seek(off, SEEK_DATA, "SEEK_DATA"); }
  Result<uint64_t> NextHole(uint64_t off) override { return Seek(off, SEEK_HOLE, "SEEK_HOLE"); }

  Status CheckUnchanged() override {
    struct stat st;
    if (::fstat(fd_, &st) < 0) return Status::FromErrno(errno, "fstat " + path_);
    uint64_t now = static_cast<uint64_t>(st.st_size);
    if (is_block_ && ::ioctl(fd_, BLKGETSIZE64, &now) < 0) {
      return Status::FromErrno(errno, "BLKGETSIZE64 " + path_);
    }
    if (now != size_) {
      return Status::Mismatch(path_ + (now < size_ ? " shrank" : " grew") + " from " +
                              std::to_string(size_) + " to " + std::to_string(now) + " bytes");
    }
    if (mtime_ && (st.st_mtim.tv_sec != mtime_->tv_sec || st.st_mtim.tv_nsec != mtime_->tv_nsec)) {
      return Status::Mismatch(path_ + " was modified: its mtime changed from " +
                              TimeString(*mtime_) + " to " + TimeString(st.st_mtim));
    }
    return Status::OK();
  }

  std::optional<uint64_t> AllocatedBytes() const override {
    if (is_block_) return std::nullopt;
    struct stat st;
    if (::fstat(fd_, &st) < 0 || !S_ISREG(st.st_mode)) return std::nullopt;
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }

  Result<uint64_t> CutGrowth() override {
    if (read_only_ || is_block_) return uint64_t{0};
    struct stat st;
    if (::fstat(fd_, &st) < 0) return Status::FromErrno(errno, "fstat " + path_);
    const uint64_t now = static_cast<uint64_t>(st.st_size);
    if (!S_ISREG(st.st_mode) || now <= size_) return uint64_t{0};
    if (::ftruncate(fd_, static_cast<off_t>(size_)) < 0) {
      return Status::FromErrno(errno, "truncate " + path_ + " back to " + std::to_string(size_));
    }
    return now - size_;
  }

 private:
  static std::string TimeString(const timespec& t) {
    char buf[64];
    struct tm tm;
    localtime_r(&t.tv_sec, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%09ld", static_cast<long>(t.tv_nsec));
    return buf;
  }

  Status CheckRange(const char* op, uint64_t off, uint64_t len) const {
    if (off > size_ || len > size_ - off) {
      return Status::InvalidArgument(std::string(op) + " of " + std::to_string(len) + " bytes at " +
                                     std::to_string(off) + " is beyond the end of " + path_ + " (" +
                                     std::to_string(size_) + " bytes)");
    }
    return Status::OK();
  }

  Status CheckWritable(const char* op, uint64_t off) const {
    if (!read_only_) return Status::OK();
    return Status::Permission(Where(op, path_, off) + ": the device is open read-only");
  }

  // PUNCH_HOLE (kPunch only), then ZERO_RANGE, then writing zeros, each
  // tried when the previous one is not supported.
  Status FallocateZero(uint64_t off, uint64_t len, ZeroMode mode) {
    if (mode == ZeroMode::kPunch) {
      if (FallocateRetry(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0) {
        return Status::OK();
      }
      if (!Unsupported(errno)) return Status::FromErrno(errno, Where("punch hole in", path_, off));
    }
    if (FallocateRetry(fd_, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len) == 0) {
      return Status::OK();
    }
    if (!Unsupported(errno)) return Status::FromErrno(errno, Where("zero range of", path_, off));
    return WriteZeros(off, len);
  }

  Status WriteZeros(uint64_t off, uint64_t len) {
    while (len > 0) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(len, kZeroChunk));
      CLONEFS_RETURN_IF_ERROR(direct_ ? direct_->Write(off, kZeros, n)
                                      : posix_io::PwriteFull(fd_, off, kZeros, n, path_));
      off += n;
      len -= n;
    }
    return Status::OK();
  }

  Result<uint64_t> Seek(uint64_t off, int whence, const char* what) {
    if (off >= size_) return size_;
    bool data = whence == SEEK_DATA;
    if (is_block_) return data ? off : size_;
    off_t r = ::lseek(fd_, static_cast<off_t>(off), whence);
    const int err = errno;
    // ENXIO and the hole at end of file are measured from the file's size
    // now: if it shrank, the missing tail is not a hole.
    struct stat st;
    if (::fstat(fd_, &st) < 0) return Status::FromErrno(errno, "fstat " + path_);
    if (static_cast<uint64_t>(st.st_size) < size_) {
      return Status::Mismatch(Where(what, path_, off) + ": " + path_ + " shrank from " +
                              std::to_string(size_) + " to " + std::to_string(st.st_size) +
                              " bytes");
    }
    if (r < 0) {
      if (err == ENXIO) return size_;  // no data (or hole) at or after off
      if (err == EINVAL || Unsupported(err)) return data ? off : size_;
      return Status::FromErrno(err, Where(what, path_, off));
    }
    return std::min<uint64_t>(static_cast<uint64_t>(r), size_);
  }

  // Write and WriteCached: the checks, then DirectIo (`direct`) or fd_.
  Status WriteVia(uint64_t off, const void* buf, size_t len, bool direct) {
    CLONEFS_RETURN_IF_ERROR(CheckWritable("write", off));
    CLONEFS_RETURN_IF_ERROR(CheckRange("write", off, len));
    if (direct) return direct_->Write(off, buf, len);
    return posix_io::PwriteFull(fd_, off, buf, len, path_);
  }

  const std::string path_;
  const int fd_;
  const int direct_fd_;  // -1 unless opened with O_DIRECT
  const int evict_fd_;   // -1 for a read-only device, or if /proc could not reopen fd_
  const uint64_t size_;
  const bool read_only_;
  const bool is_block_;
  const uint64_t zero_align_;  // fallocate alignment: 1, or the logical block size
  // st_mtim at open, for CheckUnchanged; only for a read-only regular file
  // opened with watch_mtime.
  const std::optional<timespec> mtime_;
  std::optional<DirectIo> direct_;
};

// Closes a descriptor unless released.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

}  // namespace

Result<std::unique_ptr<Device>> OpenPosixDevice(const std::string& path,
                                                const PosixDeviceOptions& options) {
  const bool ro = options.read_only;
  // O_NONBLOCK: opening a FIFO must not hang before we can refuse it.
  int flags = O_CLOEXEC | O_NONBLOCK | (ro ? O_RDONLY : O_RDWR);
  if (!ro && options.create) flags |= O_CREAT;
  FdGuard fd{OpenRetry(path.c_str(), flags, 0644)};
  if (fd.fd < 0) {
    int err = errno;
    if (err == EROFS) {
      return Status::FromErrno(err,
                               "open " + path + " for writing: it is on a read-only file system");
    }
    if (err == EISDIR) {
      return Status::InvalidArgument(path + " is a directory, not a regular file or block device");
    }
    return Status::FromErrno(err,
                             std::string("open ") + path + (ro ? " for reading" : " for writing"));
  }
  struct stat st;
  if (::fstat(fd.fd, &st) < 0) return Status::FromErrno(errno, "fstat " + path);
  const bool is_block = S_ISBLK(st.st_mode);
  if (!S_ISREG(st.st_mode) && !is_block) {
    return Status::InvalidArgument(path + " is neither a regular file nor a block device");
  }
  if (::fcntl(fd.fd, F_SETFL, ::fcntl(fd.fd, F_GETFL) & ~O_NONBLOCK) < 0) {
    return Status::FromErrno(errno, "fcntl " + path);
  }

  uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t zero_align = 1;
  if (is_block) {
    if (::ioctl(fd.fd, BLKGETSIZE64, &size) < 0) {
      return Status::FromErrno(errno, "BLKGETSIZE64 " + path);
    }
    int lbs = 0;
    if (::ioctl(fd.fd, BLKSSZGET, &lbs) < 0) return Status::FromErrno(errno, "BLKSSZGET " + path);
    zero_align = static_cast<uint64_t>(std::max(lbs, 512));
  } else if (!ro && options.min_size > size) {
    if (::ftruncate(fd.fd, static_cast<off_t>(options.min_size)) < 0) {
      return Status::FromErrno(
          errno, "extend " + path + " to " + std::to_string(options.min_size) + " bytes");
    }
    size = options.min_size;
  }

  FdGuard direct_fd{-1};
  if (options.direct) {
    direct_fd.fd = OpenRetry(path.c_str(), O_CLOEXEC | O_DIRECT | (ro ? O_RDONLY : O_RDWR), 0);
    if (direct_fd.fd < 0) {
      if (errno == EINVAL) {
        return Status::InvalidArgument("open " + path +
                                       " with O_DIRECT: the file system does not "
                                       "support direct I/O (run without direct I/O)");
      }
      return Status::FromErrno(errno, "open " + path + " with O_DIRECT");
    }
  }
  // The same file for certain (not whatever the path names by now), as a
  // new open file description: see evict_fd_. Without /proc the copier's
  // data simply stays cached.
  FdGuard evict_fd{-1};
  if (!ro) evict_fd.fd = OpenRetry(("/proc/self/fd/" + std::to_string(fd.fd)).c_str(),
                                   O_CLOEXEC | O_RDONLY, 0);
  std::unique_ptr<Device> dev = std::make_unique<PosixDevice>(
      path, fd.release(), direct_fd.release(), evict_fd.release(), size, ro, is_block, zero_align,
      ro && !is_block && options.watch_mtime ? std::optional<timespec>(st.st_mtim) : std::nullopt);
  return dev;
}

}  // namespace clonefs
