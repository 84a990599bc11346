// NbdDevice when the server misbehaves: killed and restarted (reconnect and
// reissue), shutting down cleanly (ESHUTDOWN answers: reconnect), stopped (timeout, stalled health,
// interrupt, asynchronous deadline), failing requests (retries, then EIO), restarted with another
// size (Mismatch), and the device destroyed with requests in flight.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "base/cancel.h"
#include "devices/device_test_util.h"
#include "sources/fake_nbd_server.h"
#include "sources/nbd_device.h"
#include "sources/test_server.h"

namespace clonefs {
namespace {

using testing::NbdkitServer;
using testing::RandomBytes;
using testing::TempDir;
using testing::WaitFor;
using State = SourceHealth::State;

// Collects ReadAsync completions.
class Completions {
 public:
  Device::ReadDone Callback(int i) {
    return [this, i](Status s) {
      std::lock_guard<std::mutex> l(mu_);
      status_[i] = s;
      ++calls_[i];
      ++total_;
      cv_.notify_all();
    };
  }
  explicit Completions(int n) : status_(n), calls_(n, 0) {}
  bool WaitAll(std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, limit, [&] { return total_ >= static_cast<int>(calls_.size()); });
  }
  Status status(int i) {
    std::lock_guard<std::mutex> l(mu_);
    return status_[i];
  }
  int calls(int i) {
    std::lock_guard<std::mutex> l(mu_);
    return calls_[i];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Status> status_;
  std::vector<int> calls_;
  int total_ = 0;
};

class NbdFailureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    std::mt19937_64 rng(testing::TestSeed());
    content_ = RandomBytes(rng, 4 << 20);
    ASSERT_TRUE(testing::WriteFile(dir_.File("data.img"), content_));
  }

  // nbdkit -r FILTERS file data.img PARAMS (the filters' parameters).
  void Serve(std::vector<std::string> filters, const std::vector<std::string>& params = {}) {
    filters.insert(filters.end(), {"-r", "file", dir_.File("data.img")});
    filters.insert(filters.end(), params.begin(), params.end());
    server_ = std::make_unique<NbdkitServer>(dir_.File("nbd.sock"), filters);
    ASSERT_TRUE(server_->Start());
  }

  std::unique_ptr<Device> Open(NbdSourceOptions options) {
    return testing::OpenNbdUri(server_->Uri(), options);
  }

  bool Matches(const std::vector<uint8_t>& buf, uint64_t off) const {
    return std::equal(buf.begin(), buf.end(), content_.begin() + off);
  }

  TempDir dir_;
  std::vector<uint8_t> content_;
  std::unique_ptr<NbdkitServer> server_;
};

TEST_F(NbdFailureTest, KilledServerIsReconnectedAndInFlightReadsReissued) {
  Serve({"--filter=delay"}, {"rdelay=1"});  // keeps reads in flight for 1 s
  NbdSourceOptions options;
  options.max_connections = 1;  // one connection: exactly one reconnect
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);

  constexpr int kReads = 8;
  constexpr size_t kLen = 64 << 10;
  std::vector<std::vector<uint8_t>> bufs(kReads, std::vector<uint8_t>(kLen));
  Completions done(kReads);
  for (int i = 0; i < kReads; ++i) {
    dev->ReadAsync(i * 300000, bufs[i].data(), kLen, done.Callback(i));
  }
  ASSERT_TRUE(WaitFor([&] { return dev->Health().requests >= kReads; }));
  server_->Kill();
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kReconnecting; }));
  SourceHealth down = dev->Health();
  EXPECT_NE(down.since_unix_ns, 0u);
  EXPECT_NE(down.last_error.find("lost"), std::string::npos) << down.last_error;
  ASSERT_TRUE(server_->Start());  // same socket

  ASSERT_TRUE(done.WaitAll());
  for (int i = 0; i < kReads; ++i) {
    EXPECT_TRUE(done.status(i).ok()) << i << ": " << done.status(i).ToString();
    EXPECT_EQ(done.calls(i), 1);
    EXPECT_TRUE(Matches(bufs[i], i * 300000)) << i;
  }
  SourceHealth up = dev->Health();
  EXPECT_EQ(up.state, State::kConnected);
  EXPECT_EQ(up.reconnects, 1u);
  EXPECT_GE(up.retries, static_cast<uint64_t>(kReads));
  std::vector<uint8_t> again(4096);
  ASSERT_TRUE(dev->Read(12345, again.data(), again.size()).ok());
  EXPECT_TRUE(Matches(again, 12345));
}

// nbdkit on SIGTERM shuts down cleanly: it keeps the connection open but
// answers every request with ESHUTDOWN. That is a lost connection, not a
// failed read: health says reconnecting, the read waits, and a server
// started again on the same socket within the timeout answers it. (A
// nbdkit still shutting down may instead close or reset the connection
// first, or even take a reconnect and answer the read before it exits: the
// read must then have succeeded. What it may never do is fail.)
TEST_F(NbdFailureTest, ServerShuttingDownIsReconnectedAndTheReadWaits) {
  Serve({});
  NbdSourceOptions options;
  options.max_connections = 1;
  options.timeout_ns = 15'000'000'000;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  std::vector<uint8_t> first(4096);
  ASSERT_TRUE(dev->Read(0, first.data(), first.size()).ok());

  // SIGTERM with the connection idle; nbdkit exits once clonefs hangs up.
  server_->Signal(SIGTERM);
  std::vector<uint8_t> buf(64 << 10);
  Status read_status = Status::IoError("not done");
  std::atomic<bool> read_done{false};
  std::thread reader([&] {
    read_status = dev->Read(1 << 20, buf.data(), buf.size());
    read_done = true;
  });
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kReconnecting || read_done; },
                      std::chrono::seconds(5)))
      << "health: " << static_cast<int>(dev->Health().state) << ", read pending";
  if (read_done && dev->Health().state != State::kReconnecting) {
    // Answered before nbdkit acted on the signal (seen under load): it must
    // have succeeded, with the right bytes.
    reader.join();
    ASSERT_TRUE(read_status.ok()) << read_status.ToString();
    EXPECT_TRUE(Matches(buf, 1 << 20));
    return;
  }
  EXPECT_NE(dev->Health().since_unix_ns, 0u);
  // Why it was lost depends on how far nbdkit got ("shutting down", "closed
  // the connection", "Connection reset by peer"): any of them is a lost
  // connection, not a failed read.
  // (A first failed reconnect may already have replaced it.)
  const std::string why = dev->Health().last_error;
  EXPECT_TRUE(why.find("lost") != std::string::npos ||
              why.find("reconnecting") != std::string::npos)
      << why;
  // The old server is gone once the connection was dropped.
  EXPECT_TRUE(server_->WaitExit(std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  if (read_done) {
    // Answered by the old server before it exited.
    EXPECT_TRUE(read_status.ok()) << read_status.ToString();
  } else {
    EXPECT_EQ(dev->Health().state, State::kReconnecting);
  }
  ASSERT_TRUE(server_->Start());  // same socket

  reader.join();
  ASSERT_TRUE(read_status.ok()) << read_status.ToString();
  EXPECT_TRUE(Matches(buf, 1 << 20));
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kConnected; }));
  EXPECT_GE(dev->Health().reconnects, 1u);
}

TEST_F(NbdFailureTest, EveryConnectionReconnects) {
  Serve({});
  NbdSourceOptions options;
  options.max_connections = 4;  // nbdkit's file plugin advertises multi-conn
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  server_->Kill();
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kReconnecting; }));
  ASSERT_TRUE(server_->Start());
  ASSERT_TRUE(WaitFor([&] { return dev->Health().reconnects == 4; }));
  EXPECT_EQ(dev->Health().state, State::kConnected);
  std::vector<uint8_t> buf(1 << 20);
  ASSERT_TRUE(dev->Read(7, buf.data(), buf.size()).ok());
  EXPECT_TRUE(Matches(buf, 7));
}

// A multi-conn server that comes back with room for fewer clients (a slot
// taken by another client meanwhile, a lower limit): the connection that
// finds none keeps trying, but the source is up through the other. The
// reads queued while it was down (the copier's, on the connection it uses)
// are served through the one that connected, even if that is the first
// connection, and health says connected, so the copier does not pause for
// good.
TEST_F(NbdFailureTest, ServerBackWithFewerSlotsServesThroughTheConnectionsItTook) {
  Serve({"--filter=limit"}, {"limit=2"});
  NbdSourceOptions options;
  options.max_connections = 2;  // both taken at open
  options.timeout_ns = 10'000'000'000;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  server_->Kill();
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kReconnecting; }));

  constexpr int kReads = 8;
  constexpr size_t kLen = 64 << 10;
  std::vector<std::vector<uint8_t>> bufs(kReads, std::vector<uint8_t>(kLen));
  Completions done(kReads);
  for (int i = 0; i < kReads; ++i) {
    dev->ReadAsync(i * 300000, bufs[i].data(), kLen, done.Callback(i));
  }
  Serve({"--filter=limit"}, {"limit=1"});  // same socket, one client only

  ASSERT_TRUE(
      WaitFor([&] { return dev->Health().state == State::kConnected; }, std::chrono::seconds(8)))
      << "health: " << SourceStateName(dev->Health().state);
  ASSERT_TRUE(done.WaitAll());
  for (int i = 0; i < kReads; ++i) {
    EXPECT_TRUE(done.status(i).ok()) << i << ": " << done.status(i).ToString();
    EXPECT_TRUE(Matches(bufs[i], i * 300000)) << i;
  }
  std::vector<uint8_t> buf(1 << 20);
  ASSERT_TRUE(dev->Read(7, buf.data(), buf.size()).ok());
  EXPECT_TRUE(Matches(buf, 7));
  EXPECT_EQ(dev->Health().state, State::kConnected);
  EXPECT_EQ(dev->Health().reconnects, 1u);  // the other is still refused
}

// A structured reply may come in chunks, in any order: a read answered in
// two, the second half first, is whole. One whose chunks overlap and leave
// bytes out (here: the first half twice, as many bytes as were asked for)
// is not: libnbd reports success, and the bytes left out are whatever the
// buffer held (libnbd is told not to zero it), so they must never be
// passed on as the source's -- not by Read (its pooled buffers hold other
// reads' bytes) nor by the copier's ReadAsync straight into its buffer.
TEST_F(NbdFailureTest, ReadAnswerThatLeavesBytesOutIsAnError) {
  using FakeNbdServer = testing::FakeNbdServer;
  constexpr uint64_t kSize = 1 << 20;
  constexpr size_t kLen = 256 << 10;
  auto expect_source_bytes = [](const std::vector<uint8_t>& buf, uint64_t off) {
    for (size_t i = 0; i < buf.size(); ++i) {
      if (buf[i] != FakeNbdServer::Byte(off + i)) {
        ADD_FAILURE() << "byte " << off + i << " is not the source's";
        return;
      }
    }
  };
  NbdSourceOptions options;
  options.max_connections = 1;
  {
    FakeNbdServer server(dir_.File("chunks.sock"), kSize);
    server.set_read_answer(FakeNbdServer::ReadAnswer::kTwoChunksBackwards);
    ASSERT_TRUE(server.Start());
    std::unique_ptr<Device> dev = testing::OpenNbdUri(server.Uri(), options);
    ASSERT_TRUE(dev);
    std::vector<uint8_t> buf(kLen, 0xEE);
    Status s = dev->Read(4096, buf.data(), buf.size());
    ASSERT_TRUE(s.ok()) << s.ToString();
    expect_source_bytes(buf, 4096);
    std::fill(buf.begin(), buf.end(), 0xEE);
    Completions done(1);
    dev->ReadAsync(kLen, buf.data(), buf.size(), done.Callback(0));
    ASSERT_TRUE(done.WaitAll());
    ASSERT_TRUE(done.status(0).ok()) << done.status(0).ToString();
    expect_source_bytes(buf, kLen);
  }
  FakeNbdServer server(dir_.File("overlap.sock"), kSize);
  server.set_read_answer(FakeNbdServer::ReadAnswer::kFirstHalfTwice);
  ASSERT_TRUE(server.Start());
  std::unique_ptr<Device> dev = testing::OpenNbdUri(server.Uri(), options);
  ASSERT_TRUE(dev);
  std::vector<uint8_t> buf(kLen, 0xEE);
  Status s = dev->Read(4096, buf.data(), buf.size());
  if (s.ok()) expect_source_bytes(buf, 4096);
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_EQ(s.sys_errno(), EIO) << s.ToString();
  EXPECT_NE(s.message().find("left out"), std::string::npos) << s.message();
  Completions done(1);
  dev->ReadAsync(kLen, buf.data(), buf.size(), done.Callback(0));
  ASSERT_TRUE(done.WaitAll());
  if (done.status(0).ok()) expect_source_bytes(buf, kLen);
  EXPECT_TRUE(done.status(0).IsIoError()) << done.status(0).ToString();
  EXPECT_EQ(done.status(0).sys_errno(), EIO) << done.status(0).ToString();
  EXPECT_NE(dev->Health().last_error.find("left out"), std::string::npos)
      << dev->Health().last_error;
}

// The check of a read's chunks holds for a server without structured
// replies too (one simple reply fills the whole read).
TEST_F(NbdFailureTest, SimpleRepliesFillTheWholeRead) {
  Serve({"--no-sr"});
  NbdSourceOptions options;
  options.max_connections = 1;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  std::vector<uint8_t> buf(300000);
  Status s = dev->Read(12345, buf.data(), buf.size());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Matches(buf, 12345));
  std::vector<uint8_t> whole(1 << 20);
  Completions done(1);
  dev->ReadAsync(1 << 20, whole.data(), whole.size(), done.Callback(0));
  ASSERT_TRUE(done.WaitAll());
  ASSERT_TRUE(done.status(0).ok()) << done.status(0).ToString();
  EXPECT_TRUE(Matches(whole, 1 << 20));
}

TEST_F(NbdFailureTest, StoppedServerTimesOutAndRecovers) {
  Serve({});
  NbdSourceOptions options;
  options.timeout_ns = 1'000'000'000;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  ASSERT_TRUE(server_->Pause());
  std::vector<uint8_t> stale(8192, 0xAB);
  Status s = dev->Read(4096, stale.data(), stale.size());
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_EQ(s.sys_errno(), ETIMEDOUT);
  EXPECT_NE(s.message().find(dev->Name()), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("1 s"), std::string::npos) << s.message();
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kStalled; }));
  EXPECT_NE(dev->Health().since_unix_ns, 0u);
  // The abandoned read is still in flight: the oldest request, sent a
  // timeout before the stall was declared.
  const SourceHealth stalled = dev->Health();
  EXPECT_NE(stalled.oldest_request_unix_ns, 0u);
  EXPECT_LT(stalled.oldest_request_unix_ns, stalled.since_unix_ns);

  server_->Resume();
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kConnected; }));
  ASSERT_TRUE(WaitFor([&] { return dev->Health().oldest_request_unix_ns == 0; }));
  // The abandoned read was answered late; its bytes never reached the
  // buffer that was given back.
  ASSERT_TRUE(WaitFor([&] { return dev->Health().bytes_read >= stale.size(); }));
  EXPECT_TRUE(std::all_of(stale.begin(), stale.end(), [](uint8_t b) { return b == 0xAB; }));
  std::vector<uint8_t> buf(8192);
  ASSERT_TRUE(dev->Read(4096, buf.data(), buf.size()).ok());
  EXPECT_TRUE(Matches(buf, 4096));
  EXPECT_EQ(dev->Health().reconnects, 0u);  // the connection survived
}

TEST_F(NbdFailureTest, ReadAsyncGetsTheDeadlineToo) {
  Serve({});
  NbdSourceOptions options;
  options.timeout_ns = 500'000'000;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  ASSERT_TRUE(server_->Pause());
  std::vector<uint8_t> buf(4096);
  Completions done(1);
  const std::thread::id caller = std::this_thread::get_id();
  std::atomic<bool> on_caller{false};
  auto cb = done.Callback(0);
  dev->ReadAsync(0, buf.data(), buf.size(), [&, cb](Status s) {
    on_caller = std::this_thread::get_id() == caller;
    cb(s);
  });
  ASSERT_TRUE(done.WaitAll());
  EXPECT_EQ(done.status(0).sys_errno(), ETIMEDOUT) << done.status(0).ToString();
  EXPECT_FALSE(on_caller.load());
  // The read went straight into `buf` (no copy), so done came only once
  // the connection holding it was closed: the late answer can never land
  // in a buffer its caller already reuses.
  std::fill(buf.begin(), buf.end(), 0xAB);
  server_->Resume();
  ASSERT_TRUE(WaitFor([&] {
    SourceHealth h = dev->Health();
    return h.state == State::kConnected && h.reconnects >= 1;
  }));
  std::vector<uint8_t> again(4096);
  ASSERT_TRUE(dev->Read(0, again.data(), again.size()).ok());
  EXPECT_TRUE(Matches(again, 0));
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0xAB; }));
  EXPECT_EQ(done.calls(0), 1);
}

TEST_F(NbdFailureTest, CancelledTokenInterruptsAWaitingRead) {
  Serve({});
  NbdSourceOptions options;  // 30 s timeout: only the token can end the wait
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  ASSERT_TRUE(server_->Pause());
  CancelToken token;
  std::atomic<bool> started{false};
  Status s;
  std::vector<uint8_t> buf(65536, 0x5A);
  std::thread reader([&] {
    ScopedCancelToken scope(&token);
    started = true;
    s = dev->Read(0, buf.data(), buf.size());
  });
  ASSERT_TRUE(WaitFor([&] { return started && dev->Health().requests >= 1; }));
  token.Cancel();
  reader.join();
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_EQ(s.sys_errno(), EINTR);
  EXPECT_NE(s.message().find("read interrupted"), std::string::npos) << s.message();
  server_->Resume();
  // The late answer is dropped; the buffer was given back untouched.
  ASSERT_TRUE(WaitFor([&] { return dev->Health().bytes_read >= 65536; }));
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0x5A; }));
}

TEST_F(NbdFailureTest, ShortErrorBurstIsRetriedAway) {
  const std::string flag = dir_.File("errors-on");
  Serve({"--filter=error"}, {"error-pread-rate=100%", "error-pread-file=" + flag});
  std::unique_ptr<Device> dev = Open({});
  ASSERT_TRUE(dev);
  ASSERT_TRUE(testing::WriteFile(flag, {1}));
  Status s;
  std::vector<uint8_t> buf(100000);
  std::thread reader([&] { s = dev->Read(1000, buf.data(), buf.size()); });
  ASSERT_TRUE(WaitFor([&] { return dev->Health().errors >= 1; }));
  ::unlink(flag.c_str());  // the burst ends before the retries run out
  reader.join();
  EXPECT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Matches(buf, 1000));
  SourceHealth h = dev->Health();
  EXPECT_GE(h.retries, 1u);
  EXPECT_NE(h.last_error.find("Input/output error"), std::string::npos) << h.last_error;
  EXPECT_NE(h.last_error_unix_ns, 0u);
}

TEST_F(NbdFailureTest, PermanentErrorFailsWithEioAfterTheRetries) {
  const std::string flag = dir_.File("errors-on");
  ASSERT_TRUE(testing::WriteFile(flag, {1}));
  Serve({"--filter=error"}, {"error-pread-rate=100%", "error-pread-file=" + flag});
  std::unique_ptr<Device> dev = Open({});
  ASSERT_TRUE(dev);
  std::vector<uint8_t> buf(4096);
  Status s = dev->Read(0, buf.data(), buf.size());
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_EQ(s.sys_errno(), EIO);
  EXPECT_NE(s.message().find("4 tries"), std::string::npos) << s.message();
  SourceHealth h = dev->Health();
  EXPECT_EQ(h.retries, 3u);
  EXPECT_EQ(h.errors, 4u);
  EXPECT_EQ(h.state, State::kConnected);  // the server answered: not a connection problem
}

TEST_F(NbdFailureTest, SizeChangeAtReconnectFailsEveryRead) {
  server_ = std::make_unique<NbdkitServer>(dir_.File("nbd.sock"),
                                           std::vector<std::string>{"memory", "1M"});
  ASSERT_TRUE(server_->Start());
  NbdSourceOptions options;
  options.max_connections = 1;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  EXPECT_TRUE(dev->CheckUnchanged().ok());
  server_->Kill();
  server_ = std::make_unique<NbdkitServer>(dir_.File("nbd.sock"),
                                           std::vector<std::string>{"memory", "2M"});
  ASSERT_TRUE(server_->Start());
  ASSERT_TRUE(WaitFor([&] { return !dev->CheckUnchanged().ok(); }));
  Status c = dev->CheckUnchanged();
  EXPECT_TRUE(c.IsMismatch()) << c.ToString();
  EXPECT_NE(c.message().find("size changed from 1048576 to 2097152"), std::string::npos)
      << c.message();
  // The connection is up again, but the health says what matters.
  SourceHealth h = dev->Health();
  EXPECT_EQ(h.state, State::kChanged);
  EXPECT_EQ(h.change, c.message());
  EXPECT_NE(h.since_unix_ns, 0u);
  EXPECT_FALSE(h.up());
  std::vector<uint8_t> buf(4096);
  EXPECT_TRUE(dev->Read(0, buf.data(), buf.size()).IsMismatch());
  Status async;
  dev->ReadAsync(0, buf.data(), buf.size(), [&](Status s) { async = s; });
  EXPECT_TRUE(async.IsMismatch());
}

TEST_F(NbdFailureTest, DestroyingTheDeviceAbortsEveryRequestInFlight) {
  Serve({});
  std::unique_ptr<Device> dev = Open({});
  ASSERT_TRUE(dev);
  ASSERT_TRUE(server_->Pause());
  constexpr int kReads = 64;
  Completions done(kReads);
  // Heap buffers freed right after their done: a late write would be a
  // use-after-free under ASan.
  std::vector<uint8_t*> bufs(kReads);
  for (int i = 0; i < kReads; ++i) {
    bufs[i] = new uint8_t[100000];
    auto cb = done.Callback(i);
    uint8_t* b = bufs[i];
    dev->ReadAsync(i * 50000, b, 100000, [cb, b](Status s) {
      cb(s);
      delete[] b;
    });
  }
  ASSERT_TRUE(WaitFor([&] { return dev->Health().requests >= 4; }));
  dev.reset();  // every done is called before this returns
  for (int i = 0; i < kReads; ++i) {
    EXPECT_EQ(done.calls(i), 1) << i;
    EXPECT_EQ(done.status(i).code(), Status::Code::kAborted) << done.status(i).ToString();
  }
  server_->Resume();
}

}  // namespace
}  // namespace clonefs
