// FuseServer: one mounted clonefs filesystem serving one Engine.
//
//   auto server = FuseServer::Mount(engine, options);   // mounted, not served
//   ... tell whoever waits that the mount exists ...
//   Status s = (*server)->Serve();   // blocks until unmounted
//
// Serve() runs the request loop (worker_pool.h: up to max_threads workers,
// receiving into buffers that keep WRITE payloads page aligned) until the
// filesystem is unmounted, from outside (`clonefs
// unmount`, umount, fusermount3 -u) or by RequestUnmount(). It then destroys
// the session, which runs the FUSE destroy operation: Engine::Shutdown, the
// final commit. Serve returns that shutdown's status.
//
// The session's I/O goes through a FuseChannel (fuse_channel.h), which asks
// the kernel for FUSE passthrough when options.passthrough allows it; once
// the clone is complete, new opens are then served by the kernel from dest
// (passthrough.h). Unless options.transport says /dev/fuse only, it also
// accepts FUSE over io_uring where the kernel offers it; requests then come
// through UringQueues (uring_queues.h), served by its own threads beside the
// WorkerPool, which keeps reading /dev/fuse for what does not go that way.
//
// Signals are not handled here (no fuse_set_signal_handlers: its SIGTERM
// handling unmounts under a live loop device). The daemon blocks them and
// decides (daemon.cc), using RequestUnmount().
//
// THREAD SAFETY: Mount and Serve from one thread; RequestUnmount,
// open_handles and Stats from any thread while the server exists.
//
// LIFECYCLE: Mount -> Serve -> destroy. Destroying a server that was never
// served unmounts it and runs the destroy operation (engine shutdown) too.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "base/status.h"
#include "engine/engine.h"
#include "fuse/fuse_fs_options.h"

struct fuse_session;

namespace clonefs::fuse {

class FuseChannel;
class FuseFs;
class UringQueues;
struct InitInfo;

// The transport named by --fuse-transport: "auto", "uring" or "dev"; ""
// takes $CLONEFS_FUSE_TRANSPORT, and auto if that is unset or empty.
// Errors: InvalidArgument naming the bad value (and where it came from).
Result<FuseTransportMode> ParseFuseTransport(const std::string& name);
// What chose the transport ParseFuseTransport(name) gives, as a user would
// write it: "--fuse-transport NAME" for an option given,
// "CLONEFS_FUSE_TRANSPORT=VALUE" where the environment chose it, "" where
// neither did (auto by default).
std::string FuseTransportNamedBy(const std::string& name);

// Why `--fuse-transport uring` cannot mount (`why`, e.g. what
// KernelUringUnavailable says), and what to do instead: InvalidArgument.
Status UringTransportRefused(const std::string& why);

class FuseServer {
 public:
  // Creates the FUSE session for `engine` and mounts it on
  // options.mountpoint. REQUIRES: engine outlives the server and is started.
  // Takes ownership of options.passthrough.backing_fd (closed on failure too).
  // Errors: InvalidArgument for bad options (libfuse's message included),
  // or for FuseTransportMode::kUring where this kernel cannot offer
  // io_uring (the message says why and what to do); IoError if the mount
  // fails (e.g. no /dev/fuse, not permitted).
  static Result<std::unique_ptr<FuseServer>> Mount(Engine* engine,
                                                   const FuseServerOptions& options);
  ~FuseServer();
  FuseServer(const FuseServer&) = delete;
  FuseServer& operator=(const FuseServer&) = delete;

  // Serves until unmounted; returns the final engine shutdown status (or
  // IoError if the loop itself failed). Call once.
  Status Serve();

  // Unmounts if the exposed file is not in use (a plain umount, which the
  // kernel refuses while any file in the mount is open); Serve then returns.
  // Errors: Busy if the file is in use (the mount stays and keeps serving),
  // Permission / IoError if unmounting failed otherwise.
  Status RequestUnmount();

  // Open handles of the exposed file right now.
  int open_handles() const;
  // Passthrough state and request counters (status).
  FuseStats Stats() const;
  const std::string& mountpoint() const { return options_.mountpoint; }

 private:
  FuseServer(const FuseServerOptions& options, std::unique_ptr<UringQueues> uring,
             std::string uring_off, std::unique_ptr<FuseChannel> channel,
             std::unique_ptr<FuseFs> fs);
  void DestroySession();
  // Runs once the INIT reply is written (the channel's InitCallback).
  void ConnectionReady(const InitInfo& info);
  // The channel's interrupt retry: true if `target` is an io_uring thread's
  // request, after giving libfuse its INTERRUPT again.
  bool RedeliverInterrupt(uint64_t target);
  std::string DescribeTransport() const;

  const FuseServerOptions options_;
  std::unique_ptr<UringQueues> uring_;    // null: /dev/fuse only; outlives channel_'s use
  const std::string uring_off_;           // why there are no io_uring queues
  std::unique_ptr<FuseChannel> channel_;  // outlives fs_ and the session
  std::unique_ptr<FuseFs> fs_;
  struct fuse_session* se_ = nullptr;  // owned; null after DestroySession
  bool mounted_ = false;
};

}  // namespace clonefs::fuse
