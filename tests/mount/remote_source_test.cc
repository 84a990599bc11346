// SPEC §9 through the real `clonefs` command: clones of NBD and HTTP sources
// served by real servers (nbdkit on a Unix socket, nginx on 127.0.0.1) that
// the tests start and stop: I/O while hydrating, an outage, a crashed and
// restarted server, a crashed daemon, a stalled server with a killed reader,
// an unmount that times out on a stalled server, a sparse source, and ext4
// over a loop device over an HTTP clone.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuse/runtime_info.h"
#include "mount/harness.h"
#include "mount/mount_test_util.h"
#include "mount/test_servers.h"

namespace clonefs::testing {
namespace {

using Json = nlohmann::json;

constexpr uint64_t kImage = 16ull << 20;
constexpr uint64_t kRegion = 64 * 1024;

class RemoteSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, kImage, 11);
    src_sha_ = Sha256(c_.src);
    sock_ = c_.dir() / "nbd.sock";
  }
  void TearDown() override {
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source must never change";
    }
  }

  // nbdkit serving c_.src (or `file`) through `filters` (each "--filter=X"
  // followed by its parameters after the file name).
  bool Serve(const std::vector<std::string>& filters, const std::vector<std::string>& params,
             const std::string& file = "") {
    std::vector<std::string> args = filters;
    args.push_back("file");
    args.push_back(file.empty() ? c_.src : file);
    args.insert(args.end(), params.begin(), params.end());
    server_ = std::make_unique<NbdkitServer>(sock_, args);
    return server_->Start();
  }
  // nginx (web_) serving a copy of c_.src as DIR/www/base.img, its mtime
  // set to 1000000000 s (nginx's ETag is the mtime and the size, so a new
  // file written now has another); the copy's path, or "" with a test
  // failure if nginx did not start.
  std::string ServeSourceOverHttp() {
    const std::string www = c_.dir() / "www";
    std::filesystem::create_directories(www);
    std::filesystem::create_directories(c_.dir() / "nginx");
    const std::string img = www + "/base.img";
    if (!ShOk("cp " + Quote(c_.src) + " " + Quote(img) + " && touch -d @1000000000 " +
              Quote(img))) {
      ADD_FAILURE() << "cannot copy the source into " << www;
      return "";
    }
    web_ = std::make_unique<NginxServer>(c_.dir() / "nginx", www);
    return web_->Start() ? img : "";
  }
  RunResult MountUri(const std::string& uri, const std::string& extra = "") {
    return Sh(ClonefsBinary() + " mount --log-file " + Quote(c_.log) + " --on-complete " +
              Quote("touch " + c_.done_flag) + " " + extra + " " + Quote(uri) + " " +
              Quote(c_.dst) + " " + Quote(c_.mnt));
  }
  // The `status --json` document, or null if status failed or printed
  // something that is not JSON.
  Json StatusJson() {
    RunResult r = Sh(ClonefsBinary() + " status --json " + Quote(c_.mnt));
    if (r.code != 0) return nullptr;
    return Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }
  // Field `key` of member object `obj` ("" for the top level), or null.
  Json StatusField(const std::string& obj, const std::string& key) {
    Json j = StatusJson();
    const Json* v = obj.empty() ? &j : (j.is_object() && j.contains(obj) ? &j[obj] : nullptr);
    if (v == nullptr || !v->is_object() || !v->contains(key)) return nullptr;
    return (*v)[key];
  }
  uint64_t StatusU64(const std::string& obj, const std::string& key) {
    Json v = StatusField(obj, key);
    return v.is_number_unsigned() ? v.get<uint64_t>() : 0;
  }
  std::string StatusString(const std::string& obj, const std::string& key) {
    Json v = StatusField(obj, key);
    return v.is_string() ? v.get<std::string>() : "";
  }
  // Waits up to 5 s for status's source_connection.state to be `state`.
  bool WaitSourceLink(const std::string& state) {
    for (int i = 0; i < 100; ++i) {
      if (StatusString("source_connection", "state") == state) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  void Message(const std::string& words) {
    EXPECT_TRUE(ShOk(ClonefsBinary() + " message " + Quote(c_.mnt) + " " + words));
  }
  // A child that reads 4 KiB of the exposed file at (i + 1) MiB; it exits 0
  // if it read them, 100 + errno if the read failed, 99 if it was short.
  pid_t StartReader(int i) {
    const pid_t reader = fork();
    if (reader == 0) {
      int fd = open(c_.exposed().c_str(), O_RDONLY);
      char buf[4096];
      const ssize_t n = pread(fd, buf, sizeof(buf), (1 << 20) * (i + 1));
      _exit(n == sizeof(buf) ? 0 : n < 0 ? 100 + errno : 99);
    }
    return reader;
  }
  // SIGKILLs `readers` and returns the seconds until every one was reaped.
  static double SecondsToKill(const std::vector<pid_t>& readers) {
    for (pid_t r : readers) kill(r, SIGKILL);
    const auto t0 = std::chrono::steady_clock::now();
    int st = 0;
    for (pid_t r : readers) waitpid(r, &st, 0);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  CloneDir c_;
  std::string src_sha_;
  std::string sock_;
  std::unique_ptr<NbdkitServer> server_;
  std::unique_ptr<NginxServer> web_;
};

// Writes and reads through the clone while it hydrates from an NBD source,
// against a model (source + writes), then the whole image after completion,
// in the exposed file and in dest after unmount.
TEST_F(RemoteSourceTest, NbdCloneServesIoWhileHydratingAndCompletes) {
  ASSERT_TRUE(Serve({"--filter=delay"}, {"rdelay=2ms"}));
  RunResult m = MountUri(server_->Uri(), "--rate 4M");
  ASSERT_EQ(m.code, 0) << m.out;
  std::vector<uint8_t> model = ReadAll(c_.src);
  ASSERT_EQ(model.size(), kImage);
  int fd = open(c_.exposed().c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 200; ++i) {
    const uint64_t off = rng() % (kImage - 70000);
    const size_t len = 1 + rng() % 70000;
    std::vector<uint8_t> buf(len);
    if (i % 3 == 0) {
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      ASSERT_EQ(pwrite(fd, buf.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
      std::copy(buf.begin(), buf.end(), model.begin() + static_cast<std::ptrdiff_t>(off));
    } else {
      ASSERT_EQ(pread(fd, buf.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
      ASSERT_TRUE(std::equal(buf.begin(), buf.end(), model.begin() + static_cast<std::ptrdiff_t>(off)))
          << "read " << len << " at " << off;
    }
  }
  ASSERT_EQ(fsync(fd), 0);
  close(fd);
  EXPECT_EQ(StatusString("source_connection", "state"), "connected");
  Message("rate 0");
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  EXPECT_TRUE(ReadAll(c_.exposed()) == model);
  // Complete: the source is released, so the server can be stopped while
  // the clone stays mounted (nbdkit waits for its clients otherwise), and
  // the clone does not care that it is gone.
  EXPECT_TRUE(WaitSourceLink("released")) << StatusJson().dump();
  EXPECT_TRUE(server_->StopWithin(10)) << "nbdkit kept waiting for clonefs";
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(StatusString("source_connection", "state"), "released");
  EXPECT_EQ(StatusString("", "health"), "ok");
  EXPECT_TRUE(ReadAll(c_.exposed()) == model);
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_TRUE(ReadAll(c_.dst) == model) << "dest after unmount";
}

// An outage (the server answers EIO to everything for 3 s) mid-hydration:
// the copier pauses as a whole, nothing wrong is marked, and the clone
// completes equal to the source once the server is back.
TEST_F(RemoteSourceTest, OutageMidHydrationRecoversAndMarksNothingWrong) {
  const std::string flag = c_.dir() / "outage";
  ASSERT_TRUE(Serve({"--filter=error", "--filter=delay"},
                    {"error=EIO", "error-rate=100%", "error-file=" + flag, "rdelay=1ms"}));
  RunResult m = MountUri(server_->Uri(), "--rate 8M");
  ASSERT_EQ(m.code, 0) << m.out;
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  { std::ofstream(flag).put('x'); }
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const uint64_t failures_during = StatusU64("failures", "copy");
  std::filesystem::remove(flag);
  // One source-wide backoff, not a sweep over the 256 regions.
  EXPECT_LT(failures_during, 100u) << "the copier swept the regions during the outage";
  Message("rate 0");
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_EQ(Sha256(c_.dst), Sha256(c_.src));
}

// nbdkit killed with SIGKILL mid-hydration and started again on the same
// socket: the clone reconnects by itself, status counts the reconnect, and
// the result equals the source.
TEST_F(RemoteSourceTest, ServerKilledAndRestartedIsReconnected) {
  ASSERT_TRUE(Serve({"--filter=delay"}, {"rdelay=5ms"}));
  RunResult m = MountUri(server_->Uri(), "--rate 8M --source-timeout 20");
  ASSERT_EQ(m.code, 0) << m.out;
  std::this_thread::sleep_for(std::chrono::seconds(1));
  server_->Kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(StatusString("source_connection", "state"), "reconnecting");
  // A reader of an unhydrated region waits for the server instead of failing.
  std::thread reader([&] {
    RunResult r = Sh("dd if=" + Quote(c_.exposed()) + " of=/dev/null bs=64K count=1 skip=" +
                     std::to_string(kImage / kRegion - 1) + " iflag=direct status=none");
    EXPECT_EQ(r.code, 0) << r.out;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  ASSERT_TRUE(server_->Start());
  reader.join();
  Message("rate 0");
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  EXPECT_GE(StatusU64("source_connection", "reconnects"), 1u);
  // Complete: the connections are closed (released), not reconnecting.
  EXPECT_TRUE(WaitSourceLink("released")) << StatusJson().dump();
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_EQ(Sha256(c_.dst), Sha256(c_.src));
}

// SPEC §7a: the server comes back after a crash serving other content of
// the same size. Nothing of it may reach a reader or dest: the source is
// checked again (size and fingerprints) before the new connection serves
// anything, the clone reports source-changed, and copying never starts.
TEST_F(RemoteSourceTest, ServerRestartedWithOtherContentIsNeverMixedIn) {
  ASSERT_TRUE(Serve({}, {}));
  RunResult m = MountUri(server_->Uri(), "--no-hydration --source-timeout 10");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::vector<uint8_t> src = ReadAll(c_.src);
  ASSERT_EQ(src.size(), kImage);
  const std::string other = c_.dir() / "other.img";
  WriteRandomFile(other, kImage, 99);
  const std::vector<uint8_t> theirs = ReadAll(other);
  server_->Kill9();
  ASSERT_TRUE(Serve({}, {}, other));  // the same socket, other content

  // A reader of an unhydrated region gets EIO, never the other bytes.
  const std::string got = c_.dir() / "got";
  RunResult r = Sh("dd if=" + Quote(c_.exposed()) + " of=" + Quote(got) +
                   " bs=64K count=1 skip=5 iflag=direct status=none 2>&1");
  EXPECT_NE(r.code, 0) << "a read after the restart succeeded";
  for (int i = 0; i < 100 && StatusString("", "state") != "source-changed"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(StatusString("", "state"), "source-changed");
  EXPECT_NE(StatusString("", "source_change").find("fingerprint"), std::string::npos)
      << StatusString("", "source_change");
  // The link is up again, but status does not call the source connected.
  EXPECT_EQ(StatusString("source_connection", "state"), "changed");
  EXPECT_NE(StatusString("source_connection", "change").find("fingerprint"), std::string::npos)
      << StatusString("source_connection", "change");
  RunResult human = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  EXPECT_NE(human.out.find("Source link:  changed since "), std::string::npos) << human.out;
  // Copying asked for now must not start.
  Message("enable_hydration");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(StatusU64("regions", "hydrated"), 0u);
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_NE(c_.LogText().find("not the same after reconnecting"), std::string::npos)
      << c_.LogText();
  // dest holds none of the other content.
  const std::vector<uint8_t> dst = ReadAll(c_.dst);
  for (uint64_t off = 0; off + kRegion <= dst.size(); off += kRegion) {
    EXPECT_NE(std::memcmp(dst.data() + off, theirs.data() + off, kRegion), 0)
        << "dest holds the other server's bytes at " << off;
  }
}

// The daemon killed with SIGKILL: mounting again (on the stale mount point)
// resumes, and regions committed before the crash are not read again.
TEST_F(RemoteSourceTest, DaemonKilledResumesWithoutRecopying) {
  const std::string stats1 = c_.dir() / "stats1", stats2 = c_.dir() / "stats2";
  ASSERT_TRUE(Serve({"--filter=stats"}, {"statsfile=" + stats1}));
  RunResult m = MountUri(server_->Uri(), "--rate 4M");
  ASSERT_EQ(m.code, 0) << m.out;
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  server_->Stop();
  const int64_t committed = HydratedRegions(c_.metadata);
  ASSERT_GT(committed, 0) << "nothing was committed in 2 s";
  ASSERT_LT(committed, static_cast<int64_t>(kImage / kRegion));

  ASSERT_TRUE(Serve({"--filter=stats"}, {"statsfile=" + stats2}));
  RunResult again = MountUri(server_->Uri());
  ASSERT_EQ(again.code, 0) << again.out;
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  server_->Stop();
  EXPECT_EQ(Sha256(c_.dst), Sha256(c_.src));
  const int64_t read2 = StatsBytesRead(stats2);
  const int64_t left = static_cast<int64_t>(kImage) - committed * static_cast<int64_t>(kRegion);
  // What was left, plus the identity samples (320 KiB) and rounding.
  EXPECT_LE(read2, left + (512 << 10)) << "committed regions were read again";
}

// SPEC §5/§9: the clone is bound to the export and its content, not to the
// way it is reached: unmounted, then mounted through another socket path,
// it resumes; `info` and `check` work while the server is down (they never
// contact a remote source unless asked), and `check --source URI` compares.
TEST_F(RemoteSourceTest, ResumesThroughAnotherSocketAndWorksOffline) {
  ASSERT_TRUE(Serve({}, {}));
  const std::string recorded_uri = server_->Uri();  // the clone keeps its first URI
  RunResult m = MountUri(server_->Uri(), "--rate 4M");
  ASSERT_EQ(m.code, 0) << m.out;
  std::this_thread::sleep_for(std::chrono::seconds(1));
  ASSERT_EQ(c_.Unmount().code, 0);
  const int64_t before = HydratedRegions(c_.metadata);
  ASSERT_GT(before, 0);
  server_->Stop();

  RunResult info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  EXPECT_EQ(info.code, 0) << info.out;
  EXPECT_NE(info.out.find(server_->Uri()), std::string::npos) << info.out;
  RunResult check = Sh(ClonefsBinary() + " check " + Quote(c_.dst));
  EXPECT_EQ(check.code, 0) << check.out;
  EXPECT_NE(check.out.find("remote; not contacted"), std::string::npos) << check.out;

  sock_ = c_.dir() / "other.sock";
  ASSERT_TRUE(Serve({}, {}));
  RunResult asked = Sh(ClonefsBinary() + " check --source " + Quote(server_->Uri()) + " " +
                       Quote(c_.dst));
  EXPECT_EQ(asked.code, 0) << asked.out;
  EXPECT_NE(asked.out.find("identity matches"), std::string::npos) << asked.out;
  RunResult again = MountUri(server_->Uri());
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_EQ(again.out.find("new clone"), std::string::npos) << again.out;
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  EXPECT_TRUE(WaitSourceLink("released")) << StatusJson().dump();
  RunResult human = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  EXPECT_NE(human.out.find("Source link:  released since"), std::string::npos) << human.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_EQ(Sha256(c_.dst), Sha256(c_.src));

  // Complete, it mounts with its server gone: it no longer reads it. (Named
  // as recorded: an unreachable URI it does not know is refused.)
  server_->Stop();
  RunResult unknown = MountUri(server_->Uri());
  EXPECT_EQ(unknown.code, 1) << unknown.out;
  EXPECT_NE(unknown.out.find("cannot connect"), std::string::npos) << unknown.out;
  RunResult alone = MountUri(recorded_uri);
  ASSERT_EQ(alone.code, 0) << alone.out;
  EXPECT_NE(alone.out.find("no longer reads it: mounting without it"), std::string::npos)
      << alone.out;
  EXPECT_EQ(StatusString("source_connection", "state"), "released");
  EXPECT_EQ(StatusString("", "health"), "ok");
  EXPECT_EQ(Sha256(c_.exposed()), Sha256(c_.src));
  ASSERT_EQ(c_.Unmount().code, 0);

  // Other content behind an export of the same size is refused.
  const std::string other = c_.dir() / "other.img";
  WriteRandomFile(other, kImage, 99);
  ASSERT_TRUE(Serve({}, {}, other));
  RunResult refused = MountUri(server_->Uri());
  EXPECT_EQ(refused.code, 1) << refused.out;
  EXPECT_NE(refused.out.find("fingerprint differs"), std::string::npos) << refused.out;
}

// A socket named relative to where `clonefs mount` runs is that socket: the
// daemon runs from "/", and the mount used to fail with "connect: No such
// file or directory" beside a listening socket. Status names it absolutely.
TEST_F(RemoteSourceTest, RelativeSocketPathIsTheOneBesideTheUser) {
  ASSERT_TRUE(Serve({}, {}));
  RunResult m =
      Sh("cd " + Quote(c_.dir().path()) + " && " + ClonefsBinary() + " mount --log-file " +
         Quote(c_.log) + " --no-hydration 'nbd+unix:///?socket=nbd.sock' " + Quote(c_.dst) + " " +
         Quote(c_.mnt));
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_EQ(StatusString("", "source"), server_->Uri()) << StatusJson().dump();
  EXPECT_EQ(Sha256(c_.exposed()), src_sha_);
  // A reconnect goes to the same socket.
  server_->Kill9();
  ASSERT_TRUE(Serve({}, {}));
  bool reconnected = false;
  for (int i = 0; i < 100 && !reconnected; ++i) {
    reconnected = StatusU64("source_connection", "reconnects") > 0 &&
                  StatusString("source_connection", "state") == "connected";
    if (!reconnected) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(reconnected) << StatusJson().dump();
  ASSERT_EQ(c_.Unmount().code, 0);
}

// A stalled server (SIGSTOP): a reader killed while it waits exits at once
// (FUSE INTERRUPT answered); another reader gets EIO after the source
// timeout, and status says the source is stalled.
TEST_F(RemoteSourceTest, StalledServerNeverHangsReaders) {
  ASSERT_TRUE(Serve({}, {}));
  RunResult m = MountUri(server_->Uri(), "--no-hydration --source-timeout 2");
  ASSERT_EQ(m.code, 0) << m.out;
  server_->Pause();
  const pid_t reader = StartReader(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  int st = 0;
  EXPECT_EQ(waitpid(reader, &st, WNOHANG), 0) << "the reader should be waiting for the source";
  kill(reader, SIGKILL);
  pid_t done = 0;
  for (int i = 0; i < 100 && done == 0; ++i) {  // up to 1 s
    done = waitpid(reader, &st, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(done, reader) << "a killed reader must not hang on a stalled source";
  if (done != reader) waitpid(reader, &st, 0);

  const auto t0 = std::chrono::steady_clock::now();
  RunResult r = Sh("dd if=" + Quote(c_.exposed()) +
                   " of=/dev/null bs=4k count=1 skip=700 iflag=direct 2>&1");
  const double waited =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("Input/output error"), std::string::npos) << r.out;
  EXPECT_LT(waited, 30.0) << "the source timeout (2 s) bounds the wait";
  EXPECT_EQ(StatusString("source_connection", "state"), "stalled");
  server_->Resume();
  std::vector<uint8_t> head(4096);
  int fd = open(c_.exposed().c_str(), O_RDONLY);
  ASSERT_EQ(pread(fd, head.data(), head.size(), 0), 4096);
  close(fd);
  std::vector<uint8_t> src = ReadAll(c_.src);
  EXPECT_TRUE(std::equal(head.begin(), head.end(), src.begin())) << "reads work again";
  ASSERT_EQ(c_.Unmount().code, 0);
}

// A reader and a writer that get a signal they handle while they wait for
// the source (a slow or paused server) get their data, as from a disk: the
// kernel's INTERRUPT for a signal that does not kill them cancels nothing.
// Before, both failed with EINTR ("Interrupted system call"), SA_RESTART or
// not. Killing one afterwards still ends its wait at once.
namespace handled_signal {
volatile sig_atomic_t got = 0;
void OnUsr1(int) { got = 1; }
}  // namespace handled_signal

TEST_F(RemoteSourceTest, ASignalTheRequesterHandlesDoesNotFailItsRequest) {
  ASSERT_TRUE(Serve({}, {}));
  RunResult m = MountUri(server_->Uri(), "--no-hydration --no-copy-on-read --source-timeout 20");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::vector<uint8_t> src = ReadAll(c_.src);
  // Child: handles SIGUSR1, then reads (write=false) or partly writes (which
  // hydrates first) an unhydrated region; exit 0 only on full success.
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  auto start = [&](bool write, uint64_t off) {
    pid_t pid = fork();
    if (pid == 0) {
      struct sigaction sa = {};
      sa.sa_handler = handled_signal::OnUsr1;
      sa.sa_flags = SA_RESTART;
      sigaction(SIGUSR1, &sa, nullptr);
      int fd = open(c_.exposed().c_str(), O_RDWR);
      (void)!::write(ready[1], "r", 1);  // the handler is in place
      char buf[100];
      memset(buf, 0x5a, sizeof(buf));
      ssize_t n = write ? pwrite(fd, buf, sizeof(buf), static_cast<off_t>(off))
                        : pread(fd, buf, sizeof(buf), static_cast<off_t>(off));
      if (n != static_cast<ssize_t>(sizeof(buf))) _exit(10 + (n < 0 ? errno % 100 : 0));
      if (!write && memcmp(buf, src.data() + off, sizeof(buf)) != 0) _exit(2);
      _exit(handled_signal::got ? 0 : 3);
    }
    return pid;
  };
  auto waiting = [](pid_t pid) {  // without reaping it
    siginfo_t info = {};
    return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == 0;
  };
  server_->Pause();
  struct ResumeOnExit {  // a failed assertion must not leave the server stopped
    NbdkitServer* s;
    ~ResumeOnExit() { s->Resume(); }
  } resume_on_exit{server_.get()};
  const pid_t reader = start(false, (1 << 20) + 10);
  const pid_t writer = start(true, (2 << 20) + 10);
  const pid_t killed = start(false, (3 << 20) + 10);
  char r[3];
  for (size_t got = 0; got < sizeof(r);) {
    const ssize_t n = read(ready[0], r + got, sizeof(r) - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(ready[0]);
  close(ready[1]);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));  // into their requests
  for (pid_t p : {reader, writer, killed}) {
    EXPECT_TRUE(waiting(p)) << "every request should be waiting for the paused server";
    kill(p, SIGUSR1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_TRUE(waiting(reader)) << "a handled signal must not end the read";
  EXPECT_TRUE(waiting(writer)) << "a handled signal must not end the write";
  // Killed after its interrupt was let go: no second INTERRUPT comes.
  kill(killed, SIGKILL);
  pid_t done = 0;
  int st = 0;
  for (int i = 0; i < 100 && done == 0; ++i) {  // up to 1 s
    done = waitpid(killed, &st, WNOHANG);
    if (done == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(done, killed) << "a reader killed after a handled signal must not hang";
  if (done != killed) waitpid(killed, &st, 0);
  server_->Resume();
  for (pid_t p : {reader, writer}) {
    EXPECT_EQ(waitpid(p, &st, 0), p);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
        << (p == reader ? "reader" : "writer") << " exit status " << WEXITSTATUS(st)
        << " (10 + errno: the request failed; 14 = EINTR)";
  }
  std::vector<uint8_t> img = ReadAll(c_.exposed());
  EXPECT_EQ(img.size(), src.size());
  if (img.size() == src.size()) {
    EXPECT_EQ(img[(2 << 20) + 10], 0x5a) << "the write landed";
    EXPECT_EQ(img[(2 << 20) + 9], src[(2 << 20) + 9]);
  }
  EXPECT_EQ(c_.Unmount().code, 0);
}

// Every /dev/fuse worker waiting for a stalled server (--threads 2, four
// readers): readers killed then still exit at once. Nobody read /dev/fuse
// any more, so the kernel's INTERRUPTs waited and every killed reader with
// them, for the whole source timeout (20 s here); now the pool adds a worker
// beyond --threads when all have been busy for half a second.
TEST_F(RemoteSourceTest, KilledReadersExitWhenEveryWorkerWaitsForTheSource) {
  ASSERT_TRUE(Serve({}, {}));
  RunResult m = MountUri(server_->Uri(),
                         "--fuse-transport dev --threads 2 --no-hydration --no-copy-on-read "
                         "--no-read-hints --source-timeout 20");
  ASSERT_EQ(m.code, 0) << m.out;
  server_->Pause();
  std::vector<pid_t> readers;
  for (int i = 0; i < 4; ++i) readers.push_back(StartReader(i));
  // Long enough for both workers (and the readers added for interrupts) to
  // take a read each; the readers must still be waiting then.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  int st = 0;
  for (pid_t r : readers) {
    EXPECT_EQ(waitpid(r, &st, WNOHANG), 0)
        << "should wait for the source; exit status " << WEXITSTATUS(st);
  }
  EXPECT_LT(SecondsToKill(readers), 5.0) << "killed readers waited for the source timeout (20 s)";
  server_->Resume();
  ASSERT_EQ(c_.Unmount().code, 0);
}

// The same over either transport, with the readers killed being the ones
// queued behind two busy workers (--threads 2: two readers first, then two
// more). Over io_uring the kernel had already handed the later two to the
// daemon, where they waited for a worker: killed, they waited with them for
// the whole source timeout (20 s here), their INTERRUPTs held by libfuse
// until a worker ran their requests. Now an interrupted request that waits
// for a worker gets one at once.
TEST_F(RemoteSourceTest, KilledReadersQueuedBehindBusyWorkersExitAtOnce) {
  ASSERT_TRUE(Serve({}, {}));
  RunResult m = MountUri(server_->Uri(),
                         "--threads 2 --no-hydration --no-copy-on-read --no-read-hints "
                         "--source-timeout 20");
  ASSERT_EQ(m.code, 0) << m.out;
  server_->Pause();
  struct ResumeOnExit {  // a failed assertion must not leave the server stopped
    NbdkitServer* s;
    ~ResumeOnExit() { s->Resume(); }
  } resume_on_exit{server_.get()};
  const pid_t busy[2] = {StartReader(0), StartReader(1)};
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // both workers wait
  const std::vector<pid_t> queued = {StartReader(2), StartReader(3)};
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  int st = 0;
  for (pid_t r : {busy[0], busy[1], queued[0], queued[1]}) {
    EXPECT_EQ(waitpid(r, &st, WNOHANG), 0)
        << "should wait for the source; exit status " << WEXITSTATUS(st);
  }
  EXPECT_LT(SecondsToKill(queued), 5.0) << "killed readers waited for the source timeout (20 s)";
  server_->Resume();
  for (pid_t r : busy) {
    EXPECT_EQ(waitpid(r, &st, 0), r);
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "exit status " << WEXITSTATUS(st);
  }
  ASSERT_EQ(c_.Unmount().code, 0);
}

// `clonefs unmount --timeout` on a stalled server: the unmount succeeds but
// the daemon cannot exit while its copier's reads wait for the server. The
// command says that -- the source has not answered, the reads give up after
// the source timeout, nothing is lost, get the source answering -- rather
// than that the final commit is slow; and that advice holds: once the
// server answers, the daemon commits and exits well before the timeout.
TEST_F(RemoteSourceTest, UnmountTimingOutOnAStalledSourceSaysWhy) {
  ASSERT_TRUE(Serve({}, {}));
  RunResult m = MountUri(server_->Uri(), "--rate 1M --source-timeout 15");
  ASSERT_EQ(m.code, 0) << m.out;
  const int pid = c_.DaemonPid();
  ASSERT_GT(pid, 0);
  server_->Pause();
  // Until one of the copier's reads waits for the stopped server.
  bool waiting = false;
  for (int i = 0; i < 100 && !waiting; ++i) {
    waiting = StatusField("source_connection", "oldest_request_unix_s").is_number_unsigned();
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(waiting) << "no read waits for the stopped server";

  RunResult u = c_.Unmount("--timeout 2");
  EXPECT_EQ(u.code, 1) << u.out;
  EXPECT_FALSE(c_.IsMounted());
  EXPECT_NE(u.out.find("has not exited after 2 s: it is waiting for reads from the source " +
                       server_->Uri() + ", which has not answered for "),
            std::string::npos)
      << u.out;
  // (", about N s from now" follows while the reads have waited less than
  // the timeout: on a loaded machine they may have waited longer already;
  // unmount_messages_test checks that part.)
  EXPECT_NE(u.out.find("the source timeout (15 s"), std::string::npos) << u.out;
  EXPECT_NE(u.out.find("get the source answering again"), std::string::npos) << u.out;
  EXPECT_EQ(u.out.find("has not finished its final commit"), std::string::npos) << u.out;

  const auto resumed = std::chrono::steady_clock::now();
  server_->Resume();
  for (int i = 0; i < 600 && fuse::IsClonefsProcess(pid); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(fuse::IsClonefsProcess(pid)) << "the daemon did not exit";
  EXPECT_LT(std::chrono::steady_clock::now() - resumed, std::chrono::seconds(8))
      << "the daemon waited for the source timeout although the source answered";
  EXPECT_NE(c_.LogText().find("final commit done"), std::string::npos) << c_.LogText();
}

// A sparse source: NBD block status tells the holes, which are never read;
// dest allocates about the data.
TEST_F(RemoteSourceTest, SparseSourceHolesAreNotRead) {
  const std::string sparse = c_.dir() / "sparse.img";
  const uint64_t size = 512ull << 20, data = 4ull << 20;
  {
    int fd = open(sparse.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    std::mt19937_64 rng(3);
    std::vector<uint8_t> buf(1 << 20);
    for (uint64_t i = 0; i < data / buf.size(); ++i) {
      for (auto& b : buf) b = static_cast<uint8_t>(rng() | 1);
      const off_t off = static_cast<off_t>(i * (size / (data / buf.size())));
      ASSERT_EQ(pwrite(fd, buf.data(), buf.size(), off), static_cast<ssize_t>(buf.size()));
    }
    close(fd);
  }
  const std::string stats = c_.dir() / "stats";
  ASSERT_TRUE(Serve({"--filter=stats"}, {"statsfile=" + stats}, sparse));
  RunResult m = MountUri(server_->Uri());
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(c_.WaitComplete(120)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  server_->Stop();
  const int64_t read = StatsBytesRead(stats);
  EXPECT_LE(read, static_cast<int64_t>(data * 105 / 100 + (320 << 10)))
      << "holes were read from the source";
  struct stat st;
  ASSERT_EQ(stat(c_.dst.c_str(), &st), 0);
  EXPECT_LE(static_cast<uint64_t>(st.st_blocks) * 512, data + (4 << 20)) << "dest allocation";
  EXPECT_EQ(Sha256(c_.dst), Sha256(sparse));
}

// An HTTP source served by nginx (clonefs starts nbdkit's curl plugin
// itself): ext4 on a loop device over the clone, used before hydration ends,
// and a clean file system and identical files afterwards.
TEST_F(RemoteSourceTest, HttpSourceWithExt4OverLoop) {
  const std::string www = c_.dir() / "www", content = c_.dir() / "content";
  std::filesystem::create_directories(www);
  std::filesystem::create_directories(content);
  WriteRandomFile(content + "/a.bin", 3 << 20, 21);
  WriteRandomFile(content + "/b.bin", 5 << 20, 22);
  const std::string img = www + "/base.img";
  ASSERT_TRUE(ShOk("truncate -s 64M " + Quote(img) + " && mkfs.ext4 -q -F -d " + Quote(content) +
                   " " + Quote(img)));
  NginxServer web(c_.dir() / "nginx", www);
  std::filesystem::create_directories(c_.dir() / "nginx");
  ASSERT_TRUE(web.Start());
  RunResult m = MountUri(web.Url("base.img"), "--rate 8M");
  ASSERT_EQ(m.code, 0) << m.out;
  const std::string loop = c_.AttachLoop();
  ASSERT_FALSE(loop.empty());
  const std::string fsmnt = c_.dir() / "fs";
  std::filesystem::create_directories(fsmnt);
  ASSERT_TRUE(ShOk("mount " + loop + " " + Quote(fsmnt)));
  EXPECT_EQ(Sha256(fsmnt + "/a.bin"), Sha256(content + "/a.bin"));
  EXPECT_EQ(Sha256(fsmnt + "/b.bin"), Sha256(content + "/b.bin"));
  WriteRandomFile(fsmnt + "/new.bin", 1 << 20, 23);
  const std::string new_sha = Sha256(fsmnt + "/new.bin");
  ASSERT_TRUE(ShOk("umount " + Quote(fsmnt)));
  c_.DetachLoop(loop);
  Message("rate 0");
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  web.Stop();
  RunResult fsck = Sh("e2fsck -fn " + Quote(c_.dst));
  EXPECT_EQ(fsck.code, 0) << fsck.out;
  RunResult cat = Sh("debugfs -R 'cat /new.bin' " + Quote(c_.dst) + " 2>/dev/null | sha256sum");
  EXPECT_EQ(cat.out.substr(0, 64), new_sha);
}

// SPEC §7a over HTTP: the file under the URL replaced by other content of
// the same size while the clone copies. The copier used to go on copying
// the new file's regions until the next fingerprint re-check, 10 s later (a
// clone of two files, "complete" if it ended first). Every request carries
// the file's ETag now: the web server refuses those for the new file,
// nothing of it reaches a reader or dest, status says the source changed,
// naming the ETag, and neither readers nor unmount wait for the refused
// reads.
TEST_F(RemoteSourceTest, HttpFileReplacedUnderTheUrlIsNeverMixedIn) {
  const std::string img = ServeSourceOverHttp();
  ASSERT_FALSE(img.empty());
  const std::string www = c_.dir() / "www";
  RunResult m = MountUri(web_->Url("base.img"), "--rate 2M --source-timeout 20");
  ASSERT_EQ(m.code, 0) << m.out;
  for (int i = 0; i < 100 && StatusU64("regions", "hydrated") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GT(StatusU64("regions", "hydrated"), 0u);
  EXPECT_EQ(StatusString("source_connection", "guard"), "If-Match: \"3b9aca00-1000000\"")
      << "nginx's ETag: the mtime and the size in hex";
  const std::string next = www + "/next.img";
  WriteRandomFile(next, kImage, 98);
  const std::vector<uint8_t> theirs = ReadAll(next);
  ASSERT_EQ(std::rename(next.c_str(), img.c_str()), 0);

  for (int i = 0; i < 150 && StatusString("", "state") != "source-changed"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(StatusString("", "state"), "source-changed") << c_.LogText();
  const auto found = std::chrono::steady_clock::now();
  EXPECT_NE(StatusString("", "source_change").find("now gives ETag"), std::string::npos)
      << StatusString("", "source_change");
  EXPECT_LT(StatusU64("regions", "hydrated"), kImage / kRegion) << "it completed";
  // Every region reads as the original or fails; none as the new file.
  const std::vector<uint8_t> src = ReadAll(c_.src);
  int fd = open(c_.exposed().c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0);
  void* mem = nullptr;
  ASSERT_EQ(posix_memalign(&mem, 4096, kRegion), 0);
  std::unique_ptr<void, decltype(&free)> buf(mem, &free);
  int readable = 0, failed = 0;
  for (uint64_t off = 0; off < kImage; off += kRegion) {
    if (pread(fd, buf.get(), kRegion, static_cast<off_t>(off)) != static_cast<ssize_t>(kRegion)) {
      ++failed;
      continue;
    }
    ++readable;
    EXPECT_EQ(std::memcmp(buf.get(), src.data() + off, kRegion), 0) << "at " << off;
  }
  close(fd);
  EXPECT_GT(readable, 0);
  EXPECT_GT(failed, 0);
  ASSERT_EQ(c_.Unmount().code, 0);
  // The copier's reads that the server refuses are not waited for (by a
  // reader of their region, or the unmount): the connections to a changed
  // source are closed.
  EXPECT_LT(std::chrono::steady_clock::now() - found, std::chrono::seconds(10))
      << "reads of the changed source were waited for (source timeout 20 s)";
  const std::vector<uint8_t> dst = ReadAll(c_.dst);
  for (uint64_t off = 0; off + kRegion <= dst.size(); off += kRegion) {
    EXPECT_NE(std::memcmp(dst.data() + off, theirs.data() + off, kRegion), 0)
        << "dest holds the new file's bytes at " << off;
  }
}

// A file replaced on the web server while the clone was unmounted, by a
// new build whose only change (4 KiB at 3 MiB) lies between the samples the
// mount compares: the remount used to resume and mix the two files. The
// clone records the server's Last-Modified date now, like a file's mtime:
// the remount is refused with the date to give the file back if it is
// unchanged, and the original file put back resumes to the right bytes.
TEST_F(RemoteSourceTest, HttpFileReplacedWhileUnmountedIsRefused) {
  const std::string img = ServeSourceOverHttp();
  ASSERT_FALSE(img.empty());
  const std::string www = c_.dir() / "www";
  RunResult m = MountUri(web_->Url("base.img"), "--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(ShOk("dd if=" + Quote(c_.exposed()) + " of=/dev/null bs=1M count=2 status=none"));
  ASSERT_EQ(c_.Unmount().code, 0);

  // 3 MiB: between fp2's samples 5 and 6 of a 16 MiB image (identity.h).
  ASSERT_TRUE(ShOk("cp " + Quote(c_.src) + " " + Quote(www + "/next.img") +
                   " && dd if=/dev/urandom of=" + Quote(www + "/next.img") +
                   " bs=4k count=1 seek=768 conv=notrunc status=none && touch -d @1000000100 " +
                   Quote(www + "/next.img") + " && mv " + Quote(www + "/next.img") + " " +
                   Quote(img)));
  RunResult again = MountUri(web_->Url("base.img"));
  EXPECT_NE(again.code, 0) << "a replaced file was resumed from: " << again.out;
  EXPECT_NE(again.out.find("source mtime: metadata has 1000000000000000000 ns, file has "
                           "1000000100000000000 ns"),
            std::string::npos)
      << again.out;
  EXPECT_NE(again.out.find("Last-Modified date for it differs"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("touch -m -d @1000000000 FILE"), std::string::npos) << again.out;
  EXPECT_FALSE(c_.IsMounted());

  ASSERT_TRUE(
      ShOk("cp " + Quote(c_.src) + " " + Quote(img) + " && touch -d @1000000000 " + Quote(img)));
  RunResult back = MountUri(web_->Url("base.img"));
  ASSERT_EQ(back.code, 0) << back.out;
  Message("enable_hydration");  // --no-hydration is stored with the clone
  ASSERT_TRUE(c_.WaitComplete(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_EQ(Sha256(c_.dst), Sha256(c_.src));
}

// An HTTP URL that the server answers with 404: the mount fails and says so
// (nbdkit's reason, which only reached its standard error before).
TEST_F(RemoteSourceTest, HttpNotFoundNamesTheStatus) {
  const std::string www = c_.dir() / "www";
  std::filesystem::create_directories(www);
  std::filesystem::create_directories(c_.dir() / "nginx");
  NginxServer web(c_.dir() / "nginx", www);
  ASSERT_TRUE(web.Start());
  RunResult m = Sh(ClonefsBinary() + " mount --fuse-transport dev " + Quote(web.Url("nosuch.img")) +
                   " " + Quote(c_.dst) + " " + Quote(c_.mnt));
  EXPECT_NE(m.code, 0);
  EXPECT_NE(m.out.find("404"), std::string::npos) << m.out;
  EXPECT_NE(m.out.find("check the URL"), std::string::npos) << m.out;
  EXPECT_FALSE(c_.IsMounted());
}

// The text of every process's command line, NULs as spaces.
std::string AllCommandLines() {
  std::string all;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::replace(text.begin(), text.end(), '\0', ' ');
    all += name + ": " + text + "\n";
  }
  return all;
}

std::string FileText(const std::string& path) {
  std::ifstream f(path);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// A password in an HTTP URL is used (nbdkit gets it on a descriptor) but
// never shown: not in status (text and JSON), the log, the daemon record,
// the mount table, nor any process's command line (the daemon's, nbdkit's).
// A signed URL's signature (a query value) is shown nowhere clonefs shows
// the URL either; only nbdkit's own command line holds it (its url=).
TEST_F(RemoteSourceTest, HttpPasswordIsNeverShown) {
  const std::string www = c_.dir() / "www";
  std::filesystem::create_directories(www);
  std::filesystem::create_directories(c_.dir() / "nginx");
  ASSERT_TRUE(ShOk("cp " + Quote(c_.src) + " " + Quote(www + "/src.img")));
  NginxServer web(c_.dir() / "nginx", www);
  ASSERT_TRUE(web.Start());
  const std::string secret = "Pw4clonefsTest";
  std::string url = web.Url("src.img");
  url.insert(url.find("://") + 3, "alice:" + secret + "@");
  const std::string signature = "Sig4clonefsTest";
  url += "?X-Amz-Expires=60&X-Amz-Signature=" + signature;
  RunResult m = MountUri(url, "--fuse-transport dev --rate 1M");
  ASSERT_EQ(m.code, 0) << m.out;
  for (const std::string& hidden : {secret, signature}) {
    SCOPED_TRACE(hidden);
    EXPECT_EQ(m.out.find(hidden), std::string::npos) << m.out;
  }
  RunResult text = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  EXPECT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("alice:***@"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("X-Amz-Expires=60&X-Amz-Signature=***"), std::string::npos) << text.out;
  RunResult json = Sh(ClonefsBinary() + " status --json " + Quote(c_.mnt));
  const std::string record = FileText(c_.metadata + "/daemon.info");
  EXPECT_NE(record.find("source="), std::string::npos) << record;
  ASSERT_GT(c_.DaemonPid(), 0);
  const std::string daemon_cmdline =
      FileText("/proc/" + std::to_string(c_.DaemonPid()) + "/cmdline");
  EXPECT_NE(daemon_cmdline.find("alice:"), std::string::npos);
  EXPECT_NE(daemon_cmdline.find("X-Amz-Signature="), std::string::npos);
  for (const std::string& hidden : {secret, signature}) {
    SCOPED_TRACE(hidden);
    EXPECT_EQ(text.out.find(hidden), std::string::npos) << text.out;
    EXPECT_EQ(json.out.find(hidden), std::string::npos) << json.out;
    EXPECT_EQ(c_.LogText().find(hidden), std::string::npos) << c_.LogText();
    EXPECT_EQ(record.find(hidden), std::string::npos) << record;
    EXPECT_EQ(FileText("/proc/self/mountinfo").find(hidden), std::string::npos);
    EXPECT_EQ(FileText("/proc/mounts").find(hidden), std::string::npos);
    EXPECT_EQ(daemon_cmdline.find(hidden), std::string::npos);
  }
  std::istringstream lines(AllCommandLines());
  for (std::string line; std::getline(lines, line);) {
    EXPECT_EQ(line.find(secret), std::string::npos) << line;
    if (line.find("nbdkit") == std::string::npos) {
      EXPECT_EQ(line.find(signature), std::string::npos) << line;
    }
  }
  // The clone really reads through the URL (nginx ignores the credentials).
  EXPECT_EQ(Sha256(c_.exposed()), src_sha_);
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_EQ(c_.LogText().find(secret), std::string::npos) << c_.LogText();
  EXPECT_EQ(c_.LogText().find(signature), std::string::npos) << c_.LogText();
}

}  // namespace
}  // namespace clonefs::testing
