// An http:// source end to end: nginx (nginx-light) serves a random file on
// 127.0.0.1, OpenSource spawns nbdkit's curl plugin per connection, reads
// equal the file, and destroying the device ends every nbdkit it started.
// Without nginx the test skips, or fails when CI=true.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <initializer_list>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "clone/identity.h"
#include "devices/device_test_util.h"
#include "sources/open_source.h"
#include "sources/test_server.h"

namespace clonefs {
namespace {

using testing::FreeLoopbackPort;
using testing::WaitFor;

constexpr const char* kNginx = "/usr/sbin/nginx";

bool CanConnectTcp(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return ok;
}

// nginx in the foreground with a config in the test's temp dir.
class Nginx {
 public:
  explicit Nginx(const std::string& dir) : dir_(dir) {}
  ~Nginx() { Stop(); }

  ::testing::AssertionResult Start(int port, bool ranges = true) {
    port_ = port;
    WriteConfig(ranges);
    const std::string conf = dir_ + "/nginx.conf";
    pid_ = testing::Spawn({kNginx, "-c", conf, "-p", dir_, "-g", "daemon off;"});
    if (pid_ < 0) return ::testing::AssertionFailure() << "cannot start nginx";
    bool up = WaitFor([&] {
      int st;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        return true;
      }
      return CanConnectTcp(port);
    });
    if (pid_ < 0 || !up) {
      std::ifstream log(dir_ + "/error.log");
      std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
      return ::testing::AssertionFailure() << "nginx did not start: " << text;
    }
    return ::testing::AssertionSuccess();
  }

  // Starts nginx again on the same port (ending the connections to it),
  // with Range requests honoured or not (then answered 200 with the whole
  // file), and checks that `path` is served so.
  ::testing::AssertionResult Restart(bool ranges, const std::string& path) {
    Stop();
    ::testing::AssertionResult up = Start(port_, ranges);
    if (!up) return up;
    const std::string line = StatusLine(path);
    if (line.find(ranges ? " 206 " : " 200 ") != std::string::npos) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "nginx answers " << line;
  }

  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int st;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }

 private:
  // The status line nginx answers for a one-byte Range request of `path`.
  std::string StatusLine(const std::string& path) const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    std::string line;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const std::string req = "GET " + path + " HTTP/1.0\r\nRange: bytes=1-1\r\n\r\n";
      if (::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
        char buf[64];
        ssize_t n = ::read(fd, buf, sizeof(buf));
        if (n > 0) line.assign(buf, static_cast<size_t>(n));
      }
    }
    ::close(fd);
    return line.substr(0, line.find('\r'));
  }

  void WriteConfig(bool ranges) {
    const std::string conf = dir_ + "/nginx.conf";
    std::ofstream f(conf);
    f << "worker_processes 1;\n"
      << "pid " << dir_ << "/nginx.pid;\n"
      << "error_log " << dir_ << "/error.log;\n"
      << "events { worker_connections 64; }\n"
      << "http {\n"
      << "  access_log off;\n"
      << "  client_body_temp_path " << dir_ << "/tmp-body;\n"
      << "  proxy_temp_path " << dir_ << "/tmp-proxy;\n"
      << "  fastcgi_temp_path " << dir_ << "/tmp-fastcgi;\n"
      << "  uwsgi_temp_path " << dir_ << "/tmp-uwsgi;\n"
      << "  scgi_temp_path " << dir_ << "/tmp-scgi;\n"
      << "  server { listen 127.0.0.1:" << port_ << "; root " << dir_ << "/www;"
      << (ranges ? "" : " max_ranges 0;") << " }\n"
      << "}\n";
  }

  const std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// Files served over http:// by an nginx of their own on a free loopback
// port, from a "www" directory in a temp dir.
class WebRoot {
 public:
  // Writes each (name, content) pair into www (mode 0644) and starts nginx.
  ::testing::AssertionResult Serve(
      std::initializer_list<std::pair<const char*, const std::vector<uint8_t>*>> files) {
    if (!dir_.ok()) return ::testing::AssertionFailure() << "no temp dir";
    // nginx's workers run as an unprivileged user when started by root.
    ::chmod(dir_.path().c_str(), 0755);
    if (::mkdir(dir_.File("www").c_str(), 0755) != 0) {
      return ::testing::AssertionFailure() << "mkdir www: " << strerror(errno);
    }
    for (const auto& [name, content] : files) {
      if (!testing::WriteFile(File(name), *content)) {
        return ::testing::AssertionFailure() << "cannot write " << File(name);
      }
      ::chmod(File(name).c_str(), 0644);
    }
    port_ = FreeLoopbackPort();
    if (port_ <= 0) return ::testing::AssertionFailure() << "no free loopback port";
    return nginx_.Start(port_);
  }
  std::string File(const std::string& name) const { return dir_.File("www/" + name); }
  std::string Url(const std::string& name) const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/" + name;
  }
  int port() const { return port_; }
  Nginx& nginx() { return nginx_; }

 private:
  testing::TempDir dir_;
  Nginx nginx_{dir_.path()};
  int port_ = 0;
};

// Opens the http:// source at `url` over `connections` nbdkit processes,
// 1 MiB requests.
Result<std::unique_ptr<Device>> OpenHttp(const std::string& url, uint32_t connections) {
  CLONEFS_ASSIGN_OR_RETURN(SourceSpec spec, ParseSource(url));
  SourceOpenOptions options;
  options.nbd.spawned_connections = connections;
  options.nbd.spawned_request_bytes = 1 << 20;
  return OpenSource(spec, options);
}

// Opens the http:// source at `url` with `options` and gives it the
// identity check a mount gives it (recorded now), as the mount does.
Result<std::unique_ptr<Device>> OpenChecked(const std::string& url,
                                            const SourceOpenOptions& options) {
  CLONEFS_ASSIGN_OR_RETURN(SourceSpec spec, ParseSource(url));
  CLONEFS_ASSIGN_OR_RETURN(std::unique_ptr<Device> dev, OpenSource(spec, options));
  CLONEFS_ASSIGN_OR_RETURN(metadata::FileIdentity id,
                           clone::RemoteSourceIdentity(*dev, spec.display, ""));
  dev->SetIdentityCheck(clone::RemoteIdentityCheck(id, spec.display, ""));
  return dev;
}

// The background copier's periodic check (SourceWatch, about once a
// second), which is what starts the identity re-checks: CheckUnchanged
// every 100 ms on a thread of its own until Stop or destruction.
class CopierChecks {
 public:
  explicit CopierChecks(Device& dev)
      : thread_([this, &dev] {
          while (!stop_) {
            (void)dev.CheckUnchanged();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        }) {}
  ~CopierChecks() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Options for a source whose change a test waits for: two nbdkits, a 20 s
// source timeout (never what ends a wait), identity re-checks every
// `recheck_ns` (2 s after a source error, if sooner).
SourceOpenOptions Watched(uint64_t recheck_ns) {
  SourceOpenOptions options;
  options.nbd.spawned_connections = 2;
  options.timeout_ns = 20'000'000'000;
  options.nbd.identity_recheck_ns = recheck_ns;
  return options;
}

#define CLONEFS_REQUIRE_NGINX()                                                             \
  do {                                                                                      \
    if (::access(kNginx, X_OK) != 0) {                                                      \
      const char* ci = std::getenv("CI");                                                   \
      if (ci != nullptr && std::string(ci) == "true") {                                     \
        FAIL() << kNginx << " is missing: install nginx-light (tests/debian-packages.txt)"; \
      }                                                                                     \
      GTEST_SKIP() << kNginx << " is missing (install nginx-light)";                        \
    }                                                                                       \
  } while (0)

TEST(HttpSourceTest, ReadsThroughNbdkitCurlEqualTheServedFile) {
  CLONEFS_REQUIRE_NGINX();
  std::mt19937_64 rng(testing::TestSeed());
  std::vector<uint8_t> content = testing::RandomBytes(rng, (6 << 20) + 1234);
  WebRoot web;
  ASSERT_TRUE(web.Serve({{"img", &content}}));
  {
    Result<std::unique_ptr<Device>> opened = OpenHttp(web.Url("img"), 3);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Device& dev = **opened;
    EXPECT_EQ(dev.Size(), content.size());
    EXPECT_TRUE(dev.AsyncReads());
    EXPECT_EQ(testing::ChildrenNamed("nbdkit").size(), 3u);

    std::vector<uint8_t> all(content.size());
    ASSERT_TRUE(dev.Read(0, all.data(), all.size()).ok());
    EXPECT_TRUE(all == content);

    // Overlapping asynchronous reads over the three nbdkit processes.
    constexpr int kReads = 24;
    std::vector<std::vector<uint8_t>> bufs(kReads, std::vector<uint8_t>(200000));
    std::vector<uint64_t> offs(kReads);
    std::mutex mu;
    std::condition_variable cv;
    int finished = 0, failed = 0;
    for (int i = 0; i < kReads; ++i) {
      offs[i] = rng() % (content.size() - 200000);
      dev.ReadAsync(offs[i], bufs[i].data(), 200000, [&](Status s) {
        std::lock_guard<std::mutex> l(mu);
        ++finished;
        if (!s.ok()) ++failed;
        cv.notify_all();
      });
    }
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return finished == kReads; });
    EXPECT_EQ(failed, 0);
    for (int i = 0; i < kReads; ++i) {
      EXPECT_TRUE(std::equal(bufs[i].begin(), bufs[i].end(), content.begin() + offs[i])) << i;
    }
    EXPECT_GE(dev.Health().bytes_read, content.size());
  }
  // nbd_close ended (and reaped) every nbdkit the device spawned.
  EXPECT_TRUE(testing::ChildrenNamed("nbdkit").empty());
}

// A web server that stops honouring Range under a live source (reconfigured,
// or a proxy or CDN in front of it) answers every range with the whole
// file, and nbdkit's curl plugin hands on the file's first bytes whatever
// offset was asked. They used to be taken as the data there: a 32 MiB
// clone completed with 29 MiB of it wrong, status "ok". No such answer is
// passed on now, and a genuine copy of the first bytes elsewhere in the
// file still reads while Range is honoured.
TEST(HttpSourceTest, AServerThatStopsHonouringRangeIsNeverBelieved) {
  CLONEFS_REQUIRE_NGINX();
  std::mt19937_64 rng(testing::TestSeed());
  std::vector<uint8_t> content = testing::RandomBytes(rng, 4 << 20);
  constexpr uint64_t kCopy = 2 << 20;  // holds a copy of the first 192 KiB
  std::copy(content.begin(), content.begin() + (192 << 10), content.begin() + kCopy);
  WebRoot web;
  ASSERT_TRUE(web.Serve({{"img", &content}}));
  Nginx& nginx = web.nginx();
  {
    Result<std::unique_ptr<Device>> opened = OpenHttp(web.Url("img"), 2);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Device& dev = **opened;
    auto read_async = [&](uint64_t off, std::vector<uint8_t>* buf) {
      std::promise<Status> done;
      dev.ReadAsync(off, buf->data(), buf->size(), [&](Status s) { done.set_value(s); });
      return done.get_future().get();
    };
    auto equal_at = [&](const std::vector<uint8_t>& buf, uint64_t off) {
      return std::equal(buf.begin(), buf.end(), content.begin() + off);
    };
    std::vector<uint8_t> buf(128 << 10);
    ASSERT_TRUE(dev.Read(kCopy, buf.data(), buf.size()).ok());
    EXPECT_TRUE(equal_at(buf, kCopy));
    ASSERT_TRUE(read_async(kCopy, &buf).ok());
    EXPECT_TRUE(equal_at(buf, kCopy));

    ASSERT_TRUE(nginx.Restart(/*ranges=*/false, "/img"));
    for (uint64_t off : {uint64_t{1} << 20, kCopy}) {
      Status r = dev.Read(off, buf.data(), buf.size());
      EXPECT_FALSE(r.ok()) << off << ": a whole-file answer was taken for the data there";
      EXPECT_NE(r.message().find("ignores HTTP Range requests"), std::string::npos) << r.message();
      std::fill(buf.begin(), buf.end(), 0);
      Status a = read_async(off, &buf);
      EXPECT_FALSE(a.ok()) << off << ": a whole-file answer was taken for the data there";
      EXPECT_NE(a.message().find("ignores HTTP Range requests"), std::string::npos) << a.message();
    }
    EXPECT_NE(dev.Health().last_error.find("ignores HTTP Range requests"), std::string::npos)
        << dev.Health().last_error;
    ASSERT_TRUE(dev.Read(0, buf.data(), buf.size()).ok());  // the start is the start
    EXPECT_TRUE(equal_at(buf, 0));

    ASSERT_TRUE(nginx.Restart(/*ranges=*/true, "/img"));
    ASSERT_TRUE(read_async(1 << 20, &buf).ok());
    EXPECT_TRUE(equal_at(buf, 1 << 20));
  }
  EXPECT_TRUE(testing::ChildrenNamed("nbdkit").empty());
}

TEST(HttpSourceTest, UnreachableServerFailsFastWithAClearMessage) {
  const int port = FreeLoopbackPort();  // nobody listens there
  ASSERT_GT(port, 0);
  Result<SourceSpec> spec = ParseSource("http://127.0.0.1:" + std::to_string(port) + "/img");
  ASSERT_TRUE(spec.ok());
  Result<std::unique_ptr<Device>> dev = OpenSource(*spec, {});
  ASSERT_FALSE(dev.ok());
  const std::string& m = dev.status().message();
  EXPECT_TRUE(dev.status().IsIoError()) << dev.status().ToString();
  EXPECT_NE(m.find("cannot connect to " + spec->display), std::string::npos) << m;
  EXPECT_NE(m.find("curl plugin could not open it"), std::string::npos) << m;
  EXPECT_TRUE(testing::ChildrenNamed("nbdkit").empty());  // nothing left running
}

// A web server that takes the connection and never answers (a hung or
// overloaded server, a proxy that holds): the open fails after the source
// timeout, once, saying so. Before, the HEAD for the file's version waited
// the timeout, then nbdkit's own open as long again (6 s for a 3 s
// timeout), and the message blamed nbdkit.
TEST(HttpSourceTest, AServerThatNeverAnswersFailsTheOpenAfterOneTimeout) {
  testing::SilentServer server;
  ASSERT_GT(server.port(), 0);
  Result<SourceSpec> spec =
      ParseSource("http://127.0.0.1:" + std::to_string(server.port()) + "/img");
  ASSERT_TRUE(spec.ok());
  SourceOpenOptions o;
  o.timeout_ns = 3'000'000'000;
  const auto start = std::chrono::steady_clock::now();
  Result<std::unique_ptr<Device>> dev = OpenSource(*spec, o);
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(dev.ok());
  const std::string& m = dev.status().message();
  EXPECT_EQ(dev.status().sys_errno(), ETIMEDOUT) << dev.status().ToString();
  EXPECT_NE(m.find("cannot connect to " + spec->display + ": no answer within 3 s"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("--source-timeout"), std::string::npos) << m;
  EXPECT_LT(waited, std::chrono::milliseconds(5500)) << "waited for the timeout twice";
  EXPECT_TRUE(testing::ChildrenNamed("nbdkit").empty());  // none was started
}

TEST(HttpSourceTest, AMissingNbdkitIsNamed) {
  Result<SourceSpec> spec = ParseSource("https://example.invalid/disk.img");
  ASSERT_TRUE(spec.ok());
  SourceOpenOptions options;
  options.nbd.nbdkit_path = "/nonexistent/nbdkit";
  Result<std::unique_ptr<Device>> dev = OpenSource(*spec, options);
  ASSERT_FALSE(dev.ok());
  EXPECT_TRUE(dev.status().IsNotFound()) << dev.status().ToString();
  EXPECT_NE(dev.status().message().find("'/nonexistent/nbdkit') was not found"), std::string::npos)
      << dev.status().message();
}

// The file behind a live URL replaced (an atomic mv) while the device is in
// use, with no reconnect: by one of the same size with one MiB changed, and
// by a shorter one. The periodic identity re-check finds both: the shorter
// one by its ETag (nginx's holds the size), the other, given the same mtime
// (so the same ETag), through a fresh nbdkit by its fingerprints. A
// read past the new end fails well before the source timeout, and no byte
// of the new content is returned once it is known.
class HttpChangeTest : public ::testing::TestWithParam<bool> {};

TEST_P(HttpChangeTest, FileReplacedUnderTheUrlIsAChange) {
  CLONEFS_REQUIRE_NGINX();
  const bool shrink = GetParam();
  std::mt19937_64 rng(testing::TestSeed());
  std::vector<uint8_t> content = testing::RandomBytes(rng, 8 << 20);
  std::vector<uint8_t> other = content;
  std::vector<uint8_t> changed = testing::RandomBytes(rng, 1 << 20);
  std::copy(changed.begin(), changed.end(), other.begin() + (3 << 20));
  if (shrink) other.resize(6 << 20);
  WebRoot web;
  ASSERT_TRUE(web.Serve({{"img", &content}, {"next", &other}}));
  // The same mtime: nginx gives the same-size file the same ETag.
  struct stat img;
  ASSERT_EQ(::stat(web.File("img").c_str(), &img), 0);
  const timespec times[2] = {img.st_atim, img.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, web.File("next").c_str(), times, 0), 0);
  {
    Result<std::unique_ptr<Device>> opened = OpenChecked(web.Url("img"), Watched(500'000'000));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Device& dev = **opened;
    ASSERT_EQ(std::rename(web.File("next").c_str(), web.File("img").c_str()), 0);

    CopierChecks copier_checks(dev);
    const auto start = std::chrono::steady_clock::now();
    std::vector<uint8_t> buf(1 << 20);
    if (shrink) {
      // Past the new end: nbdkit's retry filter would retry it for the
      // whole timeout; the re-check ends it.
      Status r = dev.Read(7 << 20, buf.data(), buf.size());
      EXPECT_FALSE(r.ok());
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10))
          << "a read past the shrunk end waited for the source timeout";
    }
    const bool found =
        WaitFor([&] { return !dev.CheckUnchanged().ok(); }, std::chrono::seconds(15));
    copier_checks.Stop();
    ASSERT_TRUE(found);
    Status c = dev.CheckUnchanged();
    EXPECT_TRUE(c.IsMismatch()) << c.ToString();
    EXPECT_NE(c.message().find(shrink ? "now gives ETag" : "fingerprint differs"),
              std::string::npos)
        << c.message();
    Status r = dev.Read(3 << 20, buf.data(), buf.size());
    EXPECT_TRUE(r.IsMismatch()) << r.ToString();
    EXPECT_FALSE(std::equal(buf.begin(), buf.end(), changed.begin()));
  }
  EXPECT_TRUE(testing::ChildrenNamed("nbdkit").empty());
}

INSTANTIATE_TEST_SUITE_P(SameSizeAndShrunk, HttpChangeTest, ::testing::Bool());

// The file behind a live URL replaced by one of the same size whose only
// change, 4 KiB, lies between the fingerprints' samples, with the periodic
// re-check a minute away. Reads between two re-checks used to return the
// new file's bytes (a clone mixed two files, status "complete"), and the
// fingerprints never saw this change at all. Every request carries the
// file's ETag now: the server refuses them once it changed, the re-check
// comes within seconds of that error and names the new ETag, and no byte
// of the new file is ever returned.
TEST(HttpSourceTest, AFileReplacedUnderTheUrlIsNeverReadFrom) {
  CLONEFS_REQUIRE_NGINX();
  std::mt19937_64 rng(testing::TestSeed());
  std::vector<uint8_t> content = testing::RandomBytes(rng, 8 << 20);
  std::vector<uint8_t> other = content;
  // 3 MiB: between fp2's samples 11 and 12, far from fp1's (identity.h).
  constexpr uint64_t kChanged = 3 << 20;
  std::vector<uint8_t> changed = testing::RandomBytes(rng, 4096);
  std::copy(changed.begin(), changed.end(), other.begin() + kChanged);
  WebRoot web;
  ASSERT_TRUE(web.Serve({{"img", &content}, {"next", &other}}));
  // nginx's ETag is the mtime and size: the new file's differs by mtime.
  const timespec past[2] = {{time(nullptr) - 100, 0}, {time(nullptr) - 100, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, web.File("next").c_str(), past, 0), 0);
  {
    Result<std::unique_ptr<Device>> opened = OpenChecked(web.Url("img"), Watched(60'000'000'000));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Device& dev = **opened;
    std::vector<uint8_t> buf(64 << 10);
    ASSERT_TRUE(dev.Read(kChanged, buf.data(), buf.size()).ok());
    ASSERT_EQ(std::rename(web.File("next").c_str(), web.File("img").c_str()), 0);

    CopierChecks copier_checks(dev);
    const auto start = std::chrono::steady_clock::now();
    std::fill(buf.begin(), buf.end(), 0);
    Status r = dev.Read(kChanged, buf.data(), buf.size());
    const auto waited = std::chrono::steady_clock::now() - start;
    const bool found =
        WaitFor([&] { return !dev.CheckUnchanged().ok(); }, std::chrono::seconds(15));
    copier_checks.Stop();
    EXPECT_FALSE(r.ok()) << "the replaced file's bytes were read";
    EXPECT_FALSE(std::equal(changed.begin(), changed.end(), buf.begin()));
    EXPECT_LT(waited, std::chrono::seconds(10)) << "the read waited for the source timeout";
    ASSERT_TRUE(found) << "the change was not found; last error: " << dev.Health().last_error;
    Status c = dev.CheckUnchanged();
    EXPECT_TRUE(c.IsMismatch()) << c.ToString();
    EXPECT_NE(c.message().find("now gives ETag"), std::string::npos) << c.message();
    // The connections closed for it wait for nothing: none spins (one did,
    // a whole CPU, polling with no timeout).
    timespec cpu0, cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    const double cpu = static_cast<double>(cpu1.tv_sec - cpu0.tv_sec) +
                       static_cast<double>(cpu1.tv_nsec - cpu0.tv_nsec) / 1e9;
    EXPECT_LT(cpu, 0.3) << "CPU seconds used in one idle second after the change";
    EXPECT_TRUE(dev.Read(0, buf.data(), buf.size()).IsMismatch());
    EXPECT_EQ(dev.Health().state, SourceHealth::State::kChanged);
  }
  EXPECT_TRUE(testing::ChildrenNamed("nbdkit").empty());
}

// The web server restarted with another file of the same size under the
// URL, while a read waits: nbdkit's retry filter reopens the session and
// the read goes on, so libnbd sees no error, only nbdkit's standard error
// says one happened. It used to be logged and nothing else: "connected",
// no error in status, and the next identity re-check at its usual interval
// (here 60 s). Now it is a source error, and the re-check comes within
// seconds.
TEST(HttpSourceTest, ARestartedWebServerIsReCheckedSoon) {
  CLONEFS_REQUIRE_NGINX();
  std::mt19937_64 rng(testing::TestSeed());
  std::vector<uint8_t> content = testing::RandomBytes(rng, 8 << 20);
  std::vector<uint8_t> other = content;
  std::vector<uint8_t> changed = testing::RandomBytes(rng, 1 << 20);
  std::copy(changed.begin(), changed.end(), other.begin() + (3 << 20));
  WebRoot web;
  ASSERT_TRUE(web.Serve({{"img", &content}, {"next", &other}}));
  Nginx& nginx = web.nginx();
  const int port = web.port();
  {
    Result<std::unique_ptr<Device>> opened = OpenChecked(web.Url("img"), Watched(60'000'000'000));
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    Device& dev = **opened;

    nginx.Stop();
    ASSERT_EQ(std::rename(web.File("next").c_str(), web.File("img").c_str()), 0);
    std::vector<uint8_t> buf(64 << 10);
    std::thread reader([&] { (void)dev.Read(1 << 20, buf.data(), buf.size()); });
    // nbdkit's curl plugin fails the read (nothing listens), its retry
    // filter tries again a second later, by when the server is back.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_TRUE(nginx.Start(port));
    reader.join();

    // The background copier's periodic check (about once a second), which
    // is what starts the re-checks.
    const bool found = WaitFor(
        [&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          return !dev.CheckUnchanged().ok();
        },
        std::chrono::seconds(15));
    ASSERT_TRUE(found) << "not re-checked soon after nbdkit's error; last error: "
                       << dev.Health().last_error;
    EXPECT_TRUE(dev.CheckUnchanged().IsMismatch());
  }
  EXPECT_TRUE(testing::ChildrenNamed("nbdkit").empty());
}

}  // namespace
}  // namespace clonefs
