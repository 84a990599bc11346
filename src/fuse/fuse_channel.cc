#include "fuse/fuse_channel.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "fuse/fuse_kernel_abi.h"
#include "fuse/uring_queues.h"

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

namespace clonefs::fuse {
namespace {

// Where the system header knows the same structure, it must agree with ours.
static_assert(sizeof(struct fuse_in_header) == sizeof(kabi::InHeader));
static_assert(sizeof(struct fuse_out_header) == sizeof(kabi::OutHeader));
static_assert(sizeof(struct fuse_init_in) == sizeof(kabi::InitIn));
static_assert(offsetof(struct fuse_init_in, flags2) == offsetof(kabi::InitIn, flags2));
static_assert(sizeof(struct fuse_init_out) == sizeof(kabi::InitOut));
static_assert(offsetof(struct fuse_init_out, flags) == offsetof(kabi::InitOut, flags));
static_assert(offsetof(struct fuse_init_out, flags2) == offsetof(kabi::InitOut, flags2));
static_assert(sizeof(struct fuse_open_out) == sizeof(kabi::OpenOut));
static_assert(offsetof(struct fuse_open_out, open_flags) == offsetof(kabi::OpenOut, open_flags));
static_assert(FUSE_INIT == kabi::kOpInit && FUSE_INIT_EXT == kabi::kInitExt);
static_assert(FOPEN_DIRECT_IO == kabi::kFopenDirectIo);

class DeviceTransport final : public FuseTransport {
 public:
  ssize_t Read(int fd, void* buf, size_t len) override { return ::read(fd, buf, len); }
  ssize_t Writev(int fd, const struct iovec* iov, int count) override {
    return ::writev(fd, iov, count);
  }
  int Ioctl(int fd, unsigned long request, void* arg) override { return ::ioctl(fd, request, arg); }
};

}  // namespace

std::unique_ptr<FuseTransport> MakeDeviceTransport() { return std::make_unique<DeviceTransport>(); }

FuseChannel::FuseChannel(const Options& options, std::unique_ptr<FuseTransport> transport)
    : options_(options), transport_(transport ? std::move(transport) : MakeDeviceTransport()) {}

Status FuseChannel::AttachIo(fuse_session* se, ReadFn read, WritevFn writev) {
  struct fuse_custom_io io;
  std::memset(&io, 0, sizeof(io));
  io.read = read;
  io.writev = writev;  // no splice functions: libfuse then never splices
  const int fd = fuse_session_fd(se);
  const int rc = fuse_session_custom_io(se, &io, fd);
  if (rc != 0) return Status::IoError("cannot install clonefs's FUSE channel", -rc);
  fd_.store(fd);
  return Status::OK();
}

ssize_t FuseChannel::Read(int fd, void* buf, size_t len) {
  const ssize_t n = transport_->Read(fd, buf, len);
  if (n < static_cast<ssize_t>(sizeof(kabi::InHeader))) return n;  // errno as the transport left it
  const auto* p = static_cast<const uint8_t*>(buf);
  const uint32_t opcode = kabi::Load<uint32_t>(p, offsetof(kabi::InHeader, opcode));
  if (opcode == kabi::kOpInterrupt && options_.uring != nullptr &&
      static_cast<size_t>(n) >= sizeof(kabi::InHeader) + sizeof(uint64_t)) {
    // fuse_interrupt_in starts with the interrupted request's unique.
    options_.uring->Interrupted(kabi::Load<uint64_t>(p, sizeof(kabi::InHeader)));
    return n;
  }
  if (opcode != kabi::kOpInit) return n;
  // INIT: remember what the kernel offers and which reply will answer it.
  const size_t body = static_cast<size_t>(n) - sizeof(kabi::InHeader);
  const uint8_t* in = p + sizeof(kabi::InHeader);
  uint64_t flags = 0;
  uint32_t minor = 0;
  if (body >= offsetof(kabi::InitIn, flags2)) {
    minor = kabi::Load<uint32_t>(in, offsetof(kabi::InitIn, minor));
    flags = kabi::Load<uint32_t>(in, offsetof(kabi::InitIn, flags));
    if ((flags & kabi::kInitExt) && body >= offsetof(kabi::InitIn, flags2) + sizeof(uint32_t)) {
      flags |= uint64_t{kabi::Load<uint32_t>(in, offsetof(kabi::InitIn, flags2))} << 32;
    }
  }
  kernel_minor_.store(minor);
  offered_.store((flags & kabi::kInitExt) && (flags & kabi::kPassthrough));
  uring_offered_.store((flags & kabi::kInitExt) && (flags & kabi::kOverIoUring));
  init_unique_.store(kabi::Load<uint64_t>(p, offsetof(kabi::InHeader, unique)),
                     std::memory_order_release);
  return n;
}

void FuseChannel::PatchInitReply(uint8_t* payload, size_t len, bool* passthrough,
                                 bool* uring) const {
  *passthrough = *uring = false;
  if (len < offsetof(kabi::InitOut, max_stack_depth) + sizeof(uint32_t)) return;
  // The kernel reads flags2 only when the reply's flags carry FUSE_INIT_EXT
  // (libfuse sets it when the request did).
  if (!(kabi::Load<uint32_t>(payload, offsetof(kabi::InitOut, flags)) & kabi::kInitExt)) return;
  uint32_t flags2 = kabi::Load<uint32_t>(payload, offsetof(kabi::InitOut, flags2));
  if (options_.passthrough && offered_.load()) {
    flags2 |= static_cast<uint32_t>(kabi::kPassthrough >> 32);
    kabi::Store<uint32_t>(
        payload, offsetof(kabi::InitOut, max_stack_depth),
        std::clamp<uint32_t>(options_.max_stack_depth, 1, kabi::kFilesystemMaxStackDepth));
    *passthrough = true;
  }
  if (options_.uring != nullptr && uring_offered_.load()) {
    flags2 |= static_cast<uint32_t>(kabi::kOverIoUring >> 32);
    *uring = true;
  }
  kabi::Store<uint32_t>(payload, offsetof(kabi::InitOut, flags2), flags2);
}

ssize_t FuseChannel::Writev(int fd, const struct iovec* iov, int count) {
  if (options_.uring != nullptr) {
    ssize_t written;
    if (options_.uring->TryReply(iov, count, &written)) return written;
  }
  if (retry_interrupt_ && count >= 1 && iov[0].iov_len >= sizeof(kabi::OutHeader)) {
    const auto* h = static_cast<const uint8_t*>(iov[0].iov_base);
    const uint64_t unique = kabi::Load<uint64_t>(h, offsetof(kabi::OutHeader, unique));
    if ((unique & kabi::kIntReqBit) &&
        kabi::Load<int32_t>(h, offsetof(kabi::OutHeader, error)) == -EAGAIN &&
        retry_interrupt_(unique & ~kabi::kIntReqBit)) {
      size_t total = 0;
      for (int i = 0; i < count; ++i) total += iov[i].iov_len;
      return static_cast<ssize_t>(total);
    }
  }
  const uint64_t init_unique = init_unique_.load(std::memory_order_acquire);
  if (init_unique == 0 || init_replied_.load() || count < 1 ||
      iov[0].iov_len < sizeof(kabi::OutHeader)) {
    return transport_->Writev(fd, iov, count);
  }
  const auto* header = static_cast<const uint8_t*>(iov[0].iov_base);
  if (kabi::Load<uint64_t>(header, offsetof(kabi::OutHeader, unique)) != init_unique) {
    return transport_->Writev(fd, iov, count);
  }
  // The INIT reply. libfuse sends its fuse_init_out as one iovec after the
  // header; it is copied (never written in place: it is libfuse's) and, if
  // it may carry the request, patched.
  const bool success = kabi::Load<int32_t>(header, offsetof(kabi::OutHeader, error)) == 0;
  bool asked_passthrough = false, asked_uring = false;
  ssize_t n;
  uint8_t payload[2 * sizeof(kabi::InitOut)];
  size_t len = 0;
  bool fits = iov[0].iov_len == sizeof(kabi::OutHeader);
  for (int i = 1; fits && i < count; ++i) {
    if (iov[i].iov_len > sizeof(payload) - len) {
      fits = false;
    } else {
      std::memcpy(payload + len, iov[i].iov_base, iov[i].iov_len);
      len += iov[i].iov_len;
    }
  }
  if (success && fits) PatchInitReply(payload, len, &asked_passthrough, &asked_uring);
  if (asked_passthrough || asked_uring) {
    const struct iovec patched[2] = {iov[0], {payload, len}};
    n = transport_->Writev(fd, patched, 2);
  } else {
    n = transport_->Writev(fd, iov, count);
  }
  const int err = errno;
  if (n >= 0 && success) {
    if (fits && len >= offsetof(kabi::InitOut, max_pages) + sizeof(uint16_t)) {
      max_write_.store(kabi::Load<uint32_t>(payload, offsetof(kabi::InitOut, max_write)));
      max_pages_.store(kabi::Load<uint16_t>(payload, offsetof(kabi::InitOut, max_pages)));
    }
    requested_.store(asked_passthrough);
    uring_requested_.store(asked_uring);
    init_replied_.store(true);
    if (on_init_) on_init_(init_info());
  }
  errno = err;
  return n;
}

InitInfo FuseChannel::init_info() const {
  InitInfo i;
  i.kernel_minor = kernel_minor_.load();
  i.passthrough_offered = offered_.load();
  i.passthrough_requested = requested_.load();
  i.uring_offered = uring_offered_.load();
  i.uring_requested = uring_requested_.load();
  i.max_write = max_write_.load();
  i.max_pages = max_pages_.load();
  i.reply_sent = init_replied_.load();
  return i;
}

Result<int32_t> FuseChannel::OpenBacking(int backing_fd) {
  kabi::BackingMap map;
  std::memset(&map, 0, sizeof(map));
  map.fd = backing_fd;
  const int id = transport_->Ioctl(fd_.load(), kabi::kDevIocBackingOpen, &map);
  if (id < 0) return Status::FromErrno(errno, "FUSE_DEV_IOC_BACKING_OPEN");
  if (id == 0) return Status::IoError("FUSE_DEV_IOC_BACKING_OPEN returned backing id 0", EPROTO);
  return static_cast<int32_t>(id);
}

Status FuseChannel::CloseBacking(int32_t backing_id) {
  uint32_t id = static_cast<uint32_t>(backing_id);
  if (transport_->Ioctl(fd_.load(), kabi::kDevIocBackingClose, &id) != 0) {
    return Status::FromErrno(errno, "FUSE_DEV_IOC_BACKING_CLOSE");
  }
  return Status::OK();
}

}  // namespace clonefs::fuse
