// Component tests: the control server over a real Unix socket with a fake
// engine: round trips, permissions (file modes and SO_PEERCRED), stale and
// live sockets, bounds, shutdown.
#include "control/server.h"

#include <gtest/gtest.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <thread>

#include "clone/settings_store.h"
#include "control/client.h"
#include "control/discovery.h"
#include "control/socket_io.h"
#include "control/status_report.h"
#include "fake_engine.h"
#include "metadata/metadata.h"

namespace clonefs::control {
namespace {

using testing::FakeEngineForControlTests;

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/clonefs-ctl-test-XXXXXX";
    char* p = mkdtemp(tmpl);
    EXPECT_NE(p, nullptr);
    path_ = p;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

ControlInfo Info() { return ControlInfo{"/mnt/test-clone", "/s.img", "/d.img", "/d.img.clonefs", "", "", ""}; }

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(mkdir((dir_.path() + "/ctl").c_str(), 0700), 0);
    sock_ = dir_.path() + "/ctl/c.sock";
    ControlServerOptions o;
    o.socket_path = sock_;
    o.io_timeout_ms = 2000;
    ASSERT_TRUE(server_.Start(&engine_, Info(), o).ok());
  }
  Response Call(std::vector<std::string> words) {
    Result<Response> r = CallControl(sock_, words, 10000);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Response{false, "transport: " + r.status().ToString()};
  }

  TempDir dir_;
  std::string sock_;
  FakeEngineForControlTests engine_;
  ControlServer server_;
};

TEST_F(ServerTest, PingAndStatusFormats) {
  Response p = Call({"ping"});
  EXPECT_TRUE(p.ok);
  EXPECT_EQ(p.text, "clonefs-control 1\n");

  engine_.SetHydrated(40, /*commit=*/false);
  int commits = engine_.commit_calls();
  Response j = Call({"status-json"});
  ASSERT_TRUE(j.ok) << j.text;
  EXPECT_EQ(engine_.commit_calls(), commits + 1);  // status commits first
  Result<StatusReport> r = ReportFromJsonText(j.text);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->live);
  EXPECT_EQ(r->pid, static_cast<uint64_t>(getpid()));
  EXPECT_EQ(r->hydrated_regions, 40u);
  EXPECT_EQ(r->committed_hydrated_regions, 40u);  // committed by the query
  EXPECT_EQ(r->nr_regions, 160u);
  EXPECT_EQ(r->info.source, "/s.img");
  EXPECT_EQ(r->info.mountpoint, "/mnt/test-clone");

  Response dm = Call({"status-dm"});
  ASSERT_TRUE(dm.ok);
  EXPECT_EQ(dm.text, "8 12/1000 128 40/160 0 0 4 hydration_threshold 1024 hydration_batch_size 16 rw\n");

  Response h = Call({"status"});
  ASSERT_TRUE(h.ok);
  EXPECT_NE(h.text.find("40/160 hydrated"), std::string::npos) << h.text;

  commits = engine_.commit_calls();
  engine_.SetHydrated(50, false);
  Response s = Call({"stats-json"});
  ASSERT_TRUE(s.ok);
  EXPECT_EQ(engine_.commit_calls(), commits);  // no commit
  r = ReportFromJsonText(s.text);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->hydrated_regions, 50u);
  EXPECT_EQ(r->committed_hydrated_regions, 40u);
}

TEST_F(ServerTest, StatusSurvivesFailedCommit) {
  engine_.SetCommitStatus(Status::IoError("dest flush failed"));
  engine_.SetMode(EngineMode::kReadOnly);
  Response dm = Call({"status-dm"});
  ASSERT_TRUE(dm.ok);
  EXPECT_EQ(dm.text.substr(dm.text.size() - 4), " ro\n") << dm.text;
  engine_.SetMode(EngineMode::kFail);
  EXPECT_EQ(Call({"status-dm"}).text, "Fail\n");
}

TEST_F(ServerTest, MessagesChangeKnobs) {
  Response r = Call({"message", "HYDRATION_THRESHOLD", "7"});
  ASSERT_TRUE(r.ok) << r.text;
  EXPECT_EQ(r.text, "hydration_threshold set to 7\n");
  EXPECT_TRUE(Call({"message", "hydration_batch_size", "3"}).ok);
  EXPECT_TRUE(Call({"message", "rate", "2M"}).ok);
  EXPECT_TRUE(Call({"message", "disable_hydration"}).ok);
  EngineStats s = engine_.Stats();
  EXPECT_EQ(s.knobs.hydration_threshold, 7u);
  EXPECT_EQ(s.knobs.hydration_batch_size, 3u);
  EXPECT_EQ(s.knobs.rate_bytes_per_s, 2u << 20);
  EXPECT_FALSE(s.knobs.hydration_enabled);
  EXPECT_TRUE(Call({"message", "enable_hydration"}).ok);
  EXPECT_TRUE(engine_.Stats().knobs.hydration_enabled);
}

// Messages are stored with the clone (a real metadata store) and status shows
// the stored settings; a store that refuses the write leaves the knob changed
// and says so.
TEST(ServerSettingsTest, MessagesAreStoredAndShown) {
  TempDir dir;
  metadata::MetadataOptions mo;
  mo.dir = dir.path() + "/md";
  mo.image_size = 1 << 20;
  mo.region_size = 4096;
  auto md = metadata::Metadata::Open(mo);
  ASSERT_TRUE(md.ok()) << md.status().ToString();
  clone::Settings initial;
  initial.name.emplace("x.img");
  clone::SettingsStore store(md->get(), initial);
  FakeEngineForControlTests engine;
  ControlServer server;
  ControlServerOptions o;
  o.socket_path = dir.path() + "/c.sock";
  o.settings = &store;
  ASSERT_TRUE(server.Start(&engine, Info(), o).ok());
  auto call = [&](std::vector<std::string> words) {
    Result<Response> r = CallControl(o.socket_path, words, 10000);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : Response{false, ""};
  };
  Response r = call({"message", "rate", "2M"});
  ASSERT_TRUE(r.ok) << r.text;
  EXPECT_EQ(r.text.find("not stored"), std::string::npos) << r.text;
  ASSERT_TRUE(call({"message", "disable_hydration"}).ok);
  Result<StatusReport> rep = ReportFromJsonText(call({"status-json"}).text);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->settings.rate_bytes_per_s, 2u << 20);
  EXPECT_EQ(rep->settings.hydration_enabled, false);
  EXPECT_EQ(rep->settings.name, "x.img");
  EXPECT_NE(call({"status"}).text.find("Settings:     --rate 2M --no-hydration --name x.img"),
            std::string::npos);

  // Read-only metadata: the knob changes, the reply says it is not stored.
  (*md)->SetReadOnly();
  r = call({"message", "rate", "3M"});
  ASSERT_TRUE(r.ok) << r.text;
  EXPECT_NE(r.text.find("rate set to"), std::string::npos) << r.text;
  EXPECT_NE(r.text.find("warning: applied to the running clone but not stored"),
            std::string::npos) << r.text;
  EXPECT_EQ(engine.Stats().knobs.rate_bytes_per_s, 3u << 20);
  EXPECT_EQ(store.Current().rate_bytes_per_s, 2u << 20);
  server.Stop();

  // What a later mount reads.
  auto raw = (*md)->GetSettings();
  ASSERT_TRUE(raw.ok() && raw->has_value());
  auto stored = clone::DecodeSettings(**raw);
  ASSERT_TRUE(stored.ok()) << stored.status().ToString();
  EXPECT_EQ(stored->rate_bytes_per_s, 2u << 20);
  EXPECT_EQ(stored->hydration_enabled, false);
  EXPECT_EQ(stored->name, "x.img");
}

TEST_F(ServerTest, ServerValidatesMessagesAgain) {
  // A client that skips validation still cannot set bad values.
  for (std::vector<std::string> w : std::vector<std::vector<std::string>>{
           {"message", "hydration_batch_size", "0"},
           {"message", "hydration_threshold", "4294967296"},
           {"message", "enable_hydration", "now"},
           {"message", "rate", "1.5G"},
           {"message", "frobnicate"},
           {"message"}}) {
    Response r = Call(w);
    EXPECT_FALSE(r.ok) << w.back();
    EXPECT_NE(r.text.find("accepted messages"), std::string::npos) << r.text;
  }
  EngineStats s = engine_.Stats();
  EXPECT_EQ(s.knobs.hydration_threshold, HydrationKnobs().hydration_threshold);
  EXPECT_EQ(s.knobs.hydration_batch_size, HydrationKnobs().hydration_batch_size);
  EXPECT_TRUE(s.knobs.hydration_enabled);
}

TEST_F(ServerTest, UnknownRequests) {
  for (std::vector<std::string> w :
       std::vector<std::vector<std::string>>{{"shutdown"}, {"status", "extra"}, {"STATUS"}}) {
    Response r = Call(w);
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.text.find("unknown request"), std::string::npos) << r.text;
  }
}

TEST_F(ServerTest, FileModes) {
  struct stat st;
  ASSERT_EQ(lstat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

// Runs `fn` in a child process as uid/gid 65534; returns its exit status.
template <typename Fn>
int AsNobody(Fn fn) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(100);
    _exit(fn());
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

TEST_F(ServerTest, OtherUidCannotReachSocket) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch uid";
  std::string path = sock_;
  int rc = AsNobody([&] {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) return 1;
    return errno == EACCES ? 0 : 2;
  });
  EXPECT_EQ(rc, 0) << "a uid-65534 client must get EACCES";
}

TEST_F(ServerTest, OtherUidRefusedByPeerCredentials) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch uid";
  // Open the file modes so only SO_PEERCRED stands in the way.
  ASSERT_EQ(chmod((dir_.path() + "/ctl").c_str(), 0755), 0);
  ASSERT_EQ(chmod(sock_.c_str(), 0666), 0);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  int commits = engine_.commit_calls();
  std::string path = sock_;
  int rc = AsNobody([&] {
    Result<Response> r = CallControl(path, {"message", "hydration_threshold", "1"}, 5000);
    if (!r.ok()) return 3;
    if (r->ok) return 1;
    return r->text.find("permission denied") != std::string::npos ? 0 : 2;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(engine_.Stats().knobs.hydration_threshold, HydrationKnobs().hydration_threshold);
  EXPECT_EQ(engine_.commit_calls(), commits);
  // Root (and the owner) still get answers.
  EXPECT_TRUE(Call({"ping"}).ok);
}

TEST_F(ServerTest, OversizedRequestIsRefused) {
  Result<int> fd = ConnectUnix(sock_);
  ASSERT_TRUE(fd.ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::string big(kMaxRequestBytes + 100, 'a');
  (void)WriteAll(*fd, big, deadline);
  Result<std::string> wire = ReadAll(*fd, kMaxResponseBytes, deadline);
  close(*fd);
  ASSERT_TRUE(wire.ok()) << wire.status().ToString();
  Result<Response> r = DecodeResponse(*wire);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->ok);
  EXPECT_NE(r->text.find("longer than"), std::string::npos) << r->text;
  EXPECT_TRUE(Call({"ping"}).ok);  // still serving
}

TEST_F(ServerTest, SilentClientDoesNotBlockOthersForever) {
  // A client that connects and sends nothing is dropped at the I/O timeout
  // (2 s here); later requests are then answered.
  Result<int> idle = ConnectUnix(sock_);
  ASSERT_TRUE(idle.ok());
  EXPECT_TRUE(Call({"ping"}).ok);
  close(*idle);
}

TEST_F(ServerTest, StopWithIdleClientAndRemovesSocket) {
  Result<int> idle = ConnectUnix(sock_);
  ASSERT_TRUE(idle.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  server_.Stop();  // must not wait for the idle client's timeout to matter
  close(*idle);
  struct stat st;
  EXPECT_NE(lstat(sock_.c_str(), &st), 0);
  server_.Stop();  // idempotent
  Result<Response> r = CallControl(sock_, {"ping"}, 1000);
  EXPECT_FALSE(r.ok());
}

TEST_F(ServerTest, SecondServerOnSamePathIsBusy) {
  FakeEngineForControlTests other;
  ControlServer second;
  ControlServerOptions o;
  o.socket_path = sock_;
  Status s = second.Start(&other, Info(), o);
  EXPECT_TRUE(s.IsBusy()) << s.ToString();
  EXPECT_TRUE(Call({"ping"}).ok);  // the first still owns it
}

TEST_F(ServerTest, ConcurrentClients) {
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 25; i++) {
        std::vector<std::string> w =
            t % 2 == 0 ? std::vector<std::string>{"status-json"}
                       : std::vector<std::string>{"message", "hydration_threshold", std::to_string(i)};
        Result<Response> r = CallControl(sock_, w, 20000);
        if (!r.ok() || !r->ok) failures++;
      }
    });
  }
  for (auto& th : ts) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GE(server_.requests_served(), 100u);
}

TEST(ServerStartTest, ReplacesStaleSocketRefusesOtherFiles) {
  TempDir dir;
  std::string path = dir.path() + "/s.sock";
  {  // A socket file nobody listens on (a dead daemon's).
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, path.c_str());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    close(fd);
  }
  FakeEngineForControlTests engine;
  ControlServerOptions o;
  o.socket_path = path;
  {
    ControlServer s;
    ASSERT_TRUE(s.Start(&engine, Info(), o).ok());
    Result<Response> r = CallControl(path, {"ping"}, 5000);
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(r->ok);
  }
  // A regular file is not replaced.
  std::string file = dir.path() + "/f.sock";
  FILE* f = fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr);
  fclose(f);
  o.socket_path = file;
  ControlServer s2;
  Status st = s2.Start(&engine, Info(), o);
  EXPECT_EQ(st.code(), Status::Code::kPermission) << st.ToString();
  EXPECT_TRUE(std::filesystem::exists(file));
}

// The default socket is METADATA/control.sock; the directory's mode is
// the metadata store's business and stays as it is.
TEST(ServerStartTest, DefaultPathIsInTheMetadataDirectory) {
  TempDir dir;
  ASSERT_EQ(chmod(dir.path().c_str(), 0755), 0);
  FakeEngineForControlTests engine;
  ControlInfo info = Info();
  info.metadata_dir = dir.path();
  ControlServer s;
  Status st = s.Start(&engine, info);
  ASSERT_TRUE(st.ok()) << st.ToString();
  const std::string want = dir.path() + "/control.sock";
  EXPECT_EQ(s.socket_path(), want);
  EXPECT_EQ(ControlSocketPath(dir.path()), want);
  EXPECT_TRUE(std::filesystem::is_socket(want));
  struct stat sst, dst;
  ASSERT_EQ(stat(want.c_str(), &sst), 0);
  EXPECT_EQ(sst.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir.path().c_str(), &dst), 0);
  EXPECT_EQ(dst.st_mode & 0777, 0755u);
  Result<Response> r = CallControl(want, {"ping"}, 5000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->ok);
  s.Stop();
  EXPECT_FALSE(std::filesystem::exists(want));
  ControlInfo none = Info();
  none.metadata_dir.clear();
  ControlServer s2;
  EXPECT_TRUE(s2.Start(&engine, none).IsInvalidArgument());
}

// A socket path longer than sockaddr_un's 108 bytes (and a directory path
// over 255 bytes) is bound and reached through /proc/self/fd.
TEST(ServerStartTest, SocketPathsOfAnyLengthWork) {
  TempDir dir;
  std::string md = dir.path();
  for (int i = 0; i < 6; i++) {
    md += "/" + std::string(50, static_cast<char>('a' + i));
    ASSERT_EQ(mkdir(md.c_str(), 0755), 0) << md;
  }
  ASSERT_GT(md.size(), 255u);
  FakeEngineForControlTests engine;
  ControlInfo info = Info();
  info.metadata_dir = md;
  ControlServer s;
  Status st = s.Start(&engine, info);
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(s.socket_path(), md + "/control.sock");
  EXPECT_TRUE(std::filesystem::is_socket(md + "/control.sock"));
  for (int i = 0; i < 3; i++) {  // no directory fd is leaked per call
    Result<Response> r = CallControl(md + "/control.sock", {"ping"}, 5000);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->ok);
  }
  // A second server on the same clone is refused: the first one answers.
  ControlServer s2;
  EXPECT_TRUE(s2.Start(&engine, info).IsBusy());
  s.Stop();
  EXPECT_FALSE(std::filesystem::exists(md + "/control.sock"));
  // A missing directory is an error naming it, not a crash.
  info.metadata_dir = md + "/missing";
  ControlServer s3;
  st = s3.Start(&engine, info);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.ToString().find("missing"), std::string::npos) << st.ToString();
}

}  // namespace
}  // namespace clonefs::control
