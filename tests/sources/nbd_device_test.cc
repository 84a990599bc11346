// NbdDevice against a real nbdkit on a Unix socket: reads equal the served
// data (whole, unaligned, concurrent, synchronous and asynchronous), range
// errors, block status against a sparse file's own SEEK_DATA/SEEK_HOLE, a
// server without extents, a clear error when nothing listens, and connects
// over TCP to 127.0.0.1 that libnbd completes inside nbd_aio_connect_uri.
#include "sources/nbd_device.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "devices/device_test_util.h"
#include "sources/test_server.h"

namespace clonefs {
namespace {

using testing::NbdkitServer;
using testing::RandomBytes;
using testing::SeedTrace;
using testing::TempDir;

class NbdDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    seed_ = testing::TestSeed();
    rng_.seed(seed_);
  }

  // Serves `content` from a file with nbdkit's file plugin (read-only).
  // `params`: filter parameters (they follow the plugin's).
  void Serve(const std::vector<uint8_t>& content, std::vector<std::string> filters = {},
             const std::vector<std::string>& params = {}) {
    ASSERT_TRUE(testing::WriteFile(dir_.File("data.img"), content));
    filters.insert(filters.end(), {"-r", "file", dir_.File("data.img")});
    filters.insert(filters.end(), params.begin(), params.end());
    server_ = std::make_unique<NbdkitServer>(dir_.File("nbd.sock"), filters);
    ASSERT_TRUE(server_->Start());
  }

  std::unique_ptr<Device> Open(NbdSourceOptions options = {}) {
    return testing::OpenNbdUri(server_->Uri(), options);
  }

  TempDir dir_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::unique_ptr<NbdkitServer> server_;
};

TEST_F(NbdDeviceTest, ReadsEqualTheServedData) {
  SCOPED_TRACE(SeedTrace(seed_));
  std::vector<uint8_t> content = RandomBytes(rng_, (8 << 20) + 12345);
  Serve(content);
  NbdSourceOptions options;
  options.max_request_bytes = 256 << 10;  // many pieces per read
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  EXPECT_EQ(dev->Size(), content.size());
  EXPECT_TRUE(dev->ReadOnly());
  EXPECT_TRUE(dev->AsyncReads());
  EXPECT_TRUE(dev->RemoteHoleQueries());
  EXPECT_EQ(dev->Name(), server_->Uri());
  EXPECT_EQ(dev->SpliceFd(), -1);

  std::vector<uint8_t> all(content.size());
  ASSERT_TRUE(dev->Read(0, all.data(), all.size()).ok());
  EXPECT_TRUE(all == content);

  SourceHealth h = dev->Health();
  EXPECT_EQ(h.state, SourceHealth::State::kConnected);
  EXPECT_GE(h.requests, content.size() / (256 << 10));
  EXPECT_GE(h.bytes_read, content.size());
  EXPECT_EQ(h.errors, 0u);
  EXPECT_TRUE(dev->CheckUnchanged().ok());
}

// A user's Read shares the copier's queue only on a single connection: a
// server without multi-conn, or max_connections 1 (BackgroundCopier, SHARED
// LINK).
TEST_F(NbdDeviceTest, SharesTheReadQueueOnlyOnOneConnection) {
  std::vector<uint8_t> content = RandomBytes(rng_, 1 << 20);
  Serve(content);  // the file plugin advertises multi-conn
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  EXPECT_FALSE(dev->SharesReadQueue());
  NbdSourceOptions one;
  one.max_connections = 1;
  dev = Open(one);
  ASSERT_TRUE(dev);
  EXPECT_TRUE(dev->SharesReadQueue());
  dev.reset();
  server_.reset();
  Serve(content, {"--filter=multi-conn"}, {"multi-conn-mode=disable"});
  dev = Open();
  ASSERT_TRUE(dev);
  EXPECT_TRUE(dev->SharesReadQueue());
}

// A server that offers multi-conn may still limit its clients: nbdkit's
// limit filter refuses the third connection, qemu-nbd --shared=2 leaves it
// in its listen backlog, never answered. Opening used to fail (at once, or
// after the whole source timeout, "no answer within 30 s; check that the
// server is running") although the server served the first connection;
// now the device goes on with the connections it got, in a few seconds.
TEST_F(NbdDeviceTest, AServerThatTakesFewerConnectionsThanItsMultiConnIsUsedAnyway) {
  std::vector<uint8_t> content = RandomBytes(rng_, 1 << 20);
  Serve(content, {"--filter=limit"}, {"limit=2"});
  NbdSourceOptions options;
  options.timeout_ns = 30'000'000'000;
  auto read_all = [&](Device& dev) {
    std::vector<uint8_t> all(content.size());
    EXPECT_TRUE(dev.Read(0, all.data(), all.size()).ok());
    EXPECT_TRUE(all == content);
  };
  {
    std::unique_ptr<Device> dev = Open(options);
    ASSERT_TRUE(dev);
    EXPECT_FALSE(dev->SharesReadQueue());  // two connections
    read_all(*dev);
  }
  server_.reset();

  const std::string qsock = dir_.File("qemu.sock");
  const pid_t qemu = testing::Spawn(
      {"qemu-nbd", "-r", "-t", "--shared=2", "-f", "raw", "-k", qsock, dir_.File("data.img")});
  ASSERT_GT(qemu, 0) << "qemu-nbd (qemu-utils) is missing";
  ASSERT_TRUE(testing::WaitFor([&] { return testing::UnixListening(qsock); }));
  {
    const auto start = std::chrono::steady_clock::now();
    std::unique_ptr<Device> dev = testing::OpenNbdUri("nbd+unix:///?socket=" + qsock, options);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
    ASSERT_TRUE(dev);
    EXPECT_FALSE(dev->SharesReadQueue());
    read_all(*dev);
  }
  ::kill(qemu, SIGKILL);
  int st;
  ::waitpid(qemu, &st, 0);
}

// Release (the clone became complete): the read in progress finishes with
// its data, then the connections close -- a SIGTERMed nbdkit, which waits
// for its clients, exits -- Health() says released, and later reads fail
// without reaching any server.
TEST_F(NbdDeviceTest, ReleaseClosesTheConnectionsOnceReadsInProgressEnd) {
  std::vector<uint8_t> content = RandomBytes(rng_, 4 << 20);
  Serve(content, {"--filter=delay"}, {"rdelay=400ms"});
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  std::vector<uint8_t> got(1 << 20);
  Status in_progress;
  std::thread reader([&] { in_progress = dev->Read(1 << 20, got.data(), got.size()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the read is at the server
  dev->Release();
  reader.join();
  ASSERT_TRUE(in_progress.ok()) << in_progress.ToString();
  EXPECT_TRUE(std::equal(got.begin(), got.end(), content.begin() + (1 << 20)));
  SourceHealth h = dev->Health();
  EXPECT_EQ(h.state, SourceHealth::State::kReleased);
  EXPECT_STREQ(SourceStateName(h.state), "released");
  EXPECT_NE(h.since_unix_ns, 0u);
  // Its clients gone, nbdkit ends when asked to (it waits for them before).
  server_->Signal(SIGTERM);
  EXPECT_TRUE(server_->WaitExit(std::chrono::seconds(5)));
  Status after = dev->Read(0, got.data(), 4096);
  EXPECT_TRUE(after.IsIoError()) << after.ToString();
  EXPECT_NE(after.message().find("released"), std::string::npos) << after.ToString();
  std::atomic<bool> called{false};
  dev->ReadAsync(0, got.data(), 4096, [&](Status s) {
    EXPECT_FALSE(s.ok());
    called = true;
  });
  EXPECT_TRUE(called.load());
  EXPECT_EQ(dev->Health().state, SourceHealth::State::kReleased);  // never "reconnecting"
  dev->Release();                                                  // twice: nothing more
}

// Without Release, the same nbdkit does not end while the device is open:
// what the test above relies on.
TEST_F(NbdDeviceTest, AnOpenDeviceKeepsASigtermedNbdkitWaiting) {
  std::vector<uint8_t> content = RandomBytes(rng_, 1 << 20);
  Serve(content);
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  server_->Signal(SIGTERM);
  EXPECT_FALSE(server_->WaitExit(std::chrono::seconds(1)));  // killed and reaped then
}

TEST_F(NbdDeviceTest, UnalignedReads) {
  SCOPED_TRACE(SeedTrace(seed_));
  std::vector<uint8_t> content = RandomBytes(rng_, (3 << 20) + 777);
  Serve(content);
  NbdSourceOptions options;
  options.max_request_bytes = 64 << 10;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  for (int i = 0; i < 200; ++i) {
    uint64_t off = rng_() % content.size();
    uint64_t len = rng_() % std::min<uint64_t>(content.size() - off, 300000);
    std::vector<uint8_t> buf(len + 2, 0xEE);
    ASSERT_TRUE(dev->Read(off, buf.data() + 1, len).ok()) << off << "+" << len;
    EXPECT_EQ(buf[0], 0xEE);
    EXPECT_EQ(buf[len + 1], 0xEE);  // nothing written outside the range
    ASSERT_TRUE(std::equal(buf.begin() + 1, buf.begin() + 1 + len, content.begin() + off))
        << off << "+" << len;
  }
  // The last byte, and an empty read at the end.
  uint8_t last = 0;
  ASSERT_TRUE(dev->Read(content.size() - 1, &last, 1).ok());
  EXPECT_EQ(last, content.back());
  EXPECT_TRUE(dev->Read(content.size(), &last, 0).ok());
}

// An export whose size is not a multiple of the server's minimum block
// size (NBD says it SHOULD be; nbdkit's blocksize-policy filter lets the
// plugin serve the short last block): the last bytes are read in a request
// that ends at the export's end. libnbd refused it itself ("request is
// unaligned"), so the last region could never be copied.
TEST_F(NbdDeviceTest, AnExportCutInsideTheServersMinimumBlockIsReadToItsEnd) {
  SCOPED_TRACE(SeedTrace(seed_));
  std::vector<uint8_t> content = RandomBytes(rng_, (3 << 20) + 777);
  Serve(content, {"--filter=blocksize-policy"}, {"blocksize-minimum=4096"});
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  const uint64_t size = content.size();
  std::vector<uint8_t> tail(100);
  Status s = dev->Read(size - tail.size(), tail.data(), tail.size());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), content.end() - tail.size()));
  // The copier's read of the last region, straight into its buffer.
  const uint64_t region = size - (size % (64 << 10));
  std::vector<uint8_t> buf(size - region, 0xEE);
  std::mutex mu;
  std::condition_variable cv;
  bool called = false;
  Status async;
  dev->ReadAsync(region, buf.data(), buf.size(), [&](Status st) {
    std::lock_guard<std::mutex> l(mu);
    async = st;
    called = true;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(30), [&] { return called; }));
  }
  ASSERT_TRUE(async.ok()) << async.ToString();
  EXPECT_TRUE(std::equal(buf.begin(), buf.end(), content.begin() + region));
  // Block status of the span that holds the end.
  Result<uint64_t> hole = dev->NextHole(size - 10);
  ASSERT_TRUE(hole.ok()) << hole.status().ToString();
  EXPECT_EQ(*hole, size);
}

TEST_F(NbdDeviceTest, ManyConcurrentReadAndReadAsyncCallers) {
  SCOPED_TRACE(SeedTrace(seed_));
  std::vector<uint8_t> content = RandomBytes(rng_, 16 << 20);
  Serve(content);
  NbdSourceOptions options;
  options.max_request_bytes = 128 << 10;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);

  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 r(seed_ + t);
      const bool async = t % 2 == 1;
      for (int i = 0; i < 40 / testing::kSlowdown + 5; ++i) {
        uint64_t off = r() % content.size();
        uint64_t len = 1 + r() % std::min<uint64_t>(content.size() - off, 1 << 20);
        std::vector<uint8_t> buf(len);
        Status s;
        if (async) {
          std::mutex mu;
          std::condition_variable cv;
          bool done = false;
          int calls = 0;
          dev->ReadAsync(off, buf.data(), len, [&](Status st) {
            std::lock_guard<std::mutex> l(mu);
            s = st;
            ++calls;
            done = true;
            cv.notify_all();
          });
          std::unique_lock<std::mutex> l(mu);
          cv.wait(l, [&] { return done; });
          if (calls != 1) ++bad;
        } else {
          s = dev->Read(off, buf.data(), len);
        }
        if (!s.ok() || !std::equal(buf.begin(), buf.end(), content.begin() + off)) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(NbdDeviceTest, ManyReadAsyncsInFlightAtOnce) {
  SCOPED_TRACE(SeedTrace(seed_));
  std::vector<uint8_t> content = RandomBytes(rng_, 8 << 20);
  Serve(content);
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  constexpr int kReads = 256;
  constexpr size_t kLen = 32 << 10;
  std::vector<std::vector<uint8_t>> bufs(kReads, std::vector<uint8_t>(kLen));
  std::vector<uint64_t> offs(kReads);
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0, failed = 0;
  for (int i = 0; i < kReads; ++i) {
    offs[i] = rng_() % (content.size() - kLen);
    dev->ReadAsync(offs[i], bufs[i].data(), kLen, [&](Status s) {
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
}

// SPEC §4 (foreground first): with several connections, the copier's
// ReadAsyncs never take the first one, so a user's Read is served by the
// server next, not after every background piece already queued. The server
// delays every read by 300 ms and serves 16 at a time per connection: the
// 192 background reads take four rounds on three connections; the Read
// must finish in the first round, while most of them still wait.
TEST_F(NbdDeviceTest, AForegroundReadDoesNotQueueBehindBackgroundReads) {
  SCOPED_TRACE(SeedTrace(seed_));
  std::vector<uint8_t> content = RandomBytes(rng_, 8 << 20);
  Serve(content, {"--filter=delay"}, {"rdelay=300ms"});
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  constexpr int kReads = 192;
  constexpr size_t kLen = 32 << 10;
  std::vector<std::vector<uint8_t>> bufs(kReads, std::vector<uint8_t>(kLen));
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;  // GUARDED_BY(mu)
  for (int i = 0; i < kReads; ++i) {
    dev->ReadAsync(static_cast<uint64_t>(i) * kLen, bufs[i].data(), kLen, [&](Status s) {
      EXPECT_TRUE(s.ok()) << s.ToString();
      std::lock_guard<std::mutex> l(mu);
      ++finished;
      cv.notify_all();
    });
  }
  std::vector<uint8_t> mine(kLen);
  ASSERT_TRUE(dev->Read(7 << 20, mine.data(), kLen).ok());
  int done_when_mine_finished;
  {
    std::lock_guard<std::mutex> l(mu);
    done_when_mine_finished = finished;
  }
  EXPECT_TRUE(std::equal(mine.begin(), mine.end(), content.begin() + (7 << 20)));
  EXPECT_LT(done_when_mine_finished, kReads / 2)
      << "the user's read waited behind the background reads";
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return finished == kReads; });
}

TEST_F(NbdDeviceTest, ReadsPastTheEndAreInvalidArgument) {
  std::vector<uint8_t> content = RandomBytes(rng_, 1 << 20);
  Serve(content);
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  std::vector<uint8_t> buf(64);
  Status s = dev->Read(content.size() - 10, buf.data(), 20);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find(dev->Name()), std::string::npos) << s.message();
  EXPECT_TRUE(dev->Read(content.size() + 1, buf.data(), 0).IsInvalidArgument());
  Status async;
  dev->ReadAsync(UINT64_MAX - 5, buf.data(), 10, [&](Status st) { async = st; });
  EXPECT_TRUE(async.IsInvalidArgument()) << async.ToString();
}

TEST_F(NbdDeviceTest, WritesZeroesAndFlushesAreRefused) {
  Serve(RandomBytes(rng_, 1 << 20));
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  uint8_t b = 0;
  EXPECT_EQ(dev->Write(0, &b, 1).code(), Status::Code::kPermission);
  EXPECT_EQ(dev->Zero(0, 4096, ZeroMode::kPunch).code(), Status::Code::kPermission);
  EXPECT_EQ(dev->Flush().code(), Status::Code::kPermission);
}

// The truth about a sparse file: its own SEEK_DATA/SEEK_HOLE.
uint64_t Seek(int fd, uint64_t off, int whence, uint64_t size) {
  off_t r = ::lseek(fd, static_cast<off_t>(off), whence);
  return r < 0 ? size : static_cast<uint64_t>(r);  // ENXIO: none before the end
}

TEST_F(NbdDeviceTest, BlockStatusMatchesTheSparseFile) {
  SCOPED_TRACE(SeedTrace(seed_));
  const uint64_t size = (64 << 20) + 4096 * 3;
  const std::string path = dir_.File("sparse.img");
  ASSERT_TRUE(testing::MakeSparseFile(path, size));
  {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    // Data runs of several sizes, including the file's last bytes.
    const std::vector<std::pair<uint64_t, uint64_t>> runs = {{0, 4096},
                                                             {1 << 20, 1 << 20},
                                                             {(5 << 20) + 8192, 4096},
                                                             {33 << 20, 3 << 20},
                                                             {size - 5000, 5000}};
    for (auto [off, len] : runs) {
      std::vector<uint8_t> data = RandomBytes(rng_, len);
      ASSERT_EQ(::pwrite(fd, data.data(), len, static_cast<off_t>(off)), static_cast<ssize_t>(len));
    }
    ::fsync(fd);
    ::close(fd);
  }
  server_ = std::make_unique<NbdkitServer>(dir_.File("nbd.sock"),
                                           std::vector<std::string>{"-r", "file", path});
  ASSERT_TRUE(server_->Start());
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<uint64_t> offsets = {0,        1,           4095,
                                   4096,     1 << 20,     (2 << 20) - 1,
                                   2 << 20,  5 << 20,     (5 << 20) + 8192,
                                   33 << 20, size - 5001, size - 5000,
                                   size - 1};
  for (int i = 0; i < 300; ++i) offsets.push_back(rng_() % size);
  for (uint64_t off : offsets) {
    Result<uint64_t> data = dev->NextData(off);
    Result<uint64_t> hole = dev->NextHole(off);
    ASSERT_TRUE(data.ok()) << data.status().ToString();
    ASSERT_TRUE(hole.ok()) << hole.status().ToString();
    EXPECT_EQ(*data, Seek(fd, off, SEEK_DATA, size)) << "NextData(" << off << ")";
    EXPECT_EQ(*hole, Seek(fd, off, SEEK_HOLE, size)) << "NextHole(" << off << ")";
  }
  ::close(fd);
  EXPECT_EQ(*dev->NextData(size), size);
  EXPECT_EQ(*dev->NextHole(size), size);
  // Answers come from the cache: asking again sends nothing.
  const uint64_t requests = dev->Health().requests;
  for (uint64_t off : offsets) ASSERT_TRUE(dev->NextData(off).ok());
  EXPECT_EQ(dev->Health().requests, requests);
}

TEST_F(NbdDeviceTest, AServerWithoutExtentsIsAllData) {
  const uint64_t size = 8 << 20;
  const std::string path = dir_.File("sparse.img");
  ASSERT_TRUE(testing::MakeSparseFile(path, size));  // all hole
  server_ = std::make_unique<NbdkitServer>(
      dir_.File("nbd.sock"), std::vector<std::string>{"-r", "--filter=noextents", "file", path});
  ASSERT_TRUE(server_->Start());
  std::unique_ptr<Device> dev = Open();
  ASSERT_TRUE(dev);
  for (uint64_t off : {uint64_t{0}, uint64_t{4096}, size / 2, size - 1}) {
    EXPECT_EQ(*dev->NextData(off), off);
    EXPECT_EQ(*dev->NextHole(off), size);
  }
}

TEST_F(NbdDeviceTest, ConnectionRefusedFailsFastWithAClearMessage) {
  Result<SourceSpec> spec = ParseSource("nbd+unix:///?socket=" + dir_.File("nobody.sock"));
  ASSERT_TRUE(spec.ok());
  Result<std::unique_ptr<Device>> dev = OpenNbdSource(*spec, {});
  ASSERT_FALSE(dev.ok());
  const std::string& m = dev.status().message();
  EXPECT_TRUE(dev.status().IsIoError()) << dev.status().ToString();
  EXPECT_NE(m.find("cannot connect to " + spec->display), std::string::npos) << m;
  EXPECT_NE(m.find("check that the server is running and the URI is right"), std::string::npos)
      << m;
}

// Runs the calling thread (and the threads it starts) on one CPU with the
// SCHED_IDLE policy until destroyed: any other runnable task on that CPU
// (a server woken by our request) preempts it at once.
class IdleOnOneCpu {
 public:
  IdleOnOneCpu() {
    ok_ = ::sched_getaffinity(0, sizeof(old_cpus_), &old_cpus_) == 0 &&
          ::sched_getparam(0, &old_param_) == 0;
    old_policy_ = ::sched_getscheduler(0);
    int cpu = ::sched_getcpu();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu < 0 ? 0 : cpu, &one);
    sched_param idle{};
    ok_ = ok_ && old_policy_ >= 0 && ::sched_setaffinity(0, sizeof(one), &one) == 0 &&
          ::sched_setscheduler(0, SCHED_IDLE, &idle) == 0;
  }
  ~IdleOnOneCpu() {
    ::sched_setscheduler(0, old_policy_, &old_param_);
    ::sched_setaffinity(0, sizeof(old_cpus_), &old_cpus_);
  }
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
  cpu_set_t old_cpus_;
  sched_param old_param_{};
  int old_policy_ = -1;
};

// libnbd finishes the whole handshake with a server on 127.0.0.1 inside
// nbd_aio_connect_uri when the server answers each message before libnbd
// looks for the answer; no socket event follows. Every open must still see
// the connection ready at once, not wait out the timeout. The server on
// the same CPU, with the device's threads at SCHED_IDLE, makes it answer
// first nearly always; without that it happens now and then.
TEST_F(NbdDeviceTest, EveryTcpConnectSucceeds) {
  std::vector<uint8_t> content = RandomBytes(rng_, 1 << 20);
  ASSERT_TRUE(testing::WriteFile(dir_.File("data.img"), content));
  const int port = testing::FreeLoopbackPort();
  ASSERT_GT(port, 0);
  server_ = std::make_unique<NbdkitServer>(
      port, dir_.File("tcp"), std::vector<std::string>{"-r", "file", dir_.File("data.img")});
  ASSERT_TRUE(server_->Start());
  // Pin nbdkit to the CPU this thread runs on.
  const int cpu = ::sched_getcpu();
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu < 0 ? 0 : cpu, &one);
  auto pin_server = [&] {
    for (pid_t tid : testing::TasksOf(server_->pid())) ::sched_setaffinity(tid, sizeof(one), &one);
  };
  pin_server();
  Result<SourceSpec> spec = ParseSource(server_->Uri());
  ASSERT_TRUE(spec.ok()) << spec.status().ToString();
  NbdSourceOptions options;
  options.timeout_ns = 2'000'000'000;
  options.max_connections = 4;  // four handshakes per open
  std::unique_ptr<Device> kept;
  {
    IdleOnOneCpu idle;  // the devices' I/O threads inherit it
    ASSERT_TRUE(idle.ok()) << std::strerror(errno);
    for (int i = 0; i < 20; ++i) {
      const auto start = std::chrono::steady_clock::now();
      Result<std::unique_ptr<Device>> dev = OpenNbdSource(*spec, options);
      ASSERT_TRUE(dev.ok()) << "open " << i << ": " << dev.status().ToString();
      EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1)) << "open " << i;
      std::vector<uint8_t> buf(4096);
      ASSERT_TRUE((*dev)->Read(8192, buf.data(), buf.size()).ok()) << i;
      EXPECT_TRUE(std::equal(buf.begin(), buf.end(), content.begin() + 8192)) << i;
      kept = std::move(*dev);
    }
  }
  // The reconnects go through the same connect: all four come back.
  server_->Kill();
  ASSERT_TRUE(
      testing::WaitFor([&] { return kept->Health().state != SourceHealth::State::kConnected; }));
  ASSERT_TRUE(server_->Start());
  pin_server();
  EXPECT_TRUE(
      testing::WaitFor([&] { return kept->Health().reconnects == 4; }, std::chrono::seconds(5)))
      << kept->Health().reconnects << " reconnects";
  std::vector<uint8_t> buf(4096);
  ASSERT_TRUE(kept->Read(65536, buf.data(), buf.size()).ok());
  EXPECT_TRUE(std::equal(buf.begin(), buf.end(), content.begin() + 65536));
}

TEST_F(NbdDeviceTest, NamedExportsAndTheExportNameIdentity) {
  // nbdkit's default export answers any name; the name travels in the URI.
  Serve(RandomBytes(rng_, 1 << 20));
  Result<SourceSpec> spec = ParseSource(server_->Uri("vm-disk"));
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(SourceIdentityKey(*spec), "vm-disk");
  Result<std::unique_ptr<Device>> dev = OpenNbdSource(*spec, {});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_EQ((*dev)->Size(), 1u << 20);
}

}  // namespace
}  // namespace clonefs
