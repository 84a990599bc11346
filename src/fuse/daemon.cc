#include "fuse/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"
#include "base/printable.h"
#include "clone/dest_written.h"
#include "clone/storage_probe.h"
#include "fuse/exit_codes.h"
#include "fuse/fuse_server.h"
#include "fuse/mount_table.h"
#include "fuse/on_complete.h"
#include "fuse/passthrough.h"
#include "fuse/preflight.h"
#include "fuse/runtime_info.h"
#include "fuse/stored_settings.h"
#include "fuse/uring_queues.h"
#include "metadata/clone_files.h"
#include "profile/profile.h"
#include "regions/region_math.h"
#include "regions/region_run.h"
#include "sources/source_spec.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

extern char** environ;

namespace clonefs::fuse {
namespace {

// Where the serving process sends what the user must see before the mount
// exists: stderr (foreground) or the pipe to the waiting parent (detached).
// Pipe protocol, one line each: "N <note>", "E <error>", "L <log file>",
// "M <pid> <file name>" (the name may come from the clone's stored settings).
class Reporter {
 public:
  // pipe_fd -1: foreground; then messages are printed only if the log does
  // not already go to stderr (`echo`).
  Reporter(int pipe_fd, bool echo) : fd_(pipe_fd), echo_(echo) {}
  // Foreground: whether the log already shows messages on stderr changed.
  void set_echo(bool echo) { echo_ = echo; }
  void Note(const std::string& m) {
    CLONEFS_LOG_WARN("%s", m.c_str());
    Send('N', m);
  }
  void Error(const std::string& m) {
    CLONEFS_LOG_ERROR("%s", m.c_str());
    Send('E', m);
  }
  // The daemon's log file is open at `path`.
  void LogFile(const std::string& path) { Send('L', path); }
  void Mounted(const std::string& name) {
    Send('M', std::to_string(getpid()) + " " + name);
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  void Send(char kind, std::string m) {
    // One line each, and nothing a terminal would act on (names and paths
    // may hold any byte).
    for (char& c : m) {
      if (c == '\n') c = ' ';
    }
    m = Printable(m);
    if (fd_ < 0) {
      if (!echo_) return;
      if (kind == 'N') fprintf(stderr, "clonefs: note: %s\n", m.c_str());
      if (kind == 'E') fprintf(stderr, "clonefs: error: %s\n", m.c_str());
      return;  // 'L', 'M': the foreground user sees the log already
    }
    std::string line = std::string(1, kind) + " " + m + "\n";
    ssize_t n = write(fd_, line.data(), line.size());
    (void)n;
  }
  int fd_;  // -1: foreground
  bool echo_;
};

// Where the log goes (docs/cli.md, "Where things are"): --log-file if given
// and writable; otherwise METADATA/clonefs.log (capped, rotated once), plus
// syslog where /dev/log exists (detached) or stderr (foreground). Until a
// file is open, messages are held in memory (base/log.h). --log-file opens
// once the mount's paths passed CheckPathLayout (OpenRequestedLog: a log
// file inside the mount point is refused before it exists); the metadata
// file opens then too if the clone already exists, else once OpenClone made
// the directory (OpenMetadataLog).
struct LogSetup {
  bool detached = false;
  bool metadata_log = false;  // the log file is METADATA/clonefs.log
  // The --log-file this mount created (it did not exist): a failed mount
  // removes it (SPEC §7a); its messages were reported to the user.
  std::string created_log_file;
};

std::string MetadataLogPath(const MountOptions& o) {
  return metadata::CloneFilePath(o.metadata_dir, metadata::kLogFileName);
}

// Sends the log to METADATA/clonefs.log (held until it opens) and stderr
// (foreground) or syslog (detached, where it exists).
void UseMetadataLog(LogSetup* setup) {
  setup->metadata_log = true;
  LogSinks sinks;
  sinks.to_stderr = !setup->detached;
  if (setup->detached && SyslogAvailable()) sinks.syslog_ident = "clonefs";
  sinks.hold_for_file = true;
  ConfigureLog(sinks);
}

// Before anything is checked: messages are held until a file opens.
LogSetup SetUpLogging(const MountOptions& o, bool detached) {
  SetLogLevel(o.log_level);
  LogSetup out;
  out.detached = detached;
  if (!o.log_file.empty()) {
    LogSinks held;  // --log-file alone, once it is open
    held.hold_for_file = true;
    ConfigureLog(held);
    return out;
  }
  UseMetadataLog(&out);
  return out;
}

// Once the paths are known not to lie inside the mount point: opens
// --log-file (falling back to the metadata log, with a note, if it cannot
// be opened), or the metadata log of an existing clone, so that a refusal
// or a crash while opening it is in its log too. A directory that is not yet
// a clone's is left alone until the clone exists in it.
void OpenRequestedLog(const MountOptions& o, LogSetup* setup, Reporter* rep) {
  if (!o.log_file.empty()) {
    struct stat st;
    const bool existed = lstat(o.log_file.c_str(), &st) == 0;
    Status s = OpenLogFile(o.log_file);
    if (s.ok()) {
      if (!existed) setup->created_log_file = o.log_file;
      rep->LogFile(LogFilePath());
      return;
    }
    UseMetadataLog(setup);
    rep->set_echo(false);  // the log shows on stderr now (foreground)
    rep->Note(s.ToString() + "; logging to " + MetadataLogPath(o) + " instead");
  }
  const std::string current = metadata::CloneFilePath(o.metadata_dir, "CURRENT");
  if (access(current.c_str(), F_OK) == 0) OpenLogFile(MetadataLogPath(o)).ok();
  if (!LogFilePath().empty()) rep->LogFile(LogFilePath());
}

// A failed mount removes the --log-file it created.
void RemoveCreatedLog(const LogSetup& setup) {
  if (setup.created_log_file.empty()) return;
  if (unlink(setup.created_log_file.c_str()) != 0 && errno != ENOENT) {
    CLONEFS_LOG_WARN("cannot remove the log file %s this mount created: %s",
                     setup.created_log_file.c_str(), std::strerror(errno));
  }
}

// Opens METADATA/clonefs.log once the metadata directory exists (if logging
// goes there and it is not open yet) and tells the user where the log is.
void OpenMetadataLog(const MountOptions& o, const LogSetup& setup, Reporter* rep) {
  if (setup.metadata_log && LogFilePath().empty()) {
    Status s = OpenLogFile(MetadataLogPath(o));
    if (!s.ok()) {
      rep->Note(s.ToString() + "; the daemon logs only to " +
                (SyslogAvailable() ? "syslog" : "nowhere (no syslog socket)") +
                "; make the metadata directory writable");
    }
  }
  if (!LogFilePath().empty()) rep->LogFile(LogFilePath());
}

// The --on-complete command's options: the daemon's environment without
// CLONEFS_* variables, plus the clone's paths (docs/cli.md).
OnCompleteOptions OnCompleteFor(const MountOptions& o) {
  OnCompleteOptions c;
  c.command = o.on_complete;
  for (char** e = environ; *e; ++e) {
    if (std::strncmp(*e, "CLONEFS_", 8) != 0) c.env.emplace_back(*e);
  }
  c.env.push_back("CLONEFS_SOURCE=" + RedactSource(o.source));
  c.env.push_back("CLONEFS_DEST=" + o.dest);
  c.env.push_back("CLONEFS_MOUNTPOINT=" + o.mountpoint);
  c.env.push_back("CLONEFS_METADATA=" + o.metadata_dir);
  return c;
}

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR2);  // internal: "serving is over"
  return set;
}

void SignalLoop(FuseServer* server, const MountOptions* o) {
  sigset_t set = HandledSignals();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR2) return;
    if (sig == SIGHUP) {
      Status r = ReopenLogFile();
      if (r.ok()) {
        CLONEFS_LOG_INFO("SIGHUP: log %s reopened", LogFilePath().c_str());
      } else {
        CLONEFS_LOG_ERROR("SIGHUP: cannot reopen the log: %s", r.ToString().c_str());
      }
      continue;
    }
    Status s = server->RequestUnmount();
    if (s.ok()) {
      CLONEFS_LOG_INFO("%s: unmounted %s; finishing (final commit)", strsignal(sig),
                       o->mountpoint.c_str());
      return;
    }
    if (s.IsBusy()) {
      CLONEFS_LOG_WARN("%s ignored: %s/%s is in use (%d open handles); keeping the clone "
                       "serving. Stop its users (umount, losetup -d, the VM), then run: "
                       "clonefs unmount %s",
                       strsignal(sig), o->mountpoint.c_str(), o->name.c_str(),
                       server->open_handles(), o->mountpoint.c_str());
    } else {
      CLONEFS_LOG_ERROR("%s: cannot unmount: %s", strsignal(sig), s.ToString().c_str());
    }
  }
}

// The detached daemon keeps nothing its caller left open but `keep` (and
// 0-2, /dev/null by then): a descriptor it inherited (a script's `exec
// 9>LOCK; flock 9`, the write end of a pipe its caller reads to the end)
// would stay open until the clone is unmounted, and be handed on to the
// --on-complete command.
void CloseInheritedDescriptors(int keep) {
  const int first = STDERR_FILENO + 1;
  bool done = true;
  if (keep > first) done = ::close_range(first, keep - 1, 0) == 0 || errno != ENOSYS;
  if (done) done = ::close_range(std::max(first, keep + 1), ~0U, 0) == 0 || errno != ENOSYS;
  if (done) return;
  // Kernels before 5.9.
  const long max = std::min(::sysconf(_SC_OPEN_MAX), 65536L);
  for (long fd = first; fd < max; ++fd) {
    if (fd != keep) ::close(static_cast<int>(fd));
  }
}

// Everything the serving process does; returns its exit code. `cmdline`: the
// options as given; the clone's stored settings complete them.
int ServeClone(const MountOptions& cmdline, LogSetup log, const DaemonHooks& hooks, Reporter* rep) {
  // Reclaim under a loop device over our own file must not wait on us.
  if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) != 0) {
    CLONEFS_LOG_WARN("PR_SET_IO_FLUSHER refused (%s): under memory pressure with a loop "
                     "device on the clone, reclaim could wait on this daemon",
                     std::strerror(errno));
  }
  sigset_t set = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Nothing is created before the paths are known not to lie inside the
  // mount point (the log file included).
  Status s = CheckPathLayout(cmdline);
  if (s.ok()) {
    OpenRequestedLog(cmdline, &log, rep);
    s = CheckMountpoint(cmdline, [rep](const std::string& m) { rep->Note(m); });
  }
  if (!s.ok()) {
    rep->Error(s.message());
    RemoveCreatedLog(log);
    return kExitFailure;
  }
  auto resolved = ResolveStoredSettings(cmdline);
  if (!resolved.ok()) {
    rep->Error(resolved.status().message());
    RemoveCreatedLog(log);
    return kExitFailure;
  }
  const MountOptions& o = resolved->options;
  auto opened = OpenClone(o, [rep](const std::string& m) { rep->Note(m); });
  if (!opened.ok()) {
    rep->Error(opened.status().message());
    RemoveCreatedLog(log);
    return kExitFailure;
  }
  OpenedClone c = std::move(*opened);
  OpenMetadataLog(o, log, rep);
  // Outlives the engine, whose committer starts it.
  std::unique_ptr<OnCompleteCommand> on_complete;
  std::unique_ptr<Engine> engine;
  // A mount that fails from here on removes what it created (SPEC §7a).
  // Set once this mount's settings are stored: the metadata (owned by the
  // engine once it runs) and the record to put back on failure.
  metadata::Metadata* const md = c.metadata.get();
  bool settings_stored = false;
  auto fail = [&](const std::string& message) {
    // (An engine that failed to open has destroyed the metadata.)
    if (settings_stored && (engine || c.metadata)) RestoreSettings(*resolved, md);
    if (engine) (void)engine->Shutdown();
    engine.reset();
    c.metadata.reset();
    c.dest.reset();
    c.dest_lock.reset();
    RemoveCreated(c.created);
    rep->Error(message);
    RemoveCreatedLog(log);
    return kExitFailure;
  };
  // A profile given that cannot be replayed refuses the mount before
  // anything is stored (SPEC §10: a profile for another source is refused).
  const metadata::Superblock& sb = c.metadata->superblock();
  const profile::SourceKey source_key{sb.source.size, sb.source.fingerprint,
                                      sb.source.fingerprint2};
  std::vector<RegionRun> profile_order;
  // A profile only orders hydration: a stored one (not given this time)
  // whose file is gone, damaged, or now holds another source's profile does
  // not keep the clone from mounting. It stays stored, in case its file
  // system is just not mounted yet (or the file is put back).
  const bool profile_stored_only = !o.profile.empty() && !o.given.profile.has_value();
  auto skip_stored_profile = [&](const std::string& why) {
    rep->Note("the stored profile " + o.profile + " " + why +
              ": mounting without it (hydration follows reads and the bitmap); give --profile "
              "FILE to replay another, or --profile '' to forget it");
  };
  bool profile_gone = false;
  if (profile_stored_only) {
    struct stat st;
    profile_gone = ::stat(o.profile.c_str(), &st) != 0 && errno == ENOENT;
    if (profile_gone) skip_stored_profile("does not exist any more");
  }
  std::optional<profile::Profile> replayed;
  if (!o.profile.empty() && !profile_gone) {
    auto p = profile::Load(o.profile);
    const std::string mismatch = p.ok() ? profile::SourceMismatch(*p, source_key) : "";
    if (profile_stored_only && !p.ok()) {
      skip_stored_profile("cannot be replayed (" + p.status().message() + ")");
    } else if (profile_stored_only && !mismatch.empty()) {
      skip_stored_profile("does not belong to this source any more (" + mismatch + ")");
    } else if (!p.ok()) {
      return fail(p.status().message() +
                  "; give a profile written by --record-profile, or --profile '' to mount "
                  "without one");
    } else {
      s = profile::CheckSource(*p, source_key, o.profile);
      if (!s.ok()) return fail(s.message());
      replayed = std::move(*p);
    }
  }
  if (replayed) {
    const profile::Profile* p = &*replayed;
    auto geo = RegionGeometry::Make(sb.image_size, c.metadata->region_size());
    if (!geo.ok()) return fail(geo.status().message());
    profile_order = profile::ToRegions(*p, *geo);
    // In this clone's regions, as status counts them (a profile recorded
    // with another region size was announced in its own units).
    rep->Note("hydrating the " + std::to_string(RegionCount(profile_order)) +
              " regions of profile " + o.profile + " first" +
              (p->region_size == geo->region_size()
                   ? std::string()
                   : " (recorded as " + std::to_string(p->regions()) + " regions of " +
                         std::to_string(p->region_size) + " bytes)"));
  }
  // A recording that could not be written at unmount refuses the mount too,
  // rather than be lost after the workload ran.
  if (!o.record_profile.empty()) {
    s = CheckRecordingTarget(o, c.dest_stat);
    if (!s.ok()) return fail(s.message());
    s = profile::CheckRecordable(o.record_profile);
    if (!s.ok()) {
      return fail(s.message() +
                  ": the access profile could not be written there; give --record-profile a "
                  "file in a writable directory, or --record-profile '' to mount without "
                  "recording");
    }
  }
  // A clone that was recording into this file before continues its recording
  // (SPEC §10: the order of *first* touches); starting over would replace
  // the file, at unmount, with this mount's touches only.
  std::vector<RegionRun> recorded_before;
  if (!o.record_profile.empty() && resolved->stored.record_profile == o.record_profile) {
    auto geo = RegionGeometry::Make(sb.image_size, c.metadata->region_size());
    if (!geo.ok()) return fail(geo.status().message());
    auto before = profile::RecordedSoFar(o.record_profile, source_key, *geo);
    if (before.ok()) {
      recorded_before = std::move(*before);
      if (!recorded_before.empty()) {
        rep->Note("continuing the access profile recorded in " + o.record_profile);
      }
    } else {
      rep->Note("starting a new recording in " + o.record_profile +
                " (what it holds cannot be continued: " + before.status().message() + ")");
    }
  } else if (!o.record_profile.empty()) {
    // A new recording into a file that exists (another clone's profile, or
    // one this clone replays elsewhere) replaces it at unmount: say so now.
    struct stat st;
    if (::stat(o.record_profile.c_str(), &st) == 0) {
      rep->Note("--record-profile " + o.record_profile +
                " exists: this clone's recording replaces it at unmount (copy it first to keep "
                "it)");
    }
  }
  // A transport this kernel cannot give refuses the mount before it is
  // stored too (the server checks again, with an io_uring, when it mounts).
  auto transport = ParseFuseTransport(o.fuse_transport);
  if (!transport.ok()) return fail(transport.status().message());
  if (*transport == FuseTransportMode::kUring) {
    const std::string off = KernelUringUnavailable();
    if (!off.empty()) return fail(UringTransportRefused(off).message());
  }
  s = StoreResolvedSettings(*resolved, c.metadata.get());
  if (!s.ok()) return fail(s.message());
  settings_stored = resolved->changed;
  if (!resolved->stored.empty()) {
    rep->Note("resuming with the settings stored with this clone: " +
              clone::DescribeSettings(resolved->stored) +
              " (an option given again replaces its setting; clonefs info shows them)");
  }
  const struct stat dest_st = c.dest_stat;
  // Outlives the engine's users: destroyed after hooks.stop and the engine.
  clone::SettingsStore settings(c.metadata.get(), resolved->to_store);
  // Set once the mount exists; the server outlives hooks.stop (below).
  std::atomic<FuseServer*> live_server{nullptr};
  ServeContext ctx{&o, c.metadata->superblock().uuid, &settings, [&live_server] {
                     FuseServer* s = live_server.load();
                     FuseStats st;
                     if (s != nullptr) return s->Stats();
                     st.passthrough = "starting";
                     return st;
                   }};

  EngineOptions eo;
  eo.knobs = o.knobs;
  eo.discard_passdown = o.discard_passdown;
  eo.copy_on_read = o.copy_on_read.value_or(IsSourceUri(o.source));
  eo.source_timeout_ns = o.source_timeout_ms * 1'000'000ull;
  eo.read_hints = o.read_hints;
  eo.profile_order = std::move(profile_order);
  eo.record_profile_path = o.record_profile;
  eo.recorded_before = std::move(recorded_before);
  eo.profile_source_size = source_key.size;
  eo.profile_source_fp1 = source_key.fp1;
  eo.profile_source_fp2 = source_key.fp2;
  // Another program's write to dest stops this engine; the record stops
  // every later mount too (the dest keeps its size and identity).
  eo.on_dest_written = [dir = o.metadata_dir](const std::string& change) {
    Status rs = clone::RecordDestWritten(dir, change);
    if (!rs.ok()) {
      CLONEFS_LOG_ERROR(
          "cannot record in %s that dest was written by another program (%s): "
          "a later mount will not know it",
          dir.c_str(), rs.ToString().c_str());
    }
  };
  // A loop device attached to dest while the clone is live (`losetup` given
  // dest instead of the exposed file): its writes make no events for the
  // watch of other writers, so its presence alone is the change.
  if (S_ISREG(dest_st.st_mode)) {
    eo.dest_bypass = [dev = dest_st.st_dev, ino = dest_st.st_ino]() -> std::string {
      const std::vector<std::string> loops = clone::LoopDevicesOver(dev, ino);
      if (loops.empty()) return "";
      return "is the backing file of loop device " + loops.front() +
             ", attached by another program";
    };
  }
  if (!o.on_complete.empty()) {
    on_complete = std::make_unique<OnCompleteCommand>(OnCompleteFor(o));
    eo.on_complete = [cmd = on_complete.get()] { cmd->Start(); };
  }
  auto opened_engine = Engine::Open(std::move(c.source), std::move(c.dest), std::move(c.metadata), eo);
  if (!opened_engine.ok()) {
    return fail(opened_engine.status().WithContext("cannot start the clone").message());
  }
  engine = std::move(*opened_engine);
  s = engine->Start();
  if (!s.ok()) return fail(s.WithContext("cannot start the clone").message());

  if (hooks.start) {
    s = hooks.start(engine.get(), ctx);
    if (!s.ok()) return fail(s.message());
  }

  FuseServerOptions so;
  so.mountpoint = o.mountpoint;
  so.fsname = o.metadata_dir;
  so.allow_other = o.allow_other;
  so.extra_options = o.fuse_options;
  so.max_threads = o.threads;
  so.fs.file_name = o.name;
  so.fs.mode = dest_st.st_mode & 07777;
  so.fs.uid = dest_st.st_uid;
  so.fs.gid = dest_st.st_gid;
  so.passthrough.enabled = o.passthrough;
  so.transport = *transport;
  so.transport_named_by = FuseTransportNamedBy(o.fuse_transport);
  if (o.passthrough && !o.record_profile.empty()) {
    // A passed-through open's reads never reach the engine's recorder.
    so.passthrough.unavailable =
        "an access profile is being recorded (--record-profile): every read must reach the "
        "daemon";
  } else if (o.passthrough) {
    OpenPassthroughBacking(o.dest, dest_st, engine->image_size(), &so.passthrough);
  }
  auto server = FuseServer::Mount(engine.get(), so);
  if (!server.ok()) {
    if (hooks.stop) hooks.stop();
    return fail(server.status().message() +
                (geteuid() != 0 && o.allow_other
                     ? "; for --allow-other as a non-root user, add user_allow_other to "
                       "/etc/fuse.conf"
                     : ""));
  }
  // Shown to people (status, the log): never a password from the URL.
  const std::string source_display = RedactSource(o.source);
  DaemonInfo info{
      getpid(), o.mountpoint, source_display, o.dest, o.metadata_dir, o.name, LogFilePath(), "",
      ""};
  Status w = WriteDaemonInfo(info);
  if (!w.ok()) CLONEFS_LOG_WARN("cannot record the daemon: %s", w.ToString().c_str());

  live_server.store(server->get());
  std::thread signals(SignalLoop, server->get(), &o);
  CLONEFS_LOG_INFO("mounted %s/%s (source %s, dest %s, metadata %s)", o.mountpoint.c_str(),
                   o.name.c_str(), source_display.c_str(), o.dest.c_str(), o.metadata_dir.c_str());
  rep->Mounted(o.name);
  if (hooks.mounted) hooks.mounted();

  Status served = (*server)->Serve();
  pthread_kill(signals.native_handle(), SIGUSR2);
  signals.join();
  if (hooks.stop) hooks.stop();
  server->reset();
  const Status profile_written = engine->ProfileWritten();
  engine.reset();  // releases the metadata lock; c.dest_lock goes at return
  // `clonefs unmount` reports both from the record (a lost recording is
  // not only a line in the log).
  if (!profile_written.ok()) info.profile_error = profile_written.ToString();
  if (!served.ok()) {
    CLONEFS_LOG_ERROR("final commit failed: %s", served.ToString().c_str());
    info.final_error = served.ToString();
    WriteDaemonInfo(info).ok();
    return kExitFailure;
  }
  if (info.profile_error.empty()) {
    RemoveDaemonInfo(o.metadata_dir);
  } else {
    WriteDaemonInfo(info).ok();
  }
  CLONEFS_LOG_INFO("unmounted %s; final commit done", o.mountpoint.c_str());
  return kExitOk;
}

// Parent side of a detached mount: relays the child's messages, then checks
// that the exposed file answers.
int WaitForDaemon(int fd, pid_t child, const MountOptions& o) {
  std::string buf;
  char chunk[512];
  ssize_t n;
  bool mounted = false, reported_error = false;
  std::string daemon_pid, log_file;
  std::string name = o.name;  // the daemon says which name it serves
  while (!mounted && ((n = read(fd, chunk, sizeof(chunk))) > 0 || (n < 0 && errno == EINTR))) {
    if (n > 0) buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while (!mounted && (nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line.size() < 2) continue;
      const std::string msg = line.substr(2);
      if (line[0] == 'N') fprintf(stderr, "clonefs: note: %s\n", msg.c_str());
      if (line[0] == 'E') {
        fprintf(stderr, "clonefs: error: %s\n", msg.c_str());
        reported_error = true;
      }
      if (line[0] == 'L') log_file = msg;
      if (line[0] == 'M') {
        mounted = true;
        const size_t space = msg.find(' ');
        daemon_pid = msg.substr(0, space);
        if (space != std::string::npos) name = msg.substr(space + 1);
      }
    }
  }
  close(fd);
  if (!mounted) {
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!reported_error) {
      const std::string where =
          !log_file.empty() ? "see its log " + log_file
          : SyslogAvailable() ? std::string("see its log in syslog (ident clonefs)")
                              : std::string("run the same command with --foreground to see why");
      fprintf(stderr,
              "clonefs: error: the daemon exited before the mount was ready (%s); %s\n",
              DescribeWaitStatus(status).c_str(), where.c_str());
    }
    return kExitFailure;
  }
  // The mount exists; the file must answer getattr before we say so.
  const std::string file = o.mountpoint + "/" + name;
  struct stat st;
  if (stat(file.c_str(), &st) != 0) {
    int err = errno;
    fprintf(stderr, "clonefs: error: mounted, but %s does not answer (%s); unmounting\n",
            file.c_str(), std::strerror(err));
    UnmountPath(o.mountpoint, /*lazy=*/true).ok();
    return kExitFailure;
  }
  printf("clonefs: mounted %s (%llu bytes; daemon pid %s; log: %s)\n", file.c_str(),
         static_cast<unsigned long long>(st.st_size), daemon_pid.c_str(),
         log_file.empty() ? (SyslogAvailable() ? "syslog" : "none") : log_file.c_str());
  fflush(stdout);
  return kExitOk;
}

}  // namespace

int RunMount(const MountOptions& in, const DaemonHooks& hooks) {
  MountOptions o = ResolveMountDefaults(in);
  {
    // The daemon runs from "/": a relative socket= would name another file.
    std::error_code ec;
    const std::filesystem::path cwd = std::filesystem::current_path(ec);
    if (!ec) o.source = WithAbsoluteQueryPaths(o.source, cwd.string());
  }
  // The control channel and `clonefs unmount` key on the canonical path.
  o.mountpoint = CanonicalPath(o.mountpoint);
  // Before logging opens --log-file or the metadata's log (SPEC §2: the
  // source is never written, not even by a log line).
  if (Status s = CheckWritesOffSource(o); !s.ok()) {
    fprintf(stderr, "clonefs: error: %s\n", s.message().c_str());
    return kExitFailure;
  }
  if (o.foreground) {
    // Every path is absolute now; never resolve anything relative to a
    // directory that could be (or come to be under) the mount.
    if (chdir("/") != 0) return kExitFailure;
    LogSetup log = SetUpLogging(o, /*detached=*/false);
    Reporter rep(-1, /*echo=*/!log.metadata_log);  // --log-file: stderr shows nothing else
    return ServeClone(o, log, hooks, &rep);
  }
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) {
    fprintf(stderr, "clonefs: error: pipe: %s\n", std::strerror(errno));
    return kExitFailure;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "clonefs: error: fork: %s\n", std::strerror(errno));
    return kExitFailure;
  }
  if (pid > 0) {
    close(p[1]);
    return WaitForDaemon(p[0], pid, o);
  }
  // Child: the daemon.
  close(p[0]);
  setsid();
  if (chdir("/") != 0) _exit(kExitFailure);
  int devnull = open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    dup2(devnull, STDIN_FILENO);
    dup2(devnull, STDOUT_FILENO);
    dup2(devnull, STDERR_FILENO);
    if (devnull > STDERR_FILENO) close(devnull);
  }
  CloseInheritedDescriptors(p[1]);
  LogSetup log = SetUpLogging(o, /*detached=*/true);
  Reporter rep(p[1], /*echo=*/false);
  _exit(ServeClone(o, log, hooks, &rep));
}

}  // namespace clonefs::fuse
