// Passthrough: once a clone is complete, the kernel serves the exposed file's
// reads and writes from dest itself (FUSE passthrough, Linux 6.9+), without
// a round trip to the daemon (internal to src/fuse; docs/design.md,
// "Passthrough after completion").
//
// HOW
//   - INIT: FuseChannel asks for FUSE_PASSTHROUGH when the kernel offers it
//     and there is a backing file (PassthroughOptions::backing_fd).
//   - Right after INIT (ConnectionReady) dest is registered once with
//     FUSE_DEV_IOC_BACKING_OPEN; the id is kept for the connection's life and
//     closed at shutdown. Every passed-through open names that one id (the
//     kernel refuses two backing files for one inode).
//   - OPEN (DecideOpen): an open is passed through when dest is registered
//     and the clone is complete (every region hydrated and committed). Its
//     reply carries FOPEN_PASSTHROUGH and the id, and no FOPEN_DIRECT_IO
//     (which would override passthrough). Opens made before keep being
//     served by the daemon; the kernel lets both kinds coexist.
//
// RULES (ChooseOpen)
//   - Not registered, or not complete: the daemon serves the open.
//   - Read-only mode: only opens without write access are passed through (a
//     write through the daemon to a hydrated region still works there; every
//     fsync fails either way, since fsync always reaches the daemon).
//   - Fail mode: nothing is passed through.
//   - dest changed under the clone (truncated or resized by another
//     program): nothing more is passed through; the daemon refuses the
//     opens' requests (EIO).
//   - An appending open (O_APPEND with write access) is never passed
//     through: every write it makes is past the image's end, which the
//     daemon answers EFBIG but the kernel would carry out (extending dest,
//     cut back afterwards: the bytes, reported written, would be lost). It
//     goes to the daemon, or is refused with EFBIG while passed-through
//     opens are live.
//   - A writable open passed through first tells the engine
//     (Engine::WritesPassedThrough): the kernel cannot refuse its writes
//     past the image's end, which extend dest, so dest's growth is cut back
//     from then on rather than taken for a change (dest_watch.h).
//   - The kernel fails (EIO) an open the daemon would serve while a
//     passed-through open of the inode is live; such an open is refused with
//     EIO here, and logged, instead.
//
// FALLBACK: when passthrough is unavailable (disabled, an access profile
// being recorded, dest not a regular file of the image's size, a kernel that does not offer it, no
// CAP_SYS_ADMIN, the ioctl refused) every open is served by the daemon as
// before; one log line and Describe() say why.
//
// THREAD SAFETY: every method is thread-safe. mu_ guards the state and the
// backing id; counters are atomics. ConnectionReady holds mu_ while it
// registers, so an OPEN racing with it waits and sees the outcome.
//
// LIFECYCLE: built with the FuseFs (before the session); ConnectionReady
// after INIT; Shutdown before the session's descriptor is closed; the
// destructor closes the backing descriptor.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <string>

#include "base/result.h"
#include "engine/engine.h"
#include "fuse/fuse_channel.h"
#include "fuse/fuse_fs_options.h"

namespace clonefs::fuse {

// Who serves an open of the image.
enum class OpenChoice {
  kDaemon,       // the daemon (FOPEN_DIRECT_IO), as before passthrough
  kPassthrough,  // the kernel, from dest
  kRefuse,       // the daemon may not serve it and the kernel would refuse it:
                 // EIO, or EFBIG for an appending open
};

struct OpenSituation {
  bool backing_ready = false;  // dest registered with the kernel
  bool complete = false;       // every region hydrated and committed
  EngineMode mode = EngineMode::kReadWrite;
  bool writable = false;         // the open asks for write access
  bool appending = false;        // writable, with O_APPEND
  int64_t live_passthrough = 0;  // passed-through opens not yet released
  bool dest_changed = false;     // dest changed under the clone (Engine::dest_changed)
};

// The rules above, as a pure function.
OpenChoice ChooseOpen(const OpenSituation& s);

// Opens dest to be the backing file: O_RDWR | O_CLOEXEC, no O_DIRECT (a
// user's O_DIRECT reaches dest through the kernel's own backing file, which
// is opened with the user's flags). Fills o->backing_fd and
// o->max_stack_depth, or o->unavailable with why not: dest is not a regular
// file (the kernel passes through to regular files only), its size is not
// `image_size` (the kernel would read past the image's end), or it is not
// the file `expected` describes (replaced since it was opened). Leaves
// o->enabled as it is.
void OpenPassthroughBacking(const std::string& dest, const struct stat& expected,
                            uint64_t image_size, PassthroughOptions* o);

class Passthrough {
 public:
  // Takes ownership of options.backing_fd. REQUIRES: engine and channel
  // outlive this object.
  Passthrough(Engine* engine, FuseChannel* channel, const PassthroughOptions& options);
  ~Passthrough();
  Passthrough(const Passthrough&) = delete;
  Passthrough& operator=(const Passthrough&) = delete;

  // Whether the INIT reply should ask for passthrough (enabled and a backing
  // file exists).
  bool wanted() const { return options_.enabled && options_.backing_fd >= 0; }

  // After the INIT reply (FuseChannel's InitCallback): registers dest if
  // passthrough was asked for and offered. Logs the outcome (one line).
  void ConnectionReady(const InitInfo& init);

  struct Decision {
    OpenChoice choice = OpenChoice::kDaemon;
    int32_t backing_id = 0;  // for kPassthrough
    int refuse_errno = EIO;  // for kRefuse
  };
  // For an OPEN of the image with open(2) flags `flags`. A kPassthrough
  // decision counts as a live open until PassthroughReleased (call it also
  // when the reply could not be sent).
  Decision DecideOpen(int flags);
  void PassthroughReleased();

  // Closes the backing id; later opens are served by the daemon. Idempotent.
  void Shutdown();

  // dest's attributes while opens have been passed through (a passed-through
  // write may extend dest, and its mtime is dest's); false otherwise.
  bool BackingAttributes(struct stat* st) const;

  // "active", "active for read-only opens (metadata read-only)", "waiting for
  // completion", or "off: <why>".
  std::string Describe() const;
  uint64_t passthrough_opens() const { return opens_.load(std::memory_order_relaxed); }

 private:
  enum class State { kOff, kWaitingForInit, kReady, kClosed };

  Engine* const engine_;
  FuseChannel* const channel_;
  const PassthroughOptions options_;

  mutable std::mutex mu_;
  State state_;                 // GUARDED_BY(mu_)
  std::string off_reason_;      // GUARDED_BY(mu_); for kOff
  int32_t backing_id_ = 0;      // GUARDED_BY(mu_); > 0 in kReady
  bool logged_active_ = false;  // GUARDED_BY(mu_)

  std::atomic<int64_t> live_{0};
  std::atomic<uint64_t> opens_{0};
};

}  // namespace clonefs::fuse
