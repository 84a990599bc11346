// FuseChannel: the layer between libfuse and /dev/fuse (internal to src/fuse).
//
// libfuse 3.14 reads requests and writes replies itself; since 3.14 a server
// may supply those two calls (fuse_session_custom_io). clonefs puts this
// channel there, for two reasons:
//   - to speak the parts of the protocol libfuse 3.14 does not know. Today
//     that is FUSE passthrough (Linux 6.9+): the channel asks for it in the
//     INIT reply, and registers backing files with the /dev/fuse ioctls;
//   - so that another transport can carry the same bytes later (FUSE over
//     io_uring, Linux 6.14+): a FuseTransport moves whole requests and
//     replies; the channel only looks at and patches them, and the
//     operation handlers never know which transport ran.
//
// WHAT THE CHANNEL CHANGES, EXACTLY
//   Requests are never changed. Of the replies, only INIT's, and only when it
//   is a success carrying at least the 7.40 part of fuse_init_out (flags2 and
//   max_stack_depth), and the INIT request (seen by Read, matched by its
//   `unique`) came with FUSE_INIT_EXT. Then:
//     - if Options::passthrough is set and the request offered
//       FUSE_PASSTHROUGH, flags2 gains FUSE_PASSTHROUGH and max_stack_depth
//       is set;
//     - if Options::uring is set and the request offered FUSE_OVER_IO_URING,
//       flags2 gains FUSE_OVER_IO_URING.
//   libfuse 3.14 knows neither and leaves both zero. Every other reply goes
//   out byte for byte, through the io_uring entry that carried its request
//   (UringQueues::TryReply) or through the transport. (OPEN replies need no
//   patch: fuse_ops.cc builds its fuse_open_out itself.) An INTERRUPT read
//   is also told to Options::uring (UringQueues::Interrupted), so that an
//   interrupted request waiting there for a worker gets one.
//
// THREAD SAFETY: Read and Writev are called by every worker thread at once
// (through libfuse). The INIT exchange happens once, before the kernel sends
// anything else, and is published through atomics. OpenBacking and
// CloseBacking are thread-safe (one ioctl each).
//
// CALLBACKS: the InitCallback runs once, on the worker thread that wrote the
// INIT reply, after write(2) returned (the kernel processes INIT's reply
// within that call, so passthrough is then enabled or not). Other workers
// may already be serving the next requests.
//
// LIFECYCLE: construct -> set_on_init -> Attach (after fuse_session_mount,
// before serving) -> serve -> the session is destroyed. The channel must
// outlive the session: libfuse calls it until fuse_session_destroy.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "base/result.h"
#include "base/status.h"

struct fuse_session;

namespace clonefs::fuse {

// Moves requests and replies between the kernel and the daemon. The default
// (MakeDeviceTransport) is read(2)/writev(2)/ioctl(2) on /dev/fuse.
//
// THREAD SAFETY: implementations must allow concurrent calls from every
// worker thread.
class FuseTransport {
 public:
  virtual ~FuseTransport() = default;
  // Receives one whole request into buf (at most len bytes) from `fd`, the
  // session's descriptor. Returns its length, or -1 with errno set (as
  // read(2) on /dev/fuse: ENOENT interrupted, ENODEV unmounted, EINTR).
  virtual ssize_t Read(int fd, void* buf, size_t len) = 0;
  // Sends one whole reply; iov[0] starts with the fuse_out_header. Returns
  // the bytes written, or -1 with errno set (ENOENT: the request was
  // interrupted and the reply dropped).
  virtual ssize_t Writev(int fd, const struct iovec* iov, int count) = 0;
  // An ioctl of the session's descriptor (the backing-file ioctls), as
  // ioctl(2): its result, or -1 with errno set.
  virtual int Ioctl(int fd, unsigned long request, void* arg) = 0;
};

std::unique_ptr<FuseTransport> MakeDeviceTransport();

// What the INIT exchange settled, as far as the channel knows.
struct InitInfo {
  uint32_t kernel_minor = 0;         // the protocol minor the kernel speaks
  bool passthrough_offered = false;  // the request offered FUSE_PASSTHROUGH
  // The reply asked for FUSE_PASSTHROUGH. Whether the kernel accepted it is
  // only known from the first FUSE_DEV_IOC_BACKING_OPEN (EPERM if not).
  bool passthrough_requested = false;
  bool uring_offered = false;    // the request offered FUSE_OVER_IO_URING
  bool uring_requested = false;  // the reply accepted it
  // From the reply: the largest WRITE payload, and the most pages of one
  // request (0 if the reply has no max_pages).
  uint32_t max_write = 0;
  uint32_t max_pages = 0;
  bool reply_sent = false;  // the INIT reply reached the kernel
};

class UringQueues;

class FuseChannel {
 public:
  struct Options {
    // Ask for FUSE passthrough in the INIT reply when the kernel offers it.
    // Default: false.
    bool passthrough = false;
    // max_stack_depth of the INIT reply: how deep the file system of a
    // backing file may itself be stacked, plus one (1: backing files on
    // ext4, xfs, ...; 2: also on overlayfs). The FUSE mount itself then
    // counts as stacked that deep. Clamped to 1..2. Default: 1.
    uint32_t max_stack_depth = 1;
    // Accept FUSE over io_uring in the INIT reply when the kernel offers it,
    // and send replies to requests that came through it back that way. The
    // queues must be ready to Start once the reply is written (the caller
    // does that from the InitCallback). Not owned; outlives the channel's
    // use. Default: nullptr (/dev/fuse only).
    UringQueues* uring = nullptr;
  };
  using InitCallback = std::function<void(const InitInfo&)>;

  // `transport`: nullptr = MakeDeviceTransport().
  explicit FuseChannel(const Options& options, std::unique_ptr<FuseTransport> transport = nullptr);
  FuseChannel(const FuseChannel&) = delete;
  FuseChannel& operator=(const FuseChannel&) = delete;

  // Called once the INIT reply is written (see CALLBACKS). REQUIRES: before
  // Attach.
  void set_on_init(InitCallback cb) { on_init_ = std::move(cb); }

  // Called with an INTERRUPT's EAGAIN reply ("ask again later", libfuse's
  // answer when it has not seen the interrupted request yet) for request
  // `target`; returning true keeps the reply from the kernel. The kernel
  // re-sends only interrupts of requests it handed out through /dev/fuse;
  // for one that came through io_uring it would drop the interrupt, so the
  // server delivers it to libfuse again itself. Runs on the replying
  // thread. REQUIRES: before Attach. Default: none (always sent).
  using InterruptRetry = std::function<bool(uint64_t target)>;
  void set_retry_interrupt(InterruptRetry fn) { retry_interrupt_ = std::move(fn); }

  // Makes this channel the I/O of `se`, on the session's own /dev/fuse
  // descriptor. libfuse hands its custom I/O the session's userdata (the
  // operations' object), not this channel: `Resolve` maps one to the other,
  // e.g. [](void* ud) { return static_cast<FuseFs*>(ud)->channel(); }.
  // REQUIRES: fuse_session_mount(se) succeeded and no request has been read;
  // Resolve(userdata) == this.
  // Errors: IoError with libfuse's errno.
  template <FuseChannel* (*Resolve)(void* session_userdata)>
  Status Attach(fuse_session* se) {
    return AttachIo(
        se, [](int fd, void* buf, size_t len, void* ud) { return Resolve(ud)->Read(fd, buf, len); },
        [](int fd, struct iovec* iov, int count, void* ud) {
          return Resolve(ud)->Writev(fd, iov, count);
        });
  }

  // libfuse's custom I/O: as FuseTransport's, plus the INIT bookkeeping and
  // patch described above. errno is preserved on failure.
  ssize_t Read(int fd, void* buf, size_t len);
  ssize_t Writev(int fd, const struct iovec* iov, int count);

  // FUSE_DEV_IOC_BACKING_OPEN: registers `backing_fd` (an open regular file)
  // so that OPEN replies may name it. Returns its backing id (> 0).
  // Errors (errno kept): Permission for EPERM (the daemon lacks
  // CAP_SYS_ADMIN, or the kernel did not enable passthrough at INIT);
  // InvalidArgument for EINVAL (not a regular file); IoError otherwise
  // (ELOOP: dest's file system is stacked deeper than max_stack_depth
  // allows; ENOTTY: a kernel without the ioctl).
  // REQUIRES: attached; the INIT reply sent.
  Result<int32_t> OpenBacking(int backing_fd);
  // FUSE_DEV_IOC_BACKING_CLOSE. Files opened with the id keep it until they
  // are closed. Errors as the ioctl's, with errno.
  Status CloseBacking(int32_t backing_id);

  InitInfo init_info() const;
  // The session's /dev/fuse descriptor; -1 before Attach.
  int fd() const { return fd_.load(); }
  const Options& options() const { return options_; }

 private:
  using ReadFn = ssize_t (*)(int fd, void* buf, size_t len, void* userdata);
  using WritevFn = ssize_t (*)(int fd, struct iovec* iov, int count, void* userdata);
  Status AttachIo(fuse_session* se, ReadFn read, WritevFn writev);
  // Patches `payload` (an INIT reply's fuse_init_out, `len` bytes) as
  // described above, asking for what is wanted and offered; sets
  // *passthrough and *uring to what it asked for.
  void PatchInitReply(uint8_t* payload, size_t len, bool* passthrough, bool* uring) const;

  const Options options_;
  const std::unique_ptr<FuseTransport> transport_;
  InitCallback on_init_;
  InterruptRetry retry_interrupt_;
  std::atomic<int> fd_{-1};  // the session's descriptor, once attached

  // The INIT exchange: written by the worker that read INIT (before the
  // kernel sends anything else), read by every worker's Writev.
  std::atomic<uint64_t> init_unique_{0};  // 0: no INIT seen yet
  std::atomic<uint32_t> kernel_minor_{0};
  std::atomic<bool> offered_{false};
  std::atomic<bool> requested_{false};
  std::atomic<bool> uring_offered_{false};
  std::atomic<bool> uring_requested_{false};
  std::atomic<uint32_t> max_write_{0};
  std::atomic<uint32_t> max_pages_{0};
  std::atomic<bool> init_replied_{false};
};

}  // namespace clonefs::fuse
