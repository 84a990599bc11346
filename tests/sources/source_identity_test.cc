// A remote source whose identity changes under a live device (SPEC §7a):
// nbdkit killed and restarted on the same socket serving other bytes of the
// same size (no byte of them may be returned; the device reports Mismatch
// from then on), restarted with the same bytes (the reconnect still works),
// and the served file modified in place without any reconnect (the
// periodic re-check finds it). The identity check is the mount's own
// (clone::RemoteIdentityCheck).
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "base/log.h"
#include "clone/identity.h"
#include "devices/device_test_util.h"
#include "sources/nbd_device.h"
#include "sources/test_server.h"

namespace clonefs {
namespace {

using testing::NbdkitServer;
using testing::WaitFor;
using State = SourceHealth::State;

constexpr uint64_t kSize = 4 << 20;
constexpr uint64_t kChangedOff = 2 << 20;  // the middle: on fp1's and fp2's samples
constexpr uint64_t kChangedLen = 1 << 20;

class SourceIdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    std::mt19937_64 rng(testing::TestSeed());
    content_ = testing::RandomBytes(rng, kSize);
    other_ = content_;
    std::vector<uint8_t> changed = testing::RandomBytes(rng, kChangedLen);
    std::copy(changed.begin(), changed.end(), other_.begin() + kChangedOff);
    ASSERT_TRUE(testing::WriteFile(dir_.File("data.img"), content_));
    ASSERT_TRUE(testing::WriteFile(dir_.File("other.img"), other_));
  }

  void Serve(const std::string& file) {
    server_ = std::make_unique<NbdkitServer>(
        dir_.File("nbd.sock"), std::vector<std::string>{"-r", "file", dir_.File(file)});
    ASSERT_TRUE(server_->Start());
  }

  // Opens the source and gives it the identity check a mount gives it.
  std::unique_ptr<Device> Open(NbdSourceOptions options) {
    Result<SourceSpec> spec = ParseSource(server_->Uri());
    EXPECT_TRUE(spec.ok());
    if (!spec.ok()) return nullptr;
    std::unique_ptr<Device> dev = testing::OpenNbdUri(server_->Uri(), options);
    if (!dev) return nullptr;
    Result<metadata::FileIdentity> id = clone::RemoteSourceIdentity(*dev, spec->display, "");
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    if (!id.ok()) return nullptr;
    dev->SetIdentityCheck(clone::RemoteIdentityCheck(*id, spec->display, ""));
    return dev;
  }

  // True if no byte of `buf` (read at `off`) is a changed byte of other_.
  bool HasNoNewByte(const std::vector<uint8_t>& buf, uint64_t off) const {
    for (size_t i = 0; i < buf.size(); ++i) {
      if (buf[i] != content_[off + i] && buf[i] == other_[off + i]) return false;
    }
    return true;
  }

  testing::TempDir dir_;
  std::vector<uint8_t> content_, other_;
  std::unique_ptr<NbdkitServer> server_;
};

TEST_F(SourceIdentityTest, RestartedWithOtherContentOfTheSameSizeIsAChange) {
  Serve("data.img");
  NbdSourceOptions options;
  options.timeout_ns = 10'000'000'000;
  options.identity_recheck_ns = 0;  // only the reconnect may find it
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  std::vector<uint8_t> buf(kChangedLen);
  ASSERT_TRUE(dev->Read(kChangedOff, buf.data(), buf.size()).ok());
  ASSERT_TRUE(dev->NextData(kChangedOff).ok());  // extents cached

  server_->Kill();
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kReconnecting; }));
  // Reads issued while it is down wait for the reconnect.
  constexpr int kReads = 4;
  std::vector<std::vector<uint8_t>> bufs(kReads, std::vector<uint8_t>(256 << 10));
  std::vector<Status> results(kReads);
  std::vector<std::thread> readers;
  for (int i = 0; i < kReads; ++i) {
    readers.emplace_back([&, i] {
      results[i] = dev->Read(kChangedOff + i * (256 << 10), bufs[i].data(), bufs[i].size());
    });
  }
  Serve("other.img");
  for (auto& t : readers) t.join();
  for (int i = 0; i < kReads; ++i) {
    EXPECT_FALSE(results[i].ok()) << i << ": a read was served from the other source";
    EXPECT_TRUE(HasNoNewByte(bufs[i], kChangedOff + i * (256 << 10))) << i;
  }
  Status c = dev->CheckUnchanged();
  EXPECT_TRUE(c.IsMismatch()) << c.ToString();
  EXPECT_NE(c.message().find("fingerprint differs"), std::string::npos) << c.message();
  std::fill(buf.begin(), buf.end(), 0);
  Status r = dev->Read(kChangedOff, buf.data(), buf.size());
  EXPECT_TRUE(r.IsMismatch()) << r.ToString();
  EXPECT_TRUE(HasNoNewByte(buf, kChangedOff));
  EXPECT_FALSE(dev->NextData(kChangedOff).ok()) << "the cached extents were kept";
  EXPECT_NE(dev->Health().last_error.find("not the same after reconnecting"), std::string::npos)
      << dev->Health().last_error;
}

TEST_F(SourceIdentityTest, RestartedWithTheSameContentKeepsWorking) {
  Serve("data.img");
  NbdSourceOptions options;
  options.timeout_ns = 10'000'000'000;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  server_->Kill();
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kReconnecting; }));
  std::vector<uint8_t> buf(kChangedLen);
  std::thread reader([&] { EXPECT_TRUE(dev->Read(kChangedOff, buf.data(), buf.size()).ok()); });
  Serve("data.img");
  reader.join();
  EXPECT_TRUE(std::equal(buf.begin(), buf.end(), content_.begin() + kChangedOff));
  EXPECT_TRUE(dev->CheckUnchanged().ok());
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kConnected; }));
  EXPECT_GE(dev->Health().reconnects, 1u);
  std::vector<uint8_t> all(kSize);
  ASSERT_TRUE(dev->Read(0, all.data(), all.size()).ok());
  EXPECT_TRUE(all == content_);
}

TEST_F(SourceIdentityTest, ContentChangedInPlaceIsFoundByTheRecheck) {
  ASSERT_TRUE(testing::WriteFile(dir_.File("live.img"), content_));
  Serve("live.img");
  NbdSourceOptions options;
  options.identity_recheck_ns = 200'000'000;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(dev->CheckUnchanged().ok());  // starts a re-check: the same
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_TRUE(dev->CheckUnchanged().ok()) << "an unchanged source was reported changed";
  {
    // In place: same inode, same size, only the changed MiB rewritten.
    std::fstream f(dir_.File("live.img"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(kChangedOff);
    f.write(reinterpret_cast<const char*>(other_.data() + kChangedOff), kChangedLen);
    ASSERT_TRUE(f.good());
  }
  ASSERT_TRUE(WaitFor([&] { return !dev->CheckUnchanged().ok(); }, std::chrono::seconds(10)));
  Status c = dev->CheckUnchanged();
  EXPECT_TRUE(c.IsMismatch()) << c.ToString();
  EXPECT_NE(c.message().find("changed under the live clone"), std::string::npos) << c.message();
  std::vector<uint8_t> buf(4096);
  EXPECT_TRUE(dev->Read(kChangedOff, buf.data(), buf.size()).IsMismatch());
}

// A source that keeps failing the reads of the re-check's samples (a bad
// range under one of them) is not a change, and says so in the log: once,
// not at every re-check (every 2 s after a source error, which rotated the
// rest of the log away within a day).
TEST_F(SourceIdentityTest, AReCheckThatKeepsFailingIsLoggedOnce) {
  const std::string flag = dir_.File("errors-on");
  server_ = std::make_unique<NbdkitServer>(
      dir_.File("nbd.sock"),
      std::vector<std::string>{"-r", "--filter=error", "file", dir_.File("data.img"),
                               "error-pread-rate=100%", "error-pread-file=" + flag});
  ASSERT_TRUE(server_->Start());
  NbdSourceOptions options;
  options.timeout_ns = 1'000'000'000;
  options.identity_recheck_ns = 100'000'000;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  const std::string log = dir_.File("log");
  ASSERT_TRUE(SetLogToFile(log).ok());
  ASSERT_TRUE(testing::WriteFile(flag, {1}));
  const auto count = [&] {
    std::ifstream f(log);
    std::string line;
    int n = 0;
    while (std::getline(f, line)) n += line.find("could not re-check") != std::string::npos;
    return n;
  };
  // Re-checks started as the copier's periodic check starts them: until
  // the first warning, then for 5 s more (each re-check takes ~2 s here:
  // its reads fail after their retries, then a fresh connection's).
  const auto poll_until = [&](auto done) {
    while (!done()) {
      EXPECT_TRUE(dev->CheckUnchanged().ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  poll_until([&] { return count() >= 1 || std::chrono::steady_clock::now() > give_up; });
  ASSERT_EQ(count(), 1) << "the re-check's failure was not logged";
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  poll_until([&] { return std::chrono::steady_clock::now() > end; });
  const int lines = count();
  SetLogToStderr();
  EXPECT_EQ(lines, 1) << "one warning for one lasting trouble";
  EXPECT_EQ(dev->Health().state, State::kConnected);
}

// An NBD server tells the size only at the handshake: an export that shrank
// under the live connections answers the check's reads past its new end
// with EIO, and the re-check used to log that and go on, so the copier
// failed and retried forever with the source never reported as changed. A
// fresh connection sees the new size.
TEST_F(SourceIdentityTest, ExportShrunkUnderTheLiveDeviceIsFoundByTheRecheck) {
  ASSERT_TRUE(testing::WriteFile(dir_.File("live.img"), content_));
  Serve("live.img");
  NbdSourceOptions options;
  options.timeout_ns = 5'000'000'000;
  options.identity_recheck_ns = 200'000'000;
  std::unique_ptr<Device> dev = Open(options);
  ASSERT_TRUE(dev);
  ASSERT_EQ(truncate(dir_.File("live.img").c_str(), kSize / 2), 0);
  std::vector<uint8_t> buf(4096);
  EXPECT_FALSE(dev->Read(kSize - buf.size(), buf.data(), buf.size()).ok());
  ASSERT_TRUE(WaitFor([&] { return !dev->CheckUnchanged().ok(); }, std::chrono::seconds(10)))
      << "the shrunk export was never reported";
  Status c = dev->CheckUnchanged();
  EXPECT_TRUE(c.IsMismatch()) << c.ToString();
  EXPECT_NE(c.message().find("size changed from " + std::to_string(kSize) + " to " +
                             std::to_string(kSize / 2) + " bytes"),
            std::string::npos)
      << c.message();
  EXPECT_TRUE(dev->Read(0, buf.data(), buf.size()).IsMismatch());
  EXPECT_EQ(dev->Health().state, State::kChanged);
}

}  // namespace
}  // namespace clonefs
