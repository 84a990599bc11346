// MemDevice specifics: 4 KiB hole tracking, sparse storage for huge devices,
// read-only devices, and concurrent use (run under TSan too).
#include "devices/mem_device.h"

#include <unistd.h>

#include <atomic>
#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "device_test_util.h"

namespace clonefs {
namespace {

using testing::RandomBytes;
using testing::SeedTrace;

constexpr uint64_t kKiB = 1024, kMiB = 1 << 20, kGiB = 1ull << 30;

uint64_t ResidentBytes() {
  std::ifstream f("/proc/self/statm");
  uint64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

TEST(MemDeviceTest, BlocksAreHolesUntilWritten) {
  auto dev = NewMemDevice(128 * kKiB + 100, false, "mem:a");
  EXPECT_EQ(dev->Name(), "mem:a");
  EXPECT_EQ(*dev->NextData(0), dev->Size());
  EXPECT_EQ(*dev->NextHole(0), 0u);
  uint8_t b = 1;
  ASSERT_TRUE(dev->Write(8 * kKiB + 5, &b, 1).ok());  // block 2
  EXPECT_EQ(*dev->NextData(0), 8 * kKiB);
  EXPECT_EQ(*dev->NextData(8 * kKiB + 100), 8 * kKiB + 100);
  EXPECT_EQ(*dev->NextHole(8 * kKiB), 12 * kKiB);
  EXPECT_EQ(*dev->NextData(12 * kKiB), dev->Size());
  // A write spanning a chunk boundary allocates both sides.
  std::vector<uint8_t> d(8 * kKiB, 2);
  ASSERT_TRUE(dev->Write(60 * kKiB, d.data(), d.size() - 100).ok());
  EXPECT_EQ(*dev->NextData(12 * kKiB), 60 * kKiB);
  EXPECT_EQ(*dev->NextHole(60 * kKiB), 68 * kKiB);
  ASSERT_TRUE(dev->Write(dev->Size() - 1, &b, 1).ok());
  EXPECT_EQ(*dev->NextData(68 * kKiB), 128 * kKiB);
  EXPECT_EQ(*dev->NextHole(128 * kKiB), dev->Size());  // the partial last block is data
}

TEST(MemDeviceTest, PunchFreesCoveredBlocksAndZeroesPartialOnes) {
  auto dev = NewMemDevice(100 * kKiB);
  std::vector<uint8_t> d(100 * kKiB, 0xee);
  ASSERT_TRUE(dev->Write(0, d.data(), d.size()).ok());
  EXPECT_EQ(*dev->NextHole(0), dev->Size());
  // [4K+1, 16K-1): blocks 1 and 3 partly, block 2 fully.
  ASSERT_TRUE(dev->Zero(4 * kKiB + 1, 12 * kKiB - 2, ZeroMode::kPunch).ok());
  EXPECT_EQ(*dev->NextHole(0), 8 * kKiB);
  EXPECT_EQ(*dev->NextData(8 * kKiB), 12 * kKiB);
  std::vector<uint8_t> got(16 * kKiB);
  ASSERT_TRUE(dev->Read(0, got.data(), got.size()).ok());
  for (uint64_t i = 0; i < got.size(); i++) {
    bool zeroed = i >= 4 * kKiB + 1 && i < 16 * kKiB - 1;
    ASSERT_EQ(got[i], zeroed ? 0 : 0xee) << i;
  }
  // kWriteZeros keeps the space allocated.
  ASSERT_TRUE(dev->Zero(32 * kKiB, 8 * kKiB, ZeroMode::kWriteZeros).ok());
  EXPECT_EQ(*dev->NextHole(16 * kKiB), dev->Size());
  // Punching up to the (partial) end frees the last block too.
  ASSERT_TRUE(dev->Zero(96 * kKiB, 4 * kKiB, ZeroMode::kPunch).ok());
  EXPECT_EQ(*dev->NextHole(16 * kKiB), 96 * kKiB);
  // Punching everything leaves no data.
  ASSERT_TRUE(dev->Zero(0, dev->Size(), ZeroMode::kPunch).ok());
  EXPECT_EQ(*dev->NextData(0), dev->Size());
}

TEST(MemDeviceTest, FromContentTurnsZeroBlocksIntoHoles) {
  std::vector<uint8_t> content(10 * 4096 + 17, 0);
  content[3 * 4096 + 9] = 1;
  content[10 * 4096 + 16] = 2;  // in the partial last block
  auto dev = NewMemDeviceFrom(content, true, "src");
  EXPECT_TRUE(dev->ReadOnly());
  EXPECT_EQ(*dev->NextData(0), 3 * 4096u);
  EXPECT_EQ(*dev->NextHole(3 * 4096), 4 * 4096u);
  EXPECT_EQ(*dev->NextData(4 * 4096), 10 * 4096u);
  Status s;
  EXPECT_EQ(testing::ReadAll(*dev, &s), content);
  uint8_t b = 0;
  EXPECT_EQ(dev->Write(0, &b, 1).code(), Status::Code::kPermission);
  EXPECT_EQ(dev->Zero(0, 1, ZeroMode::kPunch).code(), Status::Code::kPermission);
  EXPECT_EQ(dev->Zero(0, 1, ZeroMode::kWriteZeros).code(), Status::Code::kPermission);
  EXPECT_EQ(testing::ReadAll(*dev, &s), content);
}

TEST(MemDeviceTest, HugeSparseDeviceCostsOnlyItsData) {
  uint64_t before = ResidentBytes();
  auto dev = NewMemDevice(64 * kGiB);
  std::vector<uint8_t> d(kMiB, 0x11);
  for (uint64_t i = 0; i < 16; i++)
    ASSERT_TRUE(dev->Write(i * 4 * kGiB + 7, d.data(), d.size()).ok());
  // 16 MiB of data; sanitizer shadow memory multiplies it, a dense 64 GiB would not fit.
  EXPECT_LT(ResidentBytes() - before, 256 * kMiB);
  EXPECT_EQ(*dev->NextData(0), 0u);  // block 0 holds data (from byte 7)
  EXPECT_EQ(*dev->NextHole(0), kMiB + 4096);
  EXPECT_EQ(*dev->NextData(kMiB + 4096), 4 * kGiB);
  EXPECT_EQ(*dev->NextHole(4 * kGiB), 4 * kGiB + kMiB + 4096);
  EXPECT_EQ(*dev->NextData(60 * kGiB + 2 * kMiB), 64 * kGiB);
  std::vector<uint8_t> got(3 * kMiB);
  ASSERT_TRUE(dev->Read(8 * kGiB - kMiB, got.data(), got.size()).ok());
  for (uint64_t i = 0; i < got.size(); i++) {
    uint64_t off = 8 * kGiB - kMiB + i;
    bool data = off >= 8 * kGiB + 7 && off < 8 * kGiB + 7 + kMiB;
    ASSERT_EQ(got[i], data ? 0x11 : 0) << off;
  }
}

// Many threads: disjoint writers, overlapping writers (unspecified content,
// but no data race), readers, zeroers and NextData/NextHole scanners.
TEST(MemDeviceTest, ConcurrentMixedOperations) {
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  constexpr int kThreads = 6;
  constexpr uint64_t kSlot = 200 * kKiB + 333;        // unaligned slots per thread
  const uint64_t size = kSlot * kThreads + 5 * kMiB;  // + a shared area
  auto dev = NewMemDevice(size);
  std::vector<std::vector<uint8_t>> models(kThreads, std::vector<uint8_t>(kSlot, 0));
  std::atomic<bool> failed{false};
  const int iterations = 2000 / testing::kSlowdown;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 31 + t);
      std::vector<uint8_t>& model = models[t];
      const uint64_t base = t * kSlot;
      for (int i = 0; i < iterations && !failed; i++) {
        uint64_t off = rng() % kSlot, len = 1 + rng() % std::min<uint64_t>(kSlot - off, 70000);
        switch (rng() % 5) {
          case 0:
          case 1: {
            std::vector<uint8_t> d = RandomBytes(rng, len);
            if (!dev->Write(base + off, d.data(), len).ok()) failed = true;
            std::copy(d.begin(), d.end(), model.begin() + off);
            break;
          }
          case 2: {
            ZeroMode m = rng() % 2 ? ZeroMode::kPunch : ZeroMode::kWriteZeros;
            if (!dev->Zero(base + off, len, m).ok()) failed = true;
            std::fill(model.begin() + off, model.begin() + off + len, 0);
            break;
          }
          case 3: {  // the shared area: overlapping writes and reads
            uint64_t soff = kSlot * kThreads + rng() % (4 * kMiB);
            std::vector<uint8_t> d(1 + rng() % 100000, static_cast<uint8_t>(t + 1));
            if (!dev->Write(soff, d.data(), d.size()).ok()) failed = true;
            if (!dev->Read(soff + 7, d.data(), d.size()).ok()) failed = true;
            (void)dev->NextData(soff);
            (void)dev->NextHole(soff);
            break;
          }
          default: {
            std::vector<uint8_t> got(len);
            if (!dev->Read(base + off, got.data(), len).ok()) failed = true;
            if (!std::equal(got.begin(), got.end(), model.begin() + off)) failed = true;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_FALSE(failed.load());
  for (int t = 0; t < kThreads; t++) {
    std::vector<uint8_t> got(kSlot);
    ASSERT_TRUE(dev->Read(t * kSlot, got.data(), kSlot).ok());
    EXPECT_TRUE(got == models[t]) << "thread " << t;
  }
}

}  // namespace
}  // namespace clonefs
