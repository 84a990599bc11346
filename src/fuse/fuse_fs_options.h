// Options of clonefs's FUSE filesystem and of the session that serves it.
// Plain structs; no libfuse types (so the daemon and the command line can
// fill them without including libfuse).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace clonefs::fuse {

struct FuseFsOptions {
  // Name of the exposed file in the mount's root directory. Required: one
  // path component, not "." or "..".
  std::string file_name;
  // Initial permission bits, owner and group of the exposed file. The daemon
  // copies them from dest (a regular file or block device), so the exposed
  // file carries dest's permissions. chmod/chown change them in memory for
  // the life of the mount. Default: 0644, uid 0, gid 0.
  uint32_t mode = 0644;
  uint32_t uid = 0;
  uint32_t gid = 0;
  // Seconds the kernel may cache attributes and the directory entry. The
  // size never changes, so caching is safe. Default: 1.0.
  double attr_timeout_s = 1.0;
  // Kernel's limit on background (async direct I/O) requests in flight; the
  // kernel default of 12 caps loop and QEMU queue depth. Default: 64.
  uint32_t max_background = 64;
  // Kernel starts throttling async requests at this many. Default: 48.
  uint32_t congestion_threshold = 48;
  // Largest write request in bytes (libfuse 3.14 and the kernel cap it at
  // 1 MiB). Default: 1 MiB.
  uint32_t max_write = 1u << 20;
};

// FUSE passthrough (Linux 6.9+): once the clone is complete, new opens of the
// exposed file are answered so that the kernel reads and writes dest itself
// (passthrough.h).
struct PassthroughOptions {
  // Use passthrough where the kernel allows it. Default: false (the daemon
  // turns it on unless --no-passthrough).
  bool enabled = false;
  // An open descriptor of dest (OpenPassthroughBacking, passthrough.h), owned
  // by the server from FuseServer::Mount on (closed also when Mount fails);
  // -1 when there is none. Default: -1.
  int backing_fd = -1;
  // The INIT reply's max_stack_depth (fuse_channel.h): 1, or 2 when dest's
  // file system is itself stacked (overlayfs). Default: 1.
  uint32_t max_stack_depth = 1;
  // Why there is no backing_fd although enabled, for status and the log
  // ("dest is a block device ..."). Default: "".
  std::string unavailable;
};

// What the FUSE layer counts, for status (docs/control.md).
struct FuseStats {
  // "active", "active for read-only opens (...)", "waiting for completion",
  // or "off: <why>" (Passthrough::Describe).
  std::string passthrough;
  uint64_t opens = 0;              // opens of the image file since the mount
  uint64_t passthrough_opens = 0;  // of those, passed through to dest
  uint64_t read_requests = 0;      // READ requests the daemon served
  uint64_t write_requests = 0;     // WRITE requests the daemon served
  // How requests reach the daemon: "io_uring (2 queues, 9 entries, 3
  // workers)", or "/dev/fuse (<why not io_uring>)" (FuseServer::Stats).
  std::string transport;
  uint64_t uring_requests = 0;  // requests that came through io_uring
  uint64_t uring_direct = 0;    // of those, READs and WRITEs served by direct I/O
  uint64_t uring_direct_retries = 0;  // direct ones that failed and went the usual way
};

// How the kernel hands requests to the daemon (--fuse-transport).
enum class FuseTransportMode {
  kAuto,   // io_uring where the kernel offers it, else /dev/fuse
  kUring,  // io_uring; the mount is refused where the kernel cannot offer it
  kDev,    // /dev/fuse only
};

struct FuseServerOptions {
  // Directory to mount on. Required, absolute.
  std::string mountpoint;
  // Source field of the mount table entry (see /proc/self/mountinfo). The
  // daemon puts the metadata directory here so `clonefs unmount` can find
  // the daemon. Default: "clonefs".
  std::string fsname = "clonefs";
  // Mount with allow_other (needed for root's losetup or a hypervisor running
  // as another user; non-root needs user_allow_other in /etc/fuse.conf).
  // Default: false.
  bool allow_other = false;
  // Further mount options, as given to -o (comma lists allowed). Default: none.
  std::vector<std::string> extra_options;
  // Most worker threads serving requests. Default: 64.
  uint32_t max_threads = 64;
  FuseFsOptions fs;
  PassthroughOptions passthrough;
  // Default: kAuto.
  FuseTransportMode transport = FuseTransportMode::kAuto;
  // What chose `transport`, for status and messages
  // (FuseTransportNamedBy): "--fuse-transport dev",
  // "CLONEFS_FUSE_TRANSPORT=dev"; "" is taken as the option. Default: "".
  std::string transport_named_by;
  // Over io_uring, READs and WRITEs of hydrated ranges go to dest from the
  // queue's thread itself, without a worker (UringQueues' DIRECT READ and
  // WRITE). Off only for comparisons and tests. Default: true.
  bool uring_direct_io = true;
  // Test hook (UringQueues::Options::fail_queue): registration on this
  // io_uring queue fails. Default: -1 (none).
  int uring_fail_queue = -1;
  // Test hook (UringQueues::Options::fail_direct_every). Default: 0 (none).
  uint32_t uring_fail_direct_every = 0;
  // Test hooks (UringQueues::Options::fail_thread, fail_register_after).
  // Default: -1 and 0 (none).
  int uring_fail_thread = -1;
  uint32_t uring_fail_register_after = 0;
  // Threads serving each io_uring queue (UringQueues::Options::
  // threads_per_queue). Default: 0 (UringThreadsPerQueue).
  uint32_t uring_threads_per_queue = 0;
};

}  // namespace clonefs::fuse
