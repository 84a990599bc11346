#include "fuse/fuse_server.h"

#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "base/log.h"
#include "fuse/fuse_channel.h"
#include "fuse/fuse_fs.h"
#include "fuse/fuse_kernel_abi.h"
#include "fuse/mount_table.h"
#include "fuse/uring_queues.h"
#include "fuse/worker_pool.h"

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

namespace clonefs::fuse {
namespace {

// libfuse reports mount problems through its log function; keep the last
// error so Mount() can return it in its Status, and forward everything to
// clonefs's log.
std::mutex g_fuse_log_mu;
std::string g_last_fuse_error;  // GUARDED_BY(g_fuse_log_mu)

void FuseLogToClonefs(enum fuse_log_level level, const char* fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof(msg), fmt, ap);
  std::string m(msg);
  while (!m.empty() && m.back() == '\n') m.pop_back();
  if (level <= FUSE_LOG_ERR) {
    // libfuse splits some messages over several calls ("unknown option(s):
    // `" then "bogus'"): keep every piece since the last TakeLastFuseError.
    std::lock_guard<std::mutex> l(g_fuse_log_mu);
    g_last_fuse_error += m;
  }
  if (level <= FUSE_LOG_ERR) {
    CLONEFS_LOG_ERROR("libfuse: %s", m.c_str());
  } else if (level <= FUSE_LOG_NOTICE) {
    CLONEFS_LOG_INFO("libfuse: %s", m.c_str());
  } else {
    CLONEFS_LOG_DEBUG("libfuse: %s", m.c_str());
  }
}

// libfuse's errors since the last call, readable in our messages: without
// its "fuse: " prefix and with its `quoted' words quoted as 'quoted'.
std::string TakeLastFuseError() {
  std::string m;
  {
    std::lock_guard<std::mutex> l(g_fuse_log_mu);
    m.swap(g_last_fuse_error);
  }
  if (m.rfind("fuse: ", 0) == 0) m.erase(0, 6);
  for (char& c : m) {
    if (c == '`') c = '\'';
  }
  return m;
}

bool ValidFileName(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.find('/') == std::string::npos && n.size() <= 255;
}

// libfuse hands the channel's I/O the session's userdata: the FuseFs.
FuseChannel* ChannelOf(void* userdata) { return static_cast<FuseFs*>(userdata)->channel(); }

}  // namespace

Status UringTransportRefused(const std::string& why) {
  return Status::InvalidArgument(
      "--fuse-transport uring: " + why +
      "; or mount with --fuse-transport auto (the default), which falls back to /dev/fuse");
}

Result<FuseTransportMode> ParseFuseTransport(const std::string& name) {
  std::string v = name, from = "--fuse-transport";
  if (v.empty()) {
    const char* env = getenv("CLONEFS_FUSE_TRANSPORT");
    v = env != nullptr ? env : "";
    from = "CLONEFS_FUSE_TRANSPORT";
  }
  if (v.empty() || v == "auto") return FuseTransportMode::kAuto;
  if (v == "uring") return FuseTransportMode::kUring;
  if (v == "dev") return FuseTransportMode::kDev;
  return Status::InvalidArgument(from + " '" + v + "' is not a transport; use auto, uring or dev");
}

std::string FuseTransportNamedBy(const std::string& name) {
  if (!name.empty()) return "--fuse-transport " + name;
  const char* env = getenv("CLONEFS_FUSE_TRANSPORT");
  if (env != nullptr && *env != '\0') return std::string("CLONEFS_FUSE_TRANSPORT=") + env;
  return "";
}

FuseServer::FuseServer(const FuseServerOptions& options, std::unique_ptr<UringQueues> uring,
                       std::string uring_off, std::unique_ptr<FuseChannel> channel,
                       std::unique_ptr<FuseFs> fs)
    : options_(options),
      uring_(std::move(uring)),
      uring_off_(std::move(uring_off)),
      channel_(std::move(channel)),
      fs_(std::move(fs)) {}

namespace {

// The io_uring queues for `options`, or nullptr and why not.
std::unique_ptr<UringQueues> MakeUringQueues(const FuseServerOptions& options, std::string* off) {
  if (options.transport == FuseTransportMode::kDev) {
    *off = options.transport_named_by.empty() ? "--fuse-transport dev" : options.transport_named_by;
    return nullptr;
  }
  *off = KernelUringUnavailable();
  if (!off->empty()) return nullptr;
  UringQueues::Options uo;
  uo.max_entries_per_queue = options.max_threads;
  uo.max_workers = options.max_threads;
  uo.fail_queue = options.uring_fail_queue;
  uo.fail_thread = options.uring_fail_thread;
  uo.fail_register_after = options.uring_fail_register_after;
  uo.threads_per_queue = options.uring_threads_per_queue;
  uo.fail_direct_every = options.uring_fail_direct_every;
  auto u = UringQueues::Create(uo);
  if (!u.ok()) {
    *off = "io_uring is unavailable: " + u.status().ToString();
    return nullptr;
  }
  return std::move(*u);
}

}  // namespace

Result<std::unique_ptr<FuseServer>> FuseServer::Mount(Engine* engine,
                                                      const FuseServerOptions& options) {
  Status bad;
  if (!ValidFileName(options.fs.file_name)) {
    bad = Status::InvalidArgument("file name '" + options.fs.file_name +
                                  "' is not a single path component");
  } else if (options.mountpoint.empty() || options.mountpoint[0] != '/') {
    bad = Status::InvalidArgument("mount point must be an absolute path");
  }
  std::string uring_off;
  std::unique_ptr<UringQueues> uring;
  if (bad.ok()) {
    uring = MakeUringQueues(options, &uring_off);
    if (uring == nullptr && options.transport == FuseTransportMode::kUring) {
      bad = UringTransportRefused(uring_off);
    }
  }
  if (!bad.ok()) {
    if (options.passthrough.backing_fd >= 0) ::close(options.passthrough.backing_fd);
    return bad;
  }
  fuse_set_log_func(FuseLogToClonefs);
  TakeLastFuseError();

  FuseChannel::Options co;
  co.passthrough = options.passthrough.enabled && options.passthrough.backing_fd >= 0;
  co.max_stack_depth = options.passthrough.max_stack_depth;
  co.uring = uring.get();
  auto channel = std::make_unique<FuseChannel>(co);
  auto fs = std::make_unique<FuseFs>(engine, options.fs, channel.get(), options.passthrough);
  std::unique_ptr<FuseServer> server(new FuseServer(options, std::move(uring), std::move(uring_off),
                                                    std::move(channel), std::move(fs)));
  server->channel_->set_on_init([s = server.get()](const InitInfo& i) { s->ConnectionReady(i); });
  if (server->uring_ != nullptr) {
    server->channel_->set_retry_interrupt(
        [s = server.get()](uint64_t target) { return s->RedeliverInterrupt(target); });
  }

  // Mount options: the kernel checks permissions against the attributes we
  // report (default_permissions); the mount table shows "fuse.clonefs".
  char* opts = nullptr;
  fuse_opt_add_opt(&opts, "default_permissions");
  fuse_opt_add_opt(&opts, "subtype=clonefs");
  fuse_opt_add_opt_escaped(&opts, ("fsname=" + options.fsname).c_str());
  if (options.allow_other) fuse_opt_add_opt(&opts, "allow_other");
  for (const auto& o : options.extra_options) fuse_opt_add_opt(&opts, o.c_str());
  struct fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  fuse_opt_add_arg(&args, "clonefs");
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, opts);
  free(opts);

  const fuse_lowlevel_ops& ops = FuseFsOperations();
  server->se_ = fuse_session_new(&args, &ops, sizeof(ops), server->fs_.get());
  fuse_opt_free_args(&args);
  if (server->se_ == nullptr) {
    std::string why = TakeLastFuseError();
    return Status::InvalidArgument("cannot create the FUSE session: " +
                                   (why.empty() ? std::string("libfuse gave no reason") : why) +
                                   "; check the -o options (see mount.fuse3(8))");
  }
  if (fuse_session_mount(server->se_, options.mountpoint.c_str()) != 0) {
    std::string why = TakeLastFuseError();
    return Status::IoError(
        "cannot mount on " + options.mountpoint + ": " +
        (why.empty() ? std::string("libfuse gave no reason") : why) +
        "; check that /dev/fuse can be opened, that fusermount3 is installed, and that you may "
        "mount on that directory (its owner, or root)");
  }
  server->mounted_ = true;
  Status attached = server->channel_->Attach<ChannelOf>(server->se_);
  if (!attached.ok()) return attached;
  return server;
}

FuseServer::~FuseServer() { DestroySession(); }

bool FuseServer::RedeliverInterrupt(uint64_t target) {
  if (uring_ == nullptr || !uring_->Serving(target)) return false;
  // The INTERRUPT again, as the kernel sent it: libfuse then finds the
  // request (or keeps the interrupt until it does).
  struct {
    kabi::InHeader in;
    struct fuse_interrupt_in arg;
  } msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.in.len = sizeof(msg);
  msg.in.opcode = kabi::kOpInterrupt;
  msg.in.unique = target | kabi::kIntReqBit;
  msg.arg.unique = target;
  struct fuse_buf buf;
  std::memset(&buf, 0, sizeof(buf));
  buf.mem = &msg;
  buf.size = sizeof(msg);
  fuse_session_process_buf(se_, &buf);
  return true;
}

void FuseServer::ConnectionReady(const InitInfo& info) {
  fs_->passthrough()->ConnectionReady(info);
  if (uring_ == nullptr || !info.uring_requested) return;
  // The kernel's payload buffers: its largest request or reply payload.
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t payload = std::max<size_t>(
      {8192, info.max_write, static_cast<size_t>(info.max_pages) * page, options_.fs.max_write});
  fuse_session* se = se_;
  auto handler = [se](char* req, size_t len) {
    struct fuse_buf buf;
    std::memset(&buf, 0, sizeof(buf));
    buf.mem = req;
    buf.size = len;
    fuse_session_process_buf(se, &buf);
  };
  UringQueues::IoPlanner planner;
  if (options_.uring_direct_io) {
    planner = [fs = fs_.get()](const UringQueues::IoRequest& r, UringQueues::DirectIo* out) {
      out->off = r.off;
      out->fd = r.write ? fs->DirectWriteFd(r.nodeid, r.off, r.size, r.flags, &out->len)
                        : fs->DirectReadFd(r.nodeid, r.off, r.size, &out->len);
      return out->fd >= 0;
    };
  }
  // On failure the queues have made the kernel keep to /dev/fuse and said so.
  uring_->Start(channel_->fd(), payload, std::move(handler), std::move(planner)).ok();
}

std::string FuseServer::DescribeTransport() const {
  if (uring_ == nullptr) return "/dev/fuse (" + uring_off_ + ")";
  const InitInfo i = channel_->init_info();
  if (!i.reply_sent) return "/dev/fuse (waiting for the kernel's INIT)";
  if (!i.uring_offered) return "/dev/fuse (the kernel did not offer FUSE over io_uring)";
  return uring_->Describe();
}

void FuseServer::DestroySession() {
  if (se_ == nullptr) return;
  // While the session's descriptor is open (fuse_session_unmount closes it).
  fs_->passthrough()->Shutdown();
  // The io_uring threads send commands on the session's descriptor and run
  // its requests: joined before the unmount closes the one and the destroy
  // frees the other. (After an unmount from outside they have already left:
  // the kernel failed their commands with ENOTCONN.)
  if (uring_ != nullptr) uring_->Stop();
  if (mounted_) fuse_session_unmount(se_);
  mounted_ = false;
  // Runs the destroy operation (engine shutdown) if INIT was received; make
  // sure the engine is shut down even if the kernel never sent INIT.
  fuse_session_destroy(se_);
  se_ = nullptr;
  fs_->Destroy().ok();
}

Status FuseServer::Serve() {
  if (se_ == nullptr) return Status::InvalidArgument("FUSE session already finished");
  Status loop = WorkerPool(se_, options_.max_threads, options_.fs.max_write).Run();
  DestroySession();
  Status shutdown = fs_->shutdown_status();
  if (!loop.ok()) return shutdown.ok() ? loop : shutdown;
  return shutdown;
}

Status FuseServer::RequestUnmount() { return UnmountPath(options_.mountpoint, /*lazy=*/false); }

int FuseServer::open_handles() const { return fs_->open_handles(); }

FuseStats FuseServer::Stats() const {
  FuseStats s = fs_->Stats();
  s.transport = DescribeTransport();
  s.uring_requests = uring_ != nullptr ? uring_->requests() : 0;
  s.uring_direct = uring_ != nullptr ? uring_->direct_requests() : 0;
  s.uring_direct_retries = uring_ != nullptr ? uring_->direct_retries() : 0;
  if (uring_ != nullptr) {
    // A direct READ or WRITE that failed was counted when placed and again
    // when a worker answered it: it is one request.
    s.read_requests -= std::min(s.read_requests, uring_->direct_retries(false));
    s.write_requests -= std::min(s.write_requests, uring_->direct_retries(true));
  }
  return s;
}

}  // namespace clonefs::fuse
