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
};

}  // namespace clonefs::fuse
