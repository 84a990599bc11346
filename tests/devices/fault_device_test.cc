// FaultDevice: error rules (op, range, count), the hook, and the power-loss
// model (unsynced writes lost, synced kept, random survival per sector).
#include "devices/fault_device.h"

#include <atomic>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "device_test_util.h"
#include "devices/mem_device.h"

namespace clonefs {
namespace {

using testing::RandomBytes;
using testing::SeedTrace;

constexpr uint64_t kSize = 256 * 1024 + 100;  // last sector partial

std::vector<uint8_t> ReadAll(Device& d) {
  Status s;
  std::vector<uint8_t> v = testing::ReadAll(d, &s);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return v;
}

TEST(FaultDeviceTest, RuleMatchesItsOperationOnly) {
  std::shared_ptr<Device> base = NewMemDevice(kSize);
  auto dev = FaultDevice::Wrap(base);
  dev->AddRule({.op = DeviceOp::kRead});
  uint8_t b = 5;
  EXPECT_TRUE(dev->Write(10, &b, 1).ok());
  EXPECT_TRUE(dev->Zero(100, 10, ZeroMode::kPunch).ok());
  EXPECT_TRUE(dev->Flush().ok());
  Status s = dev->Read(10, &b, 1);
  EXPECT_TRUE(s.IsIoError());
  EXPECT_EQ(s.ToErrno(), EIO);
  EXPECT_EQ(dev->InjectedFailures(), 1u);
  dev->ClearRules();
  b = 0;
  EXPECT_TRUE(dev->Read(10, &b, 1).ok());
  EXPECT_EQ(b, 5);
  EXPECT_EQ(dev->InjectedFailures(), 1u);
}

TEST(FaultDeviceTest, RuleMatchesOverlappingRangesOnlyAndFailedWritesChangeNothing) {
  for (bool is_volatile : {false, true}) {
    SCOPED_TRACE(is_volatile ? "volatile" : "plain");
    std::shared_ptr<Device> base = NewMemDevice(kSize);
    auto dev = is_volatile ? FaultDevice::WrapVolatile(base) : FaultDevice::Wrap(base);
    dev->AddRule({.op = DeviceOp::kWrite,
                  .offset = 8192,
                  .length = 4096,
                  .error = Status::NoSpace("injected full")});
    std::vector<uint8_t> d(20000, 0x77);
    EXPECT_TRUE(dev->Write(4096, d.data(), 4096).ok());  // ends where the rule starts
    EXPECT_TRUE(dev->Write(12288, d.data(), 10).ok());   // starts where it ends
    EXPECT_TRUE(dev->Write(8191, d.data(), 2).IsNoSpace());
    EXPECT_TRUE(dev->Write(12287, d.data(), 1).IsNoSpace());
    EXPECT_TRUE(dev->Write(0, d.data(), d.size()).IsNoSpace());
    EXPECT_TRUE(dev->Zero(8192, 4096, ZeroMode::kPunch).ok());  // another op
    EXPECT_EQ(dev->InjectedFailures(), 3u);
    std::vector<uint8_t> want(kSize, 0);
    std::fill(want.begin() + 4096, want.begin() + 8192, 0x77);
    std::fill(want.begin() + 12288, want.begin() + 12298, 0x77);
    EXPECT_EQ(ReadAll(*dev), want);
  }
}

TEST(FaultDeviceTest, CountLimitsFailuresAndFirstMatchingRuleDecides) {
  auto dev = FaultDevice::Wrap(NewMemDevice(kSize));
  dev->AddRule({.op = DeviceOp::kAny, .offset = 0, .length = 100, .count = 2});
  dev->AddRule({.op = DeviceOp::kRead, .error = Status::Corruption("second rule")});
  uint8_t b = 0;
  EXPECT_TRUE(dev->Write(500, &b, 1).ok());  // matches neither: count kept
  EXPECT_TRUE(dev->Write(50, &b, 1).IsIoError());
  EXPECT_TRUE(dev->Read(99, &b, 1).IsIoError());  // first rule still has count
  EXPECT_TRUE(dev->Write(50, &b, 1).ok());        // first rule used up
  EXPECT_TRUE(dev->Read(99, &b, 1).IsCorruption());
  EXPECT_EQ(dev->InjectedFailures(), 3u);
}

TEST(FaultDeviceTest, FlushAndZeroRules) {
  auto dev = FaultDevice::Wrap(NewMemDevice(kSize));
  dev->AddRule({.op = DeviceOp::kFlush, .offset = 12345, .length = 1, .count = 1});
  EXPECT_TRUE(dev->Flush().IsIoError());  // a flush covers the whole device
  EXPECT_TRUE(dev->Flush().ok());
  dev->AddRule({.op = DeviceOp::kZero, .offset = 4096, .length = 1});
  EXPECT_TRUE(dev->Zero(0, 4096, ZeroMode::kPunch).ok());
  EXPECT_TRUE(dev->Zero(0, 4097, ZeroMode::kWriteZeros).IsIoError());
  EXPECT_EQ(dev->SpliceFd(), -1);
}

TEST(FaultDeviceTest, HookSeesEveryOperationBeforeRules) {
  auto dev = FaultDevice::WrapVolatile(NewMemDevice(kSize));
  std::vector<std::tuple<DeviceOp, uint64_t, uint64_t>> calls;
  dev->SetHook([&](DeviceOp op, uint64_t off, uint64_t len) { calls.emplace_back(op, off, len); });
  dev->AddRule({.op = DeviceOp::kRead});
  uint8_t b[10] = {};
  EXPECT_TRUE(dev->Write(7, b, 10).ok());
  EXPECT_FALSE(dev->Read(3, b, 4).ok());
  EXPECT_TRUE(dev->Zero(20, 30, ZeroMode::kPunch).ok());
  EXPECT_TRUE(dev->Flush().ok());
  using C = std::tuple<DeviceOp, uint64_t, uint64_t>;
  std::vector<C> want = {C{DeviceOp::kWrite, 7, 10}, C{DeviceOp::kRead, 3, 4},
                         C{DeviceOp::kZero, 20, 30}, C{DeviceOp::kFlush, 0, kSize}};
  EXPECT_EQ(calls, want);
  // A hook may crash the device from inside an operation (a kill point).
  dev->ClearRules();
  ASSERT_TRUE(dev->Write(0, b, 10).ok());
  dev->SetHook([&](DeviceOp op, uint64_t, uint64_t) {
    if (op == DeviceOp::kFlush) dev->Crash();
  });
  EXPECT_TRUE(dev->Flush().ok());
  EXPECT_EQ(dev->UnsyncedBytes(), 0u);
  dev->SetHook(nullptr);
  EXPECT_TRUE(dev->Flush().ok());
}

TEST(FaultDeviceTest, VolatileLosesUnsyncedAndKeepsSynced) {
  std::mt19937_64 rng(7);
  std::vector<uint8_t> initial = RandomBytes(rng, kSize);
  std::shared_ptr<Device> base = NewMemDeviceFrom(initial);
  auto dev = FaultDevice::WrapVolatile(base);
  std::vector<uint8_t> a = RandomBytes(rng, 3000), b = RandomBytes(rng, 5000);
  ASSERT_TRUE(dev->Write(1000, a.data(), a.size()).ok());
  EXPECT_EQ(dev->UnsyncedBytes(), 3000u);
  EXPECT_EQ(ReadAll(*base), initial);  // nothing durable yet
  ASSERT_TRUE(dev->Flush().ok());
  EXPECT_EQ(dev->UnsyncedBytes(), 0u);
  std::vector<uint8_t> synced = initial;
  std::copy(a.begin(), a.end(), synced.begin() + 1000);
  EXPECT_EQ(ReadAll(*base), synced);

  ASSERT_TRUE(dev->Write(2001, b.data(), b.size()).ok());
  ASSERT_TRUE(dev->Zero(kSize - 50, 50, ZeroMode::kWriteZeros).ok());
  EXPECT_EQ(dev->UnsyncedBytes(), 5050u);
  std::vector<uint8_t> now = synced;
  std::copy(b.begin(), b.end(), now.begin() + 2001);
  std::fill(now.end() - 50, now.end(), 0);
  EXPECT_EQ(ReadAll(*dev), now);      // reads see unsynced data
  EXPECT_EQ(ReadAll(*base), synced);  // the disk does not
  dev->Crash();
  EXPECT_EQ(dev->UnsyncedBytes(), 0u);
  EXPECT_EQ(ReadAll(*dev), synced);
  EXPECT_EQ(ReadAll(*base), synced);
  // The device keeps working after the crash.
  ASSERT_TRUE(dev->Write(0, b.data(), 10).ok());
  ASSERT_TRUE(dev->Flush().ok());
  std::copy(b.begin(), b.begin() + 10, synced.begin());
  EXPECT_EQ(ReadAll(*base), synced);
}

TEST(FaultDeviceTest, VolatileFlushReplaysInOrderAndPunchesStayPunches) {
  std::shared_ptr<Device> base = NewMemDevice(kSize);
  auto dev = FaultDevice::WrapVolatile(base);
  std::vector<uint8_t> d(64 * 1024, 0x42);
  ASSERT_TRUE(dev->Write(0, d.data(), d.size()).ok());
  ASSERT_TRUE(dev->Zero(16 * 1024, 32 * 1024, ZeroMode::kPunch).ok());
  ASSERT_TRUE(dev->Write(20 * 1024, d.data(), 100).ok());
  EXPECT_EQ(*dev->NextHole(0), kSize);  // pending writes: "all data"
  std::vector<uint8_t> want = ReadAll(*dev);
  ASSERT_TRUE(dev->Flush().ok());
  EXPECT_EQ(ReadAll(*base), want);
  EXPECT_EQ(*base->NextHole(0), 16 * 1024u);
  EXPECT_EQ(*base->NextData(16 * 1024), 20 * 1024u);
  EXPECT_EQ(*base->NextHole(20 * 1024), 24 * 1024u);
  EXPECT_EQ(*dev->NextData(24 * 1024), 48 * 1024u);  // nothing pending: the base's answer
}

TEST(FaultDeviceTest, FailedFlushAppliesNothing) {
  std::shared_ptr<Device> base = NewMemDevice(kSize);
  auto dev = FaultDevice::WrapVolatile(base);
  std::vector<uint8_t> d(10000, 9);
  ASSERT_TRUE(dev->Write(100, d.data(), d.size()).ok());
  dev->AddRule({.op = DeviceOp::kFlush, .count = 1});
  EXPECT_FALSE(dev->Flush().ok());
  EXPECT_EQ(ReadAll(*base), std::vector<uint8_t>(kSize, 0));
  EXPECT_EQ(dev->UnsyncedBytes(), 10000u);
  dev->Crash();
  EXPECT_EQ(ReadAll(*dev), std::vector<uint8_t>(kSize, 0));
}

TEST(FaultDeviceTest, PlainWrapWritesThroughAndCrashIsANoOp) {
  std::shared_ptr<Device> base = NewMemDevice(kSize);
  auto dev = FaultDevice::Wrap(base);
  uint8_t b = 3;
  ASSERT_TRUE(dev->Write(77, &b, 1).ok());
  EXPECT_EQ(dev->UnsyncedBytes(), 0u);
  dev->Crash();
  dev->CrashKeepRandom(1);
  b = 0;
  ASSERT_TRUE(base->Read(77, &b, 1).ok());
  EXPECT_EQ(b, 3);
}

TEST(FaultDeviceTest, VolatileOverReadOnlyBaseRefusesWrites) {
  std::shared_ptr<Device> base = NewMemDevice(kSize, /*read_only=*/true);
  auto dev = FaultDevice::WrapVolatile(base);
  EXPECT_TRUE(dev->ReadOnly());
  uint8_t b = 1;
  EXPECT_EQ(dev->Write(0, &b, 1).code(), Status::Code::kPermission);
  EXPECT_EQ(dev->Zero(0, 1, ZeroMode::kPunch).code(), Status::Code::kPermission);
  EXPECT_EQ(dev->UnsyncedBytes(), 0u);
}

// Random writes, zeros and flushes; after CrashKeepRandom every 512-byte
// sector must hold its durable content or its content after some prefix of
// its pending writes. Across runs, every kind of outcome must occur.
TEST(FaultDeviceTest, CrashKeepRandomKeepsOnlyDurableOrPendingVersions) {
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  constexpr uint64_t kSector = 512;
  const uint64_t nsectors = (kSize + kSector - 1) / kSector;
  uint64_t kept_durable = 0, kept_latest = 0, kept_middle = 0;
  for (int run = 0; run < 30; run++) {
    std::vector<uint8_t> durable = RandomBytes(rng, kSize);
    std::shared_ptr<Device> base = NewMemDeviceFrom(durable);
    auto dev = FaultDevice::WrapVolatile(base);
    std::vector<uint8_t> current = durable;
    std::map<uint64_t, std::vector<std::vector<uint8_t>>> pending;  // sector -> versions
    auto sector_of = [&](const std::vector<uint8_t>& img, uint64_t s) {
      uint64_t end = std::min(kSize, (s + 1) * kSector);
      return std::vector<uint8_t>(img.begin() + s * kSector, img.begin() + end);
    };
    int ops = 5 + static_cast<int>(rng() % 40);
    for (int i = 0; i < ops; i++) {
      uint64_t off = rng() % kSize, len = 1 + rng() % std::min<uint64_t>(kSize - off, 6000);
      if (rng() % 4 == 0) {
        ASSERT_TRUE(dev->Zero(off, len, rng() % 2 ? ZeroMode::kPunch : ZeroMode::kWriteZeros).ok());
        std::fill(current.begin() + off, current.begin() + off + len, 0);
      } else {
        std::vector<uint8_t> d = RandomBytes(rng, len);
        ASSERT_TRUE(dev->Write(off, d.data(), len).ok());
        std::copy(d.begin(), d.end(), current.begin() + off);
      }
      for (uint64_t s = off / kSector; s * kSector < off + len; s++) {
        pending[s].push_back(sector_of(current, s));
      }
      if (rng() % 8 == 0) {
        ASSERT_TRUE(dev->Flush().ok());
        durable = current;
        pending.clear();
      }
    }
    dev->CrashKeepRandom(rng());
    EXPECT_EQ(dev->UnsyncedBytes(), 0u);
    std::vector<uint8_t> after = ReadAll(*base);
    for (uint64_t s = 0; s < nsectors; s++) {
      std::vector<uint8_t> got = sector_of(after, s);
      auto it = pending.find(s);
      if (it == pending.end()) {
        ASSERT_EQ(got, sector_of(durable, s)) << "run " << run << " untouched sector " << s;
        continue;
      }
      const auto& versions = it->second;
      if (got == versions.back()) {
        kept_latest++;
      } else if (got == sector_of(durable, s)) {
        kept_durable++;
      } else if (std::find(versions.begin(), versions.end(), got) != versions.end()) {
        kept_middle++;
      } else {
        FAIL() << "run " << run << " sector " << s << " holds neither durable nor pending content";
      }
    }
    EXPECT_EQ(ReadAll(*dev), after);
  }
  EXPECT_GT(kept_durable, 0u);
  EXPECT_GT(kept_latest, 0u);
  EXPECT_GT(kept_middle, 0u);
}

TEST(FaultDeviceTest, RulesChangeWhileIoRuns) {
  auto dev = FaultDevice::WrapVolatile(NewMemDevice(kSize));
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> failures{0};
  std::vector<std::thread> io;
  for (int t = 0; t < 3; t++) {
    io.emplace_back([&, t] {
      std::vector<uint8_t> d(3000, static_cast<uint8_t>(t));
      for (int i = 0; !stop; i++) {
        uint64_t off = (t * 80000 + i * 100) % (kSize - 3000);
        if (!dev->Write(off, d.data(), d.size()).ok()) failures++;
        if (!dev->Read(off, d.data(), d.size()).ok()) failures++;
        if (i % 50 == 0 && !dev->Flush().ok()) failures++;
      }
    });
  }
  for (int i = 0; i < 200 / testing::kSlowdown; i++) {
    dev->AddRule({.op = DeviceOp::kWrite, .count = 1});
    std::this_thread::yield();
    dev->ClearRules();
    if (i % 20 == 0) dev->CrashKeepRandom(i);
  }
  stop = true;
  for (auto& th : io) th.join();
  EXPECT_LE(failures.load(), dev->InjectedFailures());
}

}  // namespace
}  // namespace clonefs
