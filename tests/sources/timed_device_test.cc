// TimedSource over a fake inner device whose reads block until released:
// the source timeout, interrupts, the caller's buffer never touched by a
// late answer, stuck threads left behind and replaced, ReadAsync straight
// through, and destruction. Also OpenSource on a file.
#include "sources/timed_device.h"

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "base/cancel.h"
#include "devices/device_test_util.h"
#include "devices/mem_device.h"
#include "sources/open_source.h"
#include "sources/test_server.h"
#include "support/open_files.h"

namespace clonefs {
namespace {

using testing::WaitFor;
using State = SourceHealth::State;

// Shared with the test, so it outlives the device (a stuck thread may hold
// the device after the wrapper is gone).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;  // GUARDED_BY(mu)
  std::atomic<int> entered{0};
  std::atomic<int> returned{0};
  std::atomic<bool> destroyed{false};
  // NextData, NextHole and CheckUnchanged wait for the gate too (a stalled
  // NFS server blocks lseek and fstat as it blocks reads).
  std::atomic<bool> block_meta{false};

  void WaitIfBlocked(bool blocked) {
    if (!blocked) return;
    ++entered;
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return open; });
  }

  void Open() {
    std::lock_guard<std::mutex> l(mu);
    open = true;
    cv.notify_all();
  }
};

// Reads overlapping [blocked_off, blocked_off + blocked_len) wait for the
// gate; everything else goes to a MemDevice.
class BlockingDevice final : public Device {
 public:
  BlockingDevice(std::unique_ptr<Device> base, std::shared_ptr<Gate> gate, uint64_t blocked_off,
                 uint64_t blocked_len)
      : base_(std::move(base)), gate_(std::move(gate)), off_(blocked_off), len_(blocked_len) {}
  ~BlockingDevice() override { gate_->destroyed = true; }

  uint64_t Size() const override { return base_->Size(); }
  bool ReadOnly() const override { return base_->ReadOnly(); }
  const std::string& Name() const override { return base_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override {
    if (off < off_ + len_ && off + len > off_) {
      ++gate_->entered;
      std::unique_lock<std::mutex> l(gate_->mu);
      gate_->cv.wait(l, [&] { return gate_->open; });
    }
    Status s = base_->Read(off, buf, len);
    ++gate_->returned;
    return s;
  }
  Status Write(uint64_t off, const void* buf, size_t len) override {
    return base_->Write(off, buf, len);
  }
  Status Flush() override { return base_->Flush(); }
  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    return base_->Zero(off, len, mode);
  }
  Result<uint64_t> NextData(uint64_t off) override {
    gate_->WaitIfBlocked(gate_->block_meta);
    return base_->NextData(off);
  }
  Result<uint64_t> NextHole(uint64_t off) override {
    gate_->WaitIfBlocked(gate_->block_meta);
    return base_->NextHole(off);
  }
  Status CheckUnchanged() override {
    gate_->WaitIfBlocked(gate_->block_meta);
    return Status::Mismatch("fake: changed");
  }
  int SpliceFd() const override { return 42; }

 private:
  std::unique_ptr<Device> base_;
  std::shared_ptr<Gate> gate_;
  const uint64_t off_, len_;
};

class TimedDeviceTest : public ::testing::Test {
 protected:
  TimedDeviceTest() : rng_(7) {
    content_ = testing::RandomBytes(rng_, 1 << 20);
    // Holes at [256 KiB, 512 KiB) so NextData/NextHole have something to say.
    std::fill(content_.begin() + (256 << 10), content_.begin() + (512 << 10), 0);
  }

  std::unique_ptr<Device> Make(uint64_t timeout_ns, int threads, uint64_t blocked_off = 0,
                               uint64_t blocked_len = 0) {
    auto inner = std::make_unique<BlockingDevice>(NewMemDeviceFrom(content_, true, "slow.img"),
                                                  gate_, blocked_off, blocked_len);
    TimedSourceOptions o;
    o.timeout_ns = timeout_ns;
    o.threads = threads;
    return MakeTimedSource(std::move(inner), o);
  }

  bool Matches(const uint8_t* buf, uint64_t off, size_t len) const {
    return std::equal(buf, buf + len, content_.begin() + off);
  }

  std::mt19937_64 rng_;
  std::vector<uint8_t> content_;
  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();
};

TEST_F(TimedDeviceTest, ReadsAndEverythingElseForward) {
  std::unique_ptr<Device> dev = Make(30'000'000'000, 4);
  EXPECT_EQ(dev->Size(), content_.size());
  EXPECT_EQ(dev->Name(), "slow.img");
  EXPECT_TRUE(dev->ReadOnly());
  EXPECT_TRUE(dev->AsyncReads());
  EXPECT_FALSE(dev->RemoteHoleQueries()) << "lseek on a local file is no round trip";
  EXPECT_EQ(dev->SpliceFd(), 42);
  EXPECT_TRUE(dev->CheckUnchanged().IsMismatch());
  EXPECT_EQ(*dev->NextHole(0), 256u << 10);
  EXPECT_EQ(*dev->NextData(256 << 10), 512u << 10);
  EXPECT_EQ(dev->Write(0, content_.data(), 1).code(), Status::Code::kPermission);
  EXPECT_EQ(dev->Health().state, State::kConnected);

  std::vector<uint8_t> buf(content_.size());
  ASSERT_TRUE(dev->Read(0, buf.data(), buf.size()).ok());
  EXPECT_TRUE(Matches(buf.data(), 0, buf.size()));
  for (int i = 0; i < 100; ++i) {
    uint64_t off = rng_() % content_.size();
    size_t len = rng_() % (content_.size() - off);
    std::vector<uint8_t> b(len);
    ASSERT_TRUE(dev->Read(off, b.data(), len).ok());
    EXPECT_TRUE(Matches(b.data(), off, len));
  }
  EXPECT_TRUE(dev->Read(content_.size() - 1, buf.data(), 2).IsInvalidArgument());
  Status async;
  dev->ReadAsync(content_.size(), buf.data(), 1, [&](Status s) { async = s; });
  EXPECT_TRUE(async.IsInvalidArgument());
}

// Health() while reads start and finish all the time: never "stalled" (a
// read that started just after Health() read the clock once counted as
// started 2^64 ns ago, and the copier paused for a source that was fine).
TEST_F(TimedDeviceTest, BusyReadsAreNeverTakenForAStall) {
  std::unique_ptr<Device> dev = Make(30'000'000'000, 4);
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&, t] {
      std::vector<uint8_t> b(512);
      for (uint64_t i = 0; !stop.load(); ++i) {
        ASSERT_TRUE(dev->Read(((i * 4 + t) * 4096) % content_.size(), b.data(), b.size()).ok());
      }
    });
  }
  int stalled = 0;
  const int polls = 200'000 / testing::kSlowdown;
  for (int i = 0; i < polls; ++i) {
    if (dev->Health().state == State::kStalled) ++stalled;
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(stalled, 0) << "of " << polls << " polls";
}

TEST_F(TimedDeviceTest, StuckReadTimesOutAndTheBufferIsNeverTouchedLater) {
  std::unique_ptr<Device> dev = Make(300'000'000, 2, 0, UINT64_MAX / 2);
  uint8_t* buf = new uint8_t[65536];
  std::fill(buf, buf + 65536, 0xAA);
  Status s = dev->Read(4096, buf, 65536);
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_EQ(s.sys_errno(), ETIMEDOUT);
  EXPECT_NE(s.message().find("slow.img"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("300 ms"), std::string::npos) << s.message();
  EXPECT_TRUE(std::all_of(buf, buf + 65536, [](uint8_t b) { return b == 0xAA; }));
  delete[] buf;  // a late write into it would be a use-after-free (ASan)
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kStalled; }));
  EXPECT_NE(dev->Health().since_unix_ns, 0u);
  // The stuck read still runs: it is the oldest request, sent before the
  // stall began (300 ms after it).
  const SourceHealth stalled = dev->Health();
  EXPECT_NE(stalled.oldest_request_unix_ns, 0u);
  EXPECT_LT(stalled.oldest_request_unix_ns, stalled.since_unix_ns);

  gate_->Open();
  ASSERT_TRUE(WaitFor([&] { return gate_->returned.load() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kConnected; }));
  EXPECT_NE(dev->Health().since_unix_ns, 0u);  // when it recovered
  EXPECT_EQ(dev->Health().oldest_request_unix_ns, 0u);  // nothing runs
  std::vector<uint8_t> again(65536);
  ASSERT_TRUE(dev->Read(4096, again.data(), again.size()).ok());
  EXPECT_TRUE(Matches(again.data(), 4096, again.size()));
}

// lseek and fstat on a stalled file system get the same deadline and
// interrupt as reads: the copier planning a unit, or a reader whose read is
// followed by the unchanged check, is never stuck for good.
TEST_F(TimedDeviceTest, StuckSeeksAndChecksTimeOutOrAreInterrupted) {
  std::unique_ptr<Device> dev = Make(300'000'000, 2);
  gate_->block_meta = true;
  Result<uint64_t> data = dev->NextData(0);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().sys_errno(), ETIMEDOUT) << data.status().ToString();
  EXPECT_NE(data.status().message().find("search for data at 0 from slow.img"), std::string::npos)
      << data.status().ToString();
  EXPECT_EQ(dev->NextHole(0).status().sys_errno(), ETIMEDOUT);
  Status check = dev->CheckUnchanged();
  EXPECT_EQ(check.sys_errno(), ETIMEDOUT) << check.ToString();
  EXPECT_FALSE(check.IsMismatch()) << "a check that could not run says nothing about a change";
  EXPECT_EQ(dev->Health().state, State::kStalled);

  CancelToken token;
  Status s;
  std::thread checker([&] {
    ScopedCancelToken scope(&token);
    s = dev->CheckUnchanged();
  });
  const bool waiting = WaitFor([&] { return gate_->entered.load() == 4; });
  token.Cancel();
  checker.join();
  ASSERT_TRUE(waiting);
  EXPECT_EQ(s.sys_errno(), EINTR) << s.ToString();

  // Back to normal once the file system answers.
  gate_->Open();
  ASSERT_TRUE(WaitFor([&] { return dev->Health().state == State::kConnected; }));
  EXPECT_EQ(*dev->NextHole(0), 256u << 10);
  EXPECT_EQ(*dev->NextData(256 << 10), 512u << 10);
  EXPECT_TRUE(dev->CheckUnchanged().IsMismatch());
}

// The check made by a read's own job answers the next CheckUnchanged on the
// same thread (no second trip through the pool); any other call, or
// another thread, asks the pool.
TEST_F(TimedDeviceTest, AReadCarriesItsCheckToTheNextCheckOnTheSameThread) {
  std::unique_ptr<Device> dev = Make(300'000'000, 2);
  std::vector<uint8_t> buf(4096);
  ASSERT_TRUE(dev->Read(0, buf.data(), buf.size()).ok());
  gate_->block_meta = true;  // from now on a check that reaches the inner device waits
  EXPECT_TRUE(dev->CheckUnchanged().IsMismatch()) << "answered from the read's job";
  EXPECT_EQ(dev->CheckUnchanged().sys_errno(), ETIMEDOUT) << "used once";

  gate_->block_meta = false;
  ASSERT_TRUE(dev->Read(0, buf.data(), buf.size()).ok());
  gate_->block_meta = true;
  Status other;
  std::thread([&] { other = dev->CheckUnchanged(); }).join();
  EXPECT_EQ(other.sys_errno(), ETIMEDOUT) << "another thread's check is its own";
  EXPECT_EQ(dev->NextData(0).status().sys_errno(), ETIMEDOUT);
  EXPECT_EQ(dev->CheckUnchanged().sys_errno(), ETIMEDOUT) << "a call in between uses it up";
  gate_->Open();
}

// CONTENT: a block device has no mtime, so its rewrite is found by the
// identity check the mount gives it, run by CheckUnchanged at most every
// identity_recheck_ns; the finding is sticky; a check that cannot read is
// no change. Before, a local source ignored the check: a block device
// rewritten under a live clone kept being copied from.
TEST_F(TimedDeviceTest, IdentityCheckFindsARewriteAndKeepsSayingSo) {
  TimedSourceOptions o;
  o.timeout_ns = 2'000'000'000;
  o.identity_recheck_ns = 300'000'000;  // long enough to see nothing run before it
  auto dev = MakeTimedSource(NewMemDeviceFrom(content_, true, "disk"), o);
  std::atomic<int> answer{0};  // 0: same, 1: differs, 2: cannot read
  std::atomic<int> runs{0};
  dev->SetIdentityCheck([&](Device& view) -> Status {
    ++runs;
    EXPECT_EQ(view.Size(), content_.size());
    switch (answer.load()) {
      case 1:
        return Status::Mismatch("source fingerprint differs");
      case 2:
        return Status::IoError("read failed", EIO);
      default:
        return Status::OK();
    }
  });
  EXPECT_TRUE(dev->CheckUnchanged().ok());
  EXPECT_EQ(runs.load(), 0) << "not before an interval has passed";
  std::this_thread::sleep_for(std::chrono::milliseconds(320));
  EXPECT_TRUE(dev->CheckUnchanged().ok());
  EXPECT_EQ(runs.load(), 1);
  EXPECT_TRUE(dev->CheckUnchanged().ok());
  EXPECT_EQ(runs.load(), 1) << "at most once per interval";
  answer = 2;
  std::this_thread::sleep_for(std::chrono::milliseconds(320));
  EXPECT_TRUE(dev->CheckUnchanged().ok()) << "a read error is no change";
  answer = 1;
  std::this_thread::sleep_for(std::chrono::milliseconds(320));
  Status s = dev->CheckUnchanged();
  EXPECT_TRUE(s.IsMismatch()) << s.ToString();
  EXPECT_NE(s.message().find("disk was rewritten: source fingerprint differs"), std::string::npos)
      << s.ToString();
  answer = 0;
  EXPECT_TRUE(dev->CheckUnchanged().IsMismatch()) << "sticky";
}

TEST_F(TimedDeviceTest, CancelledTokenInterruptsTheWait) {
  std::unique_ptr<Device> dev = Make(30'000'000'000, 2, 0, UINT64_MAX / 2);
  CancelToken token;
  Status s;
  std::vector<uint8_t> buf(4096, 0x11);
  std::thread reader([&] {
    ScopedCancelToken scope(&token);
    s = dev->Read(0, buf.data(), buf.size());
  });
  ASSERT_TRUE(WaitFor([&] { return gate_->entered.load() == 1; }));
  token.Cancel();
  reader.join();
  EXPECT_EQ(s.sys_errno(), EINTR) << s.ToString();
  EXPECT_NE(s.message().find("read interrupted"), std::string::npos) << s.message();
  gate_->Open();
  ASSERT_TRUE(WaitFor([&] { return gate_->returned.load() == 1; }));
  EXPECT_TRUE(std::all_of(buf.begin(), buf.end(), [](uint8_t b) { return b == 0x11; }));
}

TEST_F(TimedDeviceTest, AStuckThreadIsLeftBehindAndReplaced) {
  // One pool thread; only the first 4 KiB hang.
  std::unique_ptr<Device> dev = Make(500'000'000, 1, 0, 4096);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(dev->Read(0, buf.data(), buf.size()).sys_errno(), ETIMEDOUT);
  for (int i = 0; i < 5; ++i) {
    Status s = dev->Read(8192, buf.data(), buf.size());
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_TRUE(Matches(buf.data(), 8192, buf.size()));
  }
  gate_->Open();
  ASSERT_TRUE(WaitFor([&] { return gate_->returned.load() == 6; }));
}

TEST_F(TimedDeviceTest, ReadAsyncRunsOnThePoolIntoTheCallersBufferWithoutDeadline) {
  std::unique_ptr<Device> dev = Make(50'000'000, 2, 0, 4096);
  std::vector<uint8_t> fast(65536), slow(4096);
  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  Status fast_s, slow_s;
  std::atomic<bool> on_caller{false};
  const auto caller = std::this_thread::get_id();
  dev->ReadAsync(65536, fast.data(), fast.size(), [&](Status s) {
    std::lock_guard<std::mutex> l(mu);
    fast_s = s;
    ++calls;
    if (std::this_thread::get_id() == caller) on_caller = true;
    cv.notify_all();
  });
  dev->ReadAsync(0, slow.data(), slow.size(), [&](Status s) {
    std::lock_guard<std::mutex> l(mu);
    slow_s = s;
    ++calls;
    cv.notify_all();
  });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return calls == 1; });
  }
  EXPECT_TRUE(fast_s.ok()) << fast_s.ToString();
  EXPECT_TRUE(Matches(fast.data(), 65536, fast.size()));
  EXPECT_FALSE(on_caller.load());
  // Many timeouts later, the slow one is still waiting, not failed.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {
    std::lock_guard<std::mutex> l(mu);
    EXPECT_EQ(calls, 1);
  }
  gate_->Open();
  std::unique_lock<std::mutex> l(mu);
  cv.wait(l, [&] { return calls == 2; });
  EXPECT_TRUE(slow_s.ok()) << slow_s.ToString();
  EXPECT_TRUE(Matches(slow.data(), 0, slow.size()));
}

TEST_F(TimedDeviceTest, DestructionAbortsQueuedReadsAndWaitsForRunningReadAsync) {
  std::unique_ptr<Device> dev = Make(30'000'000'000, 1, 0, UINT64_MAX / 2);
  std::vector<uint8_t> a(4096), b(4096);
  std::atomic<int> a_calls{0}, b_calls{0};
  Status a_s, b_s;
  dev->ReadAsync(0, a.data(), a.size(), [&](Status s) {
    a_s = s;
    ++a_calls;
  });
  ASSERT_TRUE(WaitFor([&] { return gate_->entered.load() == 1; }));
  dev->ReadAsync(4096, b.data(), b.size(), [&](Status s) {
    b_s = s;
    ++b_calls;
  });
  std::thread destroyer([&] { dev.reset(); });
  ASSERT_TRUE(WaitFor([&] { return b_calls.load() == 1; }));  // queued: aborted at once
  EXPECT_EQ(b_s.code(), Status::Code::kAborted);
  EXPECT_EQ(a_calls.load(), 0);  // running: its done is still to come
  gate_->Open();
  destroyer.join();
  EXPECT_EQ(a_calls.load(), 1);
  EXPECT_TRUE(a_s.ok()) << a_s.ToString();
  EXPECT_TRUE(Matches(a.data(), 0, a.size()));
  // The last pool thread lets go of the inner device on its way out, a
  // moment after the destructor saw it leave.
  EXPECT_TRUE(WaitFor([&] { return gate_->destroyed.load(); }));
}

TEST_F(TimedDeviceTest, DestructionLeavesAThreadStuckInAReadBehind) {
  std::unique_ptr<Device> dev = Make(100'000'000, 2, 0, UINT64_MAX / 2);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(dev->Read(0, buf.data(), buf.size()).sys_errno(), ETIMEDOUT);
  dev.reset();  // returns although a pool thread is stuck in the inner read
  EXPECT_FALSE(gate_->destroyed.load());  // the stuck thread still holds it
  gate_->Open();
  ASSERT_TRUE(WaitFor([&] { return gate_->destroyed.load(); }));
}

// Release (the clone became complete): it waits for the read in progress,
// which gets its data, then closes the inner device; every later request
// fails without reaching it, status says released, and the names stay.
TEST_F(TimedDeviceTest, ReleaseWaitsForTheReadInProgressThenClosesTheInnerDevice) {
  std::unique_ptr<Device> dev = Make(30'000'000'000, 2, 0, 4096);
  std::vector<uint8_t> got(8192);
  Status in_progress;
  std::thread reader([&] { in_progress = dev->Read(0, got.data(), got.size()); });
  ASSERT_TRUE(WaitFor([&] { return gate_->entered.load() == 1; }));
  std::atomic<bool> released{false};
  std::thread releaser([&] {
    dev->Release();
    released = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(released.load()) << "Release must wait for the read in progress";
  EXPECT_FALSE(gate_->destroyed.load());
  gate_->Open();
  reader.join();
  releaser.join();
  ASSERT_TRUE(in_progress.ok()) << in_progress.ToString();
  EXPECT_TRUE(Matches(got.data(), 0, got.size()));
  ASSERT_TRUE(WaitFor([&] { return gate_->destroyed.load(); })) << "the inner device stays open";

  SourceHealth h = dev->Health();
  EXPECT_EQ(h.state, State::kReleased);
  EXPECT_NE(h.since_unix_ns, 0u);
  Status after = dev->Read(0, got.data(), 4096);
  EXPECT_TRUE(after.IsIoError()) << after.ToString();
  EXPECT_NE(after.message().find("released"), std::string::npos) << after.ToString();
  Status async;
  dev->ReadAsync(0, got.data(), 4096, [&](Status s) { async = s; });
  EXPECT_TRUE(async.IsIoError()) << async.ToString();
  EXPECT_FALSE(dev->NextData(0).ok());
  EXPECT_TRUE(dev->CheckUnchanged().ok()) << "nothing is looked at any more: no change found";
  EXPECT_EQ(dev->SpliceFd(), -1);
  EXPECT_EQ(dev->Size(), content_.size());
  EXPECT_EQ(dev->Name(), "slow.img");
  dev->Release();  // twice: nothing more
  EXPECT_EQ(dev->Health().state, State::kReleased);
}

// A thread stuck in a read its caller gave up on does not hold Release up;
// it closes the inner device itself when that read returns.
TEST_F(TimedDeviceTest, ReleaseLeavesAThreadStuckInAReadBehind) {
  std::unique_ptr<Device> dev = Make(100'000'000, 2, 0, 4096);
  std::vector<uint8_t> buf(4096);
  EXPECT_EQ(dev->Read(0, buf.data(), buf.size()).sys_errno(), ETIMEDOUT);
  dev->Release();
  EXPECT_EQ(dev->Health().state, State::kReleased);
  EXPECT_FALSE(gate_->destroyed.load());  // the stuck thread still holds it
  gate_->Open();
  ASSERT_TRUE(WaitFor([&] { return gate_->destroyed.load(); }));
}

TEST(OpenSourceTest, AFileIsATimedPosixDevice) {
  testing::TempDir dir;
  ASSERT_TRUE(dir.ok());
  std::mt19937_64 rng(3);
  std::vector<uint8_t> content = testing::RandomBytes(rng, 300000);
  ASSERT_TRUE(testing::WriteFile(dir.File("src.img"), content));
  Result<SourceSpec> spec = ParseSource(dir.File("src.img"));
  ASSERT_TRUE(spec.ok());
  Result<std::unique_ptr<Device>> dev = OpenSource(*spec, {});
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();
  EXPECT_TRUE((*dev)->ReadOnly());
  EXPECT_TRUE((*dev)->AsyncReads());
  EXPECT_GE((*dev)->SpliceFd(), 0);
  std::vector<uint8_t> buf(content.size());
  ASSERT_TRUE((*dev)->Read(0, buf.data(), buf.size()).ok());
  EXPECT_TRUE(buf == content);
  EXPECT_EQ((*dev)->Write(0, buf.data(), 1).code(), Status::Code::kPermission);
  EXPECT_TRUE((*dev)->CheckUnchanged().ok());
  // Released, the file is no longer open (its file system can be unmounted).
  const std::string path = std::filesystem::canonical(dir.File("src.img")).string();
  EXPECT_TRUE(test::FileOpenIn(::getpid(), path));
  (*dev)->Release();
  // (A pool thread that has signalled its exit may still hold the file for
  // a moment.)
  EXPECT_TRUE(WaitFor([&] { return !test::FileOpenIn(::getpid(), path); }));

  Result<SourceSpec> missing = ParseSource(dir.File("missing.img"));
  ASSERT_TRUE(missing.ok());
  Result<std::unique_ptr<Device>> none = OpenSource(*missing, {});
  ASSERT_FALSE(none.ok());
  EXPECT_TRUE(none.status().IsNotFound()) << none.status().ToString();
}

}  // namespace
}  // namespace clonefs
