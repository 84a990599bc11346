#include "fuse/passthrough.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace clonefs::fuse {
namespace {

constexpr long kOverlayfsMagic = 0x794c7630;
constexpr long kEcryptfsMagic = 0xf15f;

// Whether this process has CAP_SYS_ADMIN in its effective set (what
// FUSE_DEV_IOC_BACKING_OPEN requires, besides passthrough being enabled).
bool HaveCapSysAdmin() {
  struct __user_cap_header_struct h;
  struct __user_cap_data_struct d[2];
  std::memset(&h, 0, sizeof(h));
  std::memset(d, 0, sizeof(d));
  h.version = _LINUX_CAPABILITY_VERSION_3;
  if (syscall(SYS_capget, &h, d) != 0) return geteuid() == 0;
  return (d[CAP_SYS_ADMIN / 32].effective & (1u << (CAP_SYS_ADMIN % 32))) != 0;
}

// Why registering dest failed, for status and the log.
std::string RegisterFailure(const Status& s) {
  switch (s.sys_errno()) {
    case EPERM:
      return HaveCapSysAdmin()
                 ? "the kernel did not enable passthrough for this connection (EPERM)"
                 : "the daemon lacks CAP_SYS_ADMIN, which the kernel requires to register dest "
                   "as a backing file (run clonefs mount as root)";
    case ELOOP:
      return "dest's file system is stacked too deep for passthrough (ELOOP)";
    case ENOTTY:
      return "the kernel has no FUSE_DEV_IOC_BACKING_OPEN (ENOTTY)";
    default:
      return "the kernel refused dest as a backing file: " + s.message();
  }
}

}  // namespace

OpenChoice ChooseOpen(const OpenSituation& s) {
  // dest is not the image any more: the daemon refuses every request, and
  // the kernel would refuse a daemon open beside live passed-through ones.
  if (s.dest_changed) return s.live_passthrough > 0 ? OpenChoice::kRefuse : OpenChoice::kDaemon;
  if (!s.backing_ready || !s.complete) return OpenChoice::kDaemon;
  // Its every write is past the image's end: the daemon refuses those.
  if (s.appending) return s.live_passthrough > 0 ? OpenChoice::kRefuse : OpenChoice::kDaemon;
  const bool may_pass =
      s.mode == EngineMode::kReadWrite || (s.mode == EngineMode::kReadOnly && !s.writable);
  if (may_pass) return OpenChoice::kPassthrough;
  return s.live_passthrough > 0 ? OpenChoice::kRefuse : OpenChoice::kDaemon;
}

void OpenPassthroughBacking(const std::string& dest, const struct stat& expected,
                            uint64_t image_size, PassthroughOptions* o) {
  o->backing_fd = -1;
  o->max_stack_depth = 1;
  if (!S_ISREG(expected.st_mode)) {
    o->unavailable = "dest is not a regular file (the kernel passes through to regular files only)";
    return;
  }
  const int fd = ::open(dest.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    o->unavailable = "cannot open dest " + dest + " for passthrough: " + std::strerror(errno);
    return;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_dev != expected.st_dev || st.st_ino != expected.st_ino) {
    ::close(fd);
    o->unavailable = "dest " + dest + " is no longer the file the clone opened";
    return;
  }
  if (static_cast<uint64_t>(st.st_size) != image_size) {
    ::close(fd);
    o->unavailable = "dest is " + std::to_string(st.st_size) + " bytes, not the image's " +
                     std::to_string(image_size) +
                     " (the kernel would serve reads past the image's end)";
    return;
  }
  struct statfs sf;
  if (::fstatfs(fd, &sf) == 0 && (sf.f_type == kOverlayfsMagic || sf.f_type == kEcryptfsMagic)) {
    o->max_stack_depth = 2;
  }
  o->backing_fd = fd;
}

Passthrough::Passthrough(Engine* engine, FuseChannel* channel, const PassthroughOptions& options)
    : engine_(engine), channel_(channel), options_(options) {
  if (!options_.enabled) {
    state_ = State::kOff;
    off_reason_ = "disabled (--no-passthrough)";
  } else if (options_.backing_fd < 0) {
    state_ = State::kOff;
    off_reason_ = options_.unavailable.empty() ? "no backing file" : options_.unavailable;
  } else {
    state_ = State::kWaitingForInit;
  }
}

Passthrough::~Passthrough() {
  Shutdown();
  if (options_.backing_fd >= 0) ::close(options_.backing_fd);
}

void Passthrough::ConnectionReady(const InitInfo& init) {
  std::lock_guard<std::mutex> l(mu_);
  if (state_ != State::kWaitingForInit) {
    if (state_ == State::kOff && options_.enabled) {
      CLONEFS_LOG_WARN("passthrough off: %s; the daemon serves every open", off_reason_.c_str());
    }
    return;
  }
  if (!init.passthrough_offered) {
    state_ = State::kOff;
    off_reason_ =
        "the kernel does not offer FUSE passthrough (it needs Linux 6.9 or later built "
        "with CONFIG_FUSE_PASSTHROUGH; this kernel speaks FUSE 7." +
        std::to_string(init.kernel_minor) + ")";
  } else if (!init.passthrough_requested) {
    state_ = State::kOff;
    off_reason_ = "the INIT reply could not ask for it";
  } else {
    Result<int32_t> id = channel_->OpenBacking(options_.backing_fd);
    if (id.ok()) {
      state_ = State::kReady;
      backing_id_ = *id;
      CLONEFS_LOG_INFO(
          "passthrough: dest registered with the kernel (backing id %d); opens made "
          "once the clone is complete are served by the kernel from dest",
          backing_id_);
      return;
    }
    state_ = State::kOff;
    off_reason_ = RegisterFailure(id.status());
  }
  CLONEFS_LOG_WARN("passthrough off: %s; the daemon serves every open", off_reason_.c_str());
}

Passthrough::Decision Passthrough::DecideOpen(int flags) {
  std::lock_guard<std::mutex> l(mu_);
  OpenSituation s;
  s.backing_ready = state_ == State::kReady;
  s.complete = s.backing_ready && engine_->hydration_done();
  s.mode = engine_->mode();
  s.writable = (flags & O_ACCMODE) != O_RDONLY;
  s.appending = s.writable && (flags & O_APPEND) != 0;
  s.live_passthrough = live_.load();
  s.dest_changed = engine_->dest_changed();
  Decision d;
  d.choice = ChooseOpen(s);
  switch (d.choice) {
    case OpenChoice::kPassthrough:
      d.backing_id = backing_id_;
      if (s.writable) engine_->WritesPassedThrough();  // before the kernel can write
      live_.fetch_add(1);
      opens_.fetch_add(1, std::memory_order_relaxed);
      if (!logged_active_) {
        logged_active_ = true;
        CLONEFS_LOG_INFO(
            "passthrough active: the clone is complete; new opens are served by the "
            "kernel from dest (opens made before stay with the daemon)");
      }
      break;
    case OpenChoice::kRefuse:
      if (s.appending && !s.dest_changed) {
        // Its writes would all be refused (EFBIG) by the daemon, which the
        // kernel does not let serve it beside live passed-through opens.
        d.refuse_errno = EFBIG;
        CLONEFS_LOG_WARN(
            "appending open refused (EFBIG): the image has a fixed size, and %lld opens "
            "served by the kernel keep the daemon from serving this one",
            static_cast<long long>(s.live_passthrough));
        break;
      }
      CLONEFS_LOG_WARN(
          "open refused (EIO): the clone is %s, so the daemon may not pass this open "
          "through, and the kernel refuses other opens while %lld passed-through "
          "opens are live",
          s.mode == EngineMode::kFail ? "in fail mode" : "read-only",
          static_cast<long long>(s.live_passthrough));
      break;
    case OpenChoice::kDaemon:
      break;
  }
  return d;
}

void Passthrough::PassthroughReleased() { live_.fetch_sub(1); }

void Passthrough::Shutdown() {
  std::lock_guard<std::mutex> l(mu_);
  if (state_ != State::kReady) return;
  state_ = State::kClosed;
  Status s = channel_->CloseBacking(backing_id_);
  if (!s.ok())
    CLONEFS_LOG_DEBUG("passthrough: closing backing id %d: %s", backing_id_, s.ToString().c_str());
}

bool Passthrough::BackingAttributes(struct stat* st) const {
  if (opens_.load(std::memory_order_relaxed) == 0) return false;
  return ::fstat(options_.backing_fd, st) == 0;
}

std::string Passthrough::Describe() const {
  std::lock_guard<std::mutex> l(mu_);
  switch (state_) {
    case State::kOff:
      return "off: " + off_reason_;
    case State::kWaitingForInit:
      return "waiting for the FUSE connection";
    case State::kClosed:
      return "off: unmounting";
    case State::kReady:
      break;
  }
  // ChooseOpen's order: a changed dest passes nothing through, whatever
  // else holds.
  if (engine_->dest_changed()) return "off: dest changed under the clone (every request fails)";
  if (!engine_->hydration_done()) return "waiting for completion";
  switch (engine_->mode()) {
    case EngineMode::kFail:
      return "off: fail mode (every I/O fails)";
    case EngineMode::kReadOnly:
      return "active for read-only opens (metadata read-only)";
    case EngineMode::kReadWrite:
      break;
  }
  return "active";
}

}  // namespace clonefs::fuse
