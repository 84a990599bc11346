// One behavioural suite (device.h's shared semantics) run against every
// Device implementation: PosixDevice on a temp file (buffered and O_DIRECT),
// MemDevice, and FaultDevice in both modes.
#include <algorithm>
#include <atomic>
#include <barrier>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "device_test_util.h"
#include "devices/fault_device.h"
#include "devices/mem_device.h"
#include "devices/posix_device.h"

namespace clonefs {
namespace {

using testing::RandomBytes;
using testing::SeedTrace;
using testing::TempDir;

struct Factory {
  std::string name;
  std::function<std::unique_ptr<Device>(const TempDir&, uint64_t size)> make;
};
void PrintTo(const Factory& f, std::ostream* os) { *os << f.name; }

std::unique_ptr<Device> OpenTempFile(const TempDir& dir, uint64_t size, bool direct) {
  PosixDeviceOptions o;
  o.create = true;
  o.min_size = size;
  o.direct = direct;
  Result<std::unique_ptr<Device>> r = OpenPosixDevice(dir.File("image"), o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

const Factory kFactories[] = {
    {"posix", [](const TempDir& d, uint64_t n) { return OpenTempFile(d, n, false); }},
    {"posix_direct", [](const TempDir& d, uint64_t n) { return OpenTempFile(d, n, true); }},
    {"mem", [](const TempDir&, uint64_t n) { return NewMemDevice(n); }},
    {"fault",
     [](const TempDir&, uint64_t n) -> std::unique_ptr<Device> {
       return FaultDevice::Wrap(NewMemDevice(n));
     }},
    {"fault_volatile",
     [](const TempDir&, uint64_t n) -> std::unique_ptr<Device> {
       return FaultDevice::WrapVolatile(NewMemDevice(n));
     }},
    {"fault_volatile_posix",
     [](const TempDir& d, uint64_t n) -> std::unique_ptr<Device> {
       std::shared_ptr<Device> base = OpenTempFile(d, n, false);
       return base ? FaultDevice::WrapVolatile(base) : nullptr;
     }},
};

class DeviceConformanceTest : public ::testing::TestWithParam<Factory> {
 protected:
  // Not a multiple of 4 KiB (or 512): the last partial block is exercised.
  static constexpr uint64_t kSize = (3 << 20) + 1234;

  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    dev_ = GetParam().make(dir_, kSize);
    ASSERT_NE(dev_, nullptr);
    model_.assign(kSize, 0);
  }

  void ExpectMatchesModel(uint64_t off, uint64_t len) {
    std::vector<uint8_t> got(len);
    ASSERT_TRUE(dev_->Read(off, got.data(), len).ok());
    ASSERT_TRUE(std::equal(got.begin(), got.end(), model_.begin() + off))
        << "mismatch in [" << off << ", " << off + len << ")";
  }

  void Write(uint64_t off, const std::vector<uint8_t>& data) {
    ASSERT_TRUE(dev_->Write(off, data.data(), data.size()).ok());
    std::copy(data.begin(), data.end(), model_.begin() + off);
  }

  // A random range: often unaligned, sometimes reaching the end or spanning
  // many blocks.
  std::pair<uint64_t, uint64_t> RandomRange(std::mt19937_64& rng) {
    uint64_t off, len;
    switch (rng() % 4) {
      case 0:  // small and unaligned
        off = rng() % kSize;
        len = 1 + rng() % 700;
        break;
      case 1:  // aligned 4 KiB blocks
        off = (rng() % (kSize / 4096)) * 4096;
        len = 4096 * (1 + rng() % 8);
        break;
      case 2:  // up to the end
        off = kSize - 1 - rng() % 20000;
        len = kSize - off;
        break;
      default:  // large, unaligned, crossing 1 MiB bounce chunks
        off = rng() % kSize;
        len = 1 + rng() % (1200 * 1024);
        break;
    }
    len = std::min(len, kSize - off);
    return {off, len};
  }

  // A disk file system, not tmpfs: O_DIRECT and fallocate on real blocks.
  TempDir dir_{"/var/tmp"};
  std::unique_ptr<Device> dev_;
  std::vector<uint8_t> model_;
};

TEST_P(DeviceConformanceTest, SizeNameAndFreshContent) {
  EXPECT_EQ(dev_->Size(), kSize);
  EXPECT_FALSE(dev_->ReadOnly());
  EXPECT_FALSE(dev_->Name().empty());
  ExpectMatchesModel(0, kSize);  // all zeros
}

TEST_P(DeviceConformanceTest, RandomWritesReadBackAtUnalignedOffsets) {
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 300 / testing::kSlowdown; i++) {
    auto [off, len] = RandomRange(rng);
    Write(off, RandomBytes(rng, len));
    auto [roff, rlen] = RandomRange(rng);
    ExpectMatchesModel(roff, rlen);
    ExpectMatchesModel(off, len);
    if (rng() % 10 == 0) {
      ASSERT_TRUE(dev_->Flush().ok());
    }
    if (HasFatalFailure()) return;
  }
  ASSERT_TRUE(dev_->Flush().ok());
  ExpectMatchesModel(0, kSize);
}

TEST_P(DeviceConformanceTest, ZeroBothModesReadsBackZeros) {
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Write(0, RandomBytes(rng, kSize));
  for (int i = 0; i < 200 / testing::kSlowdown; i++) {
    auto [off, len] = RandomRange(rng);
    ZeroMode mode = rng() % 2 ? ZeroMode::kPunch : ZeroMode::kWriteZeros;
    ASSERT_TRUE(dev_->Zero(off, len, mode).ok()) << off << "+" << len;
    std::fill(model_.begin() + off, model_.begin() + off + len, 0);
    ExpectMatchesModel(off >= 5000 ? off - 5000 : 0,
                       std::min(len + 10000, kSize - (off >= 5000 ? off - 5000 : 0)));
    if (rng() % 3 == 0) {
      auto [woff, wlen] = RandomRange(rng);
      Write(woff, RandomBytes(rng, wlen));
    }
    if (HasFatalFailure()) return;
  }
  ASSERT_TRUE(dev_->Flush().ok());
  ExpectMatchesModel(0, kSize);
}

TEST_P(DeviceConformanceTest, EmptyRequestsAreAccepted) {
  uint8_t b = 0;
  EXPECT_TRUE(dev_->Read(kSize, &b, 0).ok());
  EXPECT_TRUE(dev_->Write(0, &b, 0).ok());
  EXPECT_TRUE(dev_->Zero(kSize, 0, ZeroMode::kPunch).ok());
}

TEST_P(DeviceConformanceTest, OutOfRangeIsInvalidArgument) {
  std::vector<uint8_t> buf(8192, 7);
  EXPECT_TRUE(dev_->Read(kSize - 1, buf.data(), 2).IsInvalidArgument());
  EXPECT_TRUE(dev_->Read(kSize + 1, buf.data(), 0).IsInvalidArgument());
  EXPECT_TRUE(dev_->Read(UINT64_MAX, buf.data(), 2).IsInvalidArgument());
  EXPECT_TRUE(dev_->Write(kSize, buf.data(), 1).IsInvalidArgument());
  EXPECT_TRUE(dev_->Write(kSize - 4096, buf.data(), 8192).IsInvalidArgument());
  EXPECT_TRUE(dev_->Zero(kSize - 1, 2, ZeroMode::kPunch).IsInvalidArgument());
  EXPECT_TRUE(dev_->Zero(1, UINT64_MAX, ZeroMode::kWriteZeros).IsInvalidArgument());
  // Nothing was written by the failed calls.
  ExpectMatchesModel(0, kSize);
}

// Walks the device with NextData/NextHole and checks that every reported
// hole reads as zeros and that data and holes alternate sensibly.
TEST_P(DeviceConformanceTest, NextDataAndNextHoleNeverHideData) {
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 20; i++) {
    auto [off, len] = RandomRange(rng);
    if (rng() % 3 == 0) {
      ASSERT_TRUE(dev_->Zero(off, len, ZeroMode::kPunch).ok());
      std::fill(model_.begin() + off, model_.begin() + off + len, 0);
    } else {
      Write(off, RandomBytes(rng, std::min<uint64_t>(len, 100000)));
    }
  }
  if (rng() % 2) {
    ASSERT_TRUE(dev_->Flush().ok());
  }
  uint64_t pos = 0;
  int steps = 0;
  while (pos < kSize) {
    Result<uint64_t> d = dev_->NextData(pos);
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ASSERT_GE(*d, pos);
    ASSERT_LE(*d, kSize);
    for (uint64_t b = pos; b < *d; b++) ASSERT_EQ(model_[b], 0) << "data hidden at " << b;
    if (*d == kSize) break;
    Result<uint64_t> h = dev_->NextHole(*d);
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    ASSERT_GT(*h, *d);
    ASSERT_LE(*h, kSize);
    pos = *h;
    ASSERT_LT(++steps, 100000);
  }
  EXPECT_EQ(*dev_->NextData(kSize), kSize);
  EXPECT_EQ(*dev_->NextHole(kSize), kSize);
}

// Threads write disjoint, unaligned slices that share 4 KiB blocks with their
// neighbours' slices, while others read: nothing may be lost.
TEST_P(DeviceConformanceTest, ConcurrentDisjointUnalignedWriters) {
  constexpr int kThreads = 4;
  constexpr uint64_t kSlice = 1000;  // slices of different threads share blocks
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  const int rounds = 3 * 2 / testing::kSlowdown + 1;
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      for (int round = 0; round < rounds; round++) {
        for (uint64_t s = t; (s + 1) * kSlice <= kSize / 4; s += kThreads) {
          std::vector<uint8_t> data = RandomBytes(rng, kSlice);
          uint64_t off = s * kSlice;
          if (!dev_->Write(off, data.data(), kSlice).ok()) failed = true;
          std::copy(data.begin(), data.end(), model_.begin() + off);  // disjoint per thread
          std::vector<uint8_t> junk(5000);
          uint64_t roff = (kSize / 4) + rng() % (kSize / 2);
          if (!dev_->Read(roff, junk.data(), junk.size()).ok()) failed = true;
        }
        if (t == 0 && !dev_->Flush().ok()) failed = true;
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_FALSE(failed.load());
  ExpectMatchesModel(0, kSize);
}

// SPEC §7a: a zero/punch and a write to disjoint bytes of the same 4 KiB
// block, concurrently, both take effect. On an O_DIRECT device the write is
// a read-modify-write of the block; a zero that bypassed it would be undone
// when the write puts back the block it read before the zero.
TEST_P(DeviceConformanceTest, ConcurrentDisjointZeroAndWriteInOneBlock) {
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  constexpr uint64_t kBlock = 4096;
  const uint64_t blocks = kSize / kBlock;  // whole blocks only
  const int rounds = 6 / testing::kSlowdown + 1;
  for (int round = 0; round < rounds; round++) {
    Write(0, RandomBytes(rng, kSize));
    // Per block: the zero's and the write's ranges, disjoint, either order.
    struct Op {
      uint64_t zoff, zlen, woff;
      std::vector<uint8_t> wdata;
      ZeroMode mode;
    };
    std::vector<Op> ops(blocks);
    for (uint64_t b = 0; b < blocks; b++) {
      const bool sectors = rng() % 2;  // 512-byte granularity, as a loop device sends
      uint64_t split = sectors ? 512 * (1 + rng() % 7) : 1 + rng() % (kBlock - 1);
      uint64_t lo_len = split, hi_len = kBlock - split;
      if (!sectors) {
        lo_len = 1 + rng() % lo_len;
        hi_len = 1 + rng() % hi_len;
      }
      Op& op = ops[b];
      op.mode = rng() % 2 ? ZeroMode::kPunch : ZeroMode::kWriteZeros;
      const uint64_t base = b * kBlock;
      if (rng() % 2) {  // zero below the split, write above it
        op.zoff = base + split - lo_len;
        op.zlen = lo_len;
        op.woff = base + split;
        op.wdata = RandomBytes(rng, hi_len);
      } else {
        op.woff = base + split - lo_len;
        op.wdata = RandomBytes(rng, lo_len);
        op.zoff = base + split;
        op.zlen = hi_len;
      }
      std::fill(model_.begin() + op.zoff, model_.begin() + op.zoff + op.zlen, 0);
      std::copy(op.wdata.begin(), op.wdata.end(), model_.begin() + op.woff);
    }
    std::barrier sync(2);
    std::atomic<int> failures{0};
    std::thread zeroer([&] {
      for (const Op& op : ops) {
        sync.arrive_and_wait();
        if (!dev_->Zero(op.zoff, op.zlen, op.mode).ok()) failures++;
      }
    });
    std::thread writer([&] {
      for (const Op& op : ops) {
        sync.arrive_and_wait();
        if (!dev_->Write(op.woff, op.wdata.data(), op.wdata.size()).ok()) failures++;
      }
    });
    zeroer.join();
    writer.join();
    ASSERT_EQ(failures.load(), 0);
    // Every acknowledged zero and write is there, block by block.
    std::vector<uint8_t> got(kBlock);
    int lost = 0;
    for (uint64_t b = 0; b < blocks; b++) {
      ASSERT_TRUE(dev_->Read(b * kBlock, got.data(), kBlock).ok());
      if (!std::equal(got.begin(), got.end(), model_.begin() + b * kBlock)) lost++;
    }
    ASSERT_EQ(lost, 0) << "blocks that lost an acknowledged zero or write in round " << round
                       << " of " << blocks << " races";
  }
}

INSTANTIATE_TEST_SUITE_P(AllDevices, DeviceConformanceTest, ::testing::ValuesIn(kFactories),
                         [](const ::testing::TestParamInfo<Factory>& i) { return i.param.name; });

}  // namespace
}  // namespace clonefs
