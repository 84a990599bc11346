// PosixDevice on regular files: allocation (punch, zero-range, SEEK_DATA /
// SEEK_HOLE), read-only sources, O_DIRECT with unaligned I/O, cached writes
// beside O_DIRECT, open errors.
#include "devices/posix_device.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "device_test_util.h"
#include "devices/posix_io.h"

namespace clonefs {
namespace {

using testing::RandomBytes;
using testing::SeedTrace;
using testing::TempDir;

constexpr uint64_t kMiB = 1 << 20;

std::unique_ptr<Device> Open(const std::string& path, PosixDeviceOptions o = {}) {
  Result<std::unique_ptr<Device>> r = OpenPosixDevice(path, o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

class PosixDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(dir_.ok()); }
  TempDir dir_;
};

TEST_F(PosixDeviceTest, PunchDeallocatesAndSeekFindsTheHole) {
  std::string path = dir_.File("dest");
  std::mt19937_64 rng(1);
  ASSERT_TRUE(testing::WriteFile(path, RandomBytes(rng, 4 * kMiB)));
  auto dev = Open(path);
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(dev->Flush().ok());
  uint64_t before = AllocatedBytes(path);
  ASSERT_GE(before, 4 * kMiB);
  ASSERT_TRUE(dev->Zero(kMiB, 2 * kMiB, ZeroMode::kPunch).ok());
  EXPECT_LE(AllocatedBytes(path), before - 2 * kMiB);
  std::vector<uint8_t> buf(2 * kMiB, 1);
  ASSERT_TRUE(dev->Read(kMiB, buf.data(), buf.size()).ok());
  EXPECT_EQ(buf, std::vector<uint8_t>(2 * kMiB, 0));
  EXPECT_EQ(*dev->NextHole(0), kMiB);
  EXPECT_EQ(*dev->NextData(kMiB), 3 * kMiB);
  EXPECT_EQ(*dev->NextData(kMiB + 5), 3 * kMiB);
  EXPECT_EQ(*dev->NextHole(3 * kMiB), 4 * kMiB);
  EXPECT_EQ(dev->Size(), 4 * kMiB);  // KEEP_SIZE
  // The device's own figure is the file's (st_blocks x 512).
  ASSERT_TRUE(dev->AllocatedBytes().has_value());
  EXPECT_EQ(*dev->AllocatedBytes(), AllocatedBytes(path));
  EXPECT_LE(*dev->AllocatedBytes(), before - 2 * kMiB);
}

TEST_F(PosixDeviceTest, UnalignedPunchZeroesEdgesAndKeepsNeighbours) {
  std::string path = dir_.File("dest");
  std::mt19937_64 rng(2);
  std::vector<uint8_t> content = RandomBytes(rng, kMiB);
  ASSERT_TRUE(testing::WriteFile(path, content));
  auto dev = Open(path);
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(dev->Zero(1000, 20000, ZeroMode::kPunch).ok());
  ASSERT_TRUE(dev->Zero(70001, 3, ZeroMode::kWriteZeros).ok());
  std::fill(content.begin() + 1000, content.begin() + 21000, 0);
  std::fill(content.begin() + 70001, content.begin() + 70004, 0);
  Status s;
  EXPECT_EQ(testing::ReadAll(*dev, &s), content);
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(testing::ReadFile(path), content);
}

TEST_F(PosixDeviceTest, WriteZerosKeepsSpaceAllocated) {
  std::string path = dir_.File("dest");
  std::mt19937_64 rng(3);
  ASSERT_TRUE(testing::WriteFile(path, RandomBytes(rng, 4 * kMiB)));
  auto dev = Open(path);
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(dev->Flush().ok());
  uint64_t before = AllocatedBytes(path);
  ASSERT_TRUE(dev->Zero(0, 4 * kMiB, ZeroMode::kWriteZeros).ok());
  EXPECT_GE(AllocatedBytes(path), before);
  std::vector<uint8_t> buf(4 * kMiB, 1);
  ASSERT_TRUE(dev->Read(0, buf.data(), buf.size()).ok());
  EXPECT_EQ(buf, std::vector<uint8_t>(4 * kMiB, 0));
}

TEST_F(PosixDeviceTest, NextDataAndNextHoleOnSparseFile) {
  std::string path = dir_.File("sparse");
  ASSERT_TRUE(testing::MakeSparseFile(path, 16 * kMiB));
  auto dev = Open(path);
  ASSERT_NE(dev, nullptr);
  std::vector<uint8_t> data(kMiB, 0xab);
  ASSERT_TRUE(dev->Write(4 * kMiB, data.data(), data.size()).ok());
  ASSERT_TRUE(dev->Write(10 * kMiB, data.data(), 1).ok());
  ASSERT_TRUE(dev->Flush().ok());
  EXPECT_EQ(*dev->NextData(0), 4 * kMiB);
  EXPECT_EQ(*dev->NextHole(0), 0u);
  EXPECT_EQ(*dev->NextHole(4 * kMiB), 5 * kMiB);
  EXPECT_EQ(*dev->NextHole(4 * kMiB + 123), 5 * kMiB);
  EXPECT_EQ(*dev->NextData(4 * kMiB + 123), 4 * kMiB + 123);
  EXPECT_EQ(*dev->NextData(5 * kMiB), 10 * kMiB);
  uint64_t hole = *dev->NextHole(10 * kMiB);
  EXPECT_GT(hole, 10 * kMiB);  // at least the file system block
  EXPECT_LE(hole, 10 * kMiB + kMiB);
  EXPECT_EQ(*dev->NextData(hole), 16 * kMiB);  // none: Size()
  EXPECT_EQ(*dev->NextData(16 * kMiB), 16 * kMiB);
  EXPECT_EQ(*dev->NextHole(16 * kMiB - 1), 16 * kMiB - 1);
}

TEST_F(PosixDeviceTest, ReadOnlyRefusesWritesAndLeavesSourceUnchanged) {
  std::string path = dir_.File("source");
  std::mt19937_64 rng(4);
  std::vector<uint8_t> content = RandomBytes(rng, kMiB + 77);
  ASSERT_TRUE(testing::WriteFile(path, content));
  uint64_t hash = testing::FileHash(path);
  PosixDeviceOptions o;
  o.read_only = true;
  o.create = true;        // ignored for read-only opens
  o.min_size = 8 * kMiB;  // likewise
  auto dev = Open(path, o);
  ASSERT_NE(dev, nullptr);
  EXPECT_TRUE(dev->ReadOnly());
  EXPECT_EQ(dev->Size(), kMiB + 77);
  std::vector<uint8_t> junk(4096, 9);
  Status w = dev->Write(0, junk.data(), junk.size());
  EXPECT_EQ(w.code(), Status::Code::kPermission) << w.ToString();
  EXPECT_NE(w.message().find(path), std::string::npos);
  EXPECT_EQ(dev->Zero(0, 4096, ZeroMode::kPunch).code(), Status::Code::kPermission);
  EXPECT_EQ(dev->Zero(0, 4096, ZeroMode::kWriteZeros).code(), Status::Code::kPermission);
  EXPECT_TRUE(dev->Flush().ok());
  Status s;
  EXPECT_EQ(testing::ReadAll(*dev, &s), content);
  // The descriptor itself cannot write, whatever the code above it does.
  int fd = dev->SpliceFd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
  EXPECT_LT(::pwrite(fd, junk.data(), 1, 0), 0);
  dev.reset();
  EXPECT_EQ(testing::FileHash(path), hash);
}

TEST_F(PosixDeviceTest, DescriptorsAreCloseOnExecAndSpliceable) {
  std::string path = dir_.File("img");
  std::vector<uint8_t> content(10000, 0x5a);
  ASSERT_TRUE(testing::WriteFile(path, content));
  PosixDeviceOptions o;
  o.direct = true;
  auto dev = Open(path, o);
  ASSERT_NE(dev, nullptr);
  int fd = dev->SpliceFd();
  ASSERT_GE(fd, 0);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  EXPECT_EQ(::fcntl(fd, F_GETFL) & O_DIRECT, 0);  // the splice fd is the buffered one
  EXPECT_EQ(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  uint8_t b[3] = {};
  ASSERT_EQ(::pread(fd, b, 3, 9997), 3);
  EXPECT_EQ(b[2], 0x5a);
}

TEST_F(PosixDeviceTest, DirectIoUnalignedRequestsKeepSizeAndContent) {
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::string path = dir_.File("direct");
  const uint64_t size = 2 * kMiB + 1000;  // last 4 KiB block partial
  std::vector<uint8_t> model = RandomBytes(rng, size);
  ASSERT_TRUE(testing::WriteFile(path, model));
  PosixDeviceOptions o;
  o.direct = true;
  auto dev = Open(path, o);
  ASSERT_NE(dev, nullptr);
  for (int i = 0; i < 200 / testing::kSlowdown; i++) {
    uint64_t off = rng() % size;
    uint64_t len = 1 + rng() % std::min<uint64_t>(size - off, rng() % 2 ? 9000 : 1200000);
    std::vector<uint8_t> data = RandomBytes(rng, len);
    ASSERT_TRUE(dev->Write(off, data.data(), len).ok()) << off << "+" << len;
    std::copy(data.begin(), data.end(), model.begin() + off);
    uint64_t roff = rng() % size, rlen = 1 + rng() % (size - roff);
    std::vector<uint8_t> got(rlen);
    ASSERT_TRUE(dev->Read(roff, got.data(), rlen).ok());
    ASSERT_TRUE(std::equal(got.begin(), got.end(), model.begin() + roff)) << roff << "+" << rlen;
  }
  // Aligned buffer, offset and length: the direct path proper.
  {
    void* p = nullptr;
    ASSERT_EQ(::posix_memalign(&p, 4096, 8192), 0);
    std::memset(p, 0x33, 8192);
    ASSERT_TRUE(dev->Write(8192, p, 8192).ok());
    std::fill(model.begin() + 8192, model.begin() + 16384, 0x33);
    std::memset(p, 0, 8192);
    ASSERT_TRUE(dev->Read(4096, p, 8192).ok());
    EXPECT_TRUE(std::equal(model.begin() + 4096, model.begin() + 12288, static_cast<uint8_t*>(p)));
    std::free(p);
  }
  ASSERT_TRUE(dev->Flush().ok());
  dev.reset();
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), size);  // no aligned write past the end
  EXPECT_EQ(testing::ReadFile(path), model);
}

// Bytes of [off, off+len) of `path` in the page cache (mincore).
uint64_t CachedBytes(const std::string& path, uint64_t off, uint64_t len) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(off));
  ::close(fd);
  EXPECT_NE(m, MAP_FAILED);
  if (m == MAP_FAILED) return 0;
  std::vector<unsigned char> vec((len + 4095) / 4096);
  uint64_t n = 0;
  EXPECT_EQ(::mincore(m, len, vec.data()), 0);
  for (unsigned char v : vec) n += (v & 1) ? 4096 : 0;
  ::munmap(m, len);
  return n;
}

// WriteCached on an O_DIRECT device (the copier's writes into the default
// dest) goes through the page cache, so that the writer never waits for the
// disk; O_DIRECT reads and writes around it see exactly the model, and
// DropCached evicts what it wrote.
TEST_F(PosixDeviceTest, CachedWritesBesideDirectIoAreCoherentAndEvictable) {
  uint64_t seed = testing::TestSeed();
  SCOPED_TRACE(SeedTrace(seed));
  std::mt19937_64 rng(seed);
  std::string path = dir_.File("cached");
  const uint64_t size = 4 * kMiB + 1000;  // last 4 KiB block partial
  std::vector<uint8_t> model = RandomBytes(rng, size);
  // Written around the page cache: a buffered write of the whole file would
  // leave large folios that a 1 MiB range cannot evict on its own.
  ASSERT_TRUE(testing::MakeSparseFile(path, size));
  PosixDeviceOptions o;
  o.direct = true;
  auto dev = Open(path, o);
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(dev->Write(0, model.data(), size).ok());
  ASSERT_TRUE(dev->PageCached());
  struct statfs fs;
  ASSERT_EQ(::statfs(path.c_str(), &fs), 0);
  const bool tmpfs = fs.f_type == TMPFS_MAGIC;  // its pages are the storage: never evicted
  {  // one aligned cached write lands in the page cache and is evicted again
    std::vector<uint8_t> data = RandomBytes(rng, kMiB);
    ASSERT_TRUE(dev->WriteCached(kMiB, data.data(), kMiB).ok());
    std::copy(data.begin(), data.end(), model.begin() + kMiB);
    EXPECT_EQ(CachedBytes(path, kMiB, kMiB), kMiB) << "an aligned cached write skipped the cache";
    dev->DropCached(kMiB, kMiB);
    if (!tmpfs) {
      EXPECT_EQ(CachedBytes(path, kMiB, kMiB), 0u);
    }
  }
  for (int i = 0; i < 300 / testing::kSlowdown; i++) {
    // Cached writes as the copier makes them (whole 4 KiB blocks, or up to
    // the end), and now and then unaligned ones, which take the direct path.
    uint64_t off, len;
    if (rng() % 4 != 0) {
      off = rng() % (size / 4096) * 4096;
      len = std::min<uint64_t>(size - off, (1 + rng() % 64) * 4096);
    } else {
      off = rng() % size;
      len = 1 + rng() % std::min<uint64_t>(size - off, 20000);
    }
    std::vector<uint8_t> data = RandomBytes(rng, len);
    const bool cached = rng() % 2 == 0;
    Status w = cached ? dev->WriteCached(off, data.data(), len) : dev->Write(off, data.data(), len);
    ASSERT_TRUE(w.ok()) << (cached ? "cached " : "direct ") << off << "+" << len << ": "
                        << w.ToString();
    std::copy(data.begin(), data.end(), model.begin() + off);
    if (rng() % 8 == 0) dev->DropCached(0, size);
    uint64_t roff = rng() % size, rlen = 1 + rng() % (size - roff);
    if (rng() % 2 == 0) {  // whole blocks, as the engine's reads of regions
      roff = roff / 4096 * 4096;
      rlen = std::min<uint64_t>(size - roff, (1 + rng() % 64) * 4096);
    }
    std::vector<uint8_t> got(rlen);
    // From the page cache where all of it is there (the engine's way while
    // the copier's writes may be cached), else direct.
    const bool from_cache = rng() % 2 == 0 && dev->ReadFromCache(roff, got.data(), rlen);
    if (!from_cache) {
      ASSERT_TRUE(dev->Read(roff, got.data(), rlen).ok());
    }
    ASSERT_TRUE(std::equal(got.begin(), got.end(), model.begin() + roff))
        << roff << "+" << rlen << (from_cache ? " from the cache" : "");
  }
  ASSERT_TRUE(dev->Flush().ok());
  dev.reset();
  EXPECT_EQ(testing::ReadFile(path), model);
}

// Dirty pages of [off, off+len), or nullopt where the kernel cannot tell.
std::optional<uint64_t> DirtyPages(const std::string& path, uint64_t off, uint64_t len) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0);
  std::optional<posix_io::CacheState> c = posix_io::Cachestat(fd, off, len);
  ::close(fd);
  if (!c) return std::nullopt;
  return c->dirty;
}

// What WriteCached left in the page cache is read from there while it is
// all there, without the write-back an O_DIRECT read would force first;
// anything else (part of it evicted or overwritten directly, unaligned, a
// device without O_DIRECT) is refused, and Read serves it as before.
TEST_F(PosixDeviceTest, ReadFromCacheServesWhatWriteCachedLeftWithoutWritingItBack) {
  std::mt19937_64 rng(7);
  std::string path = dir_.File("fromcache");
  const uint64_t size = 4 * kMiB;
  ASSERT_TRUE(testing::MakeSparseFile(path, size));
  PosixDeviceOptions o;
  o.direct = true;
  auto dev = Open(path, o);
  ASSERT_NE(dev, nullptr);
  struct statfs fs;
  ASSERT_EQ(::statfs(path.c_str(), &fs), 0);
  const bool tmpfs = fs.f_type == TMPFS_MAGIC;  // no write-back to speak of
  std::vector<uint8_t> data = RandomBytes(rng, 2 * kMiB);
  ASSERT_TRUE(dev->WriteCached(kMiB, data.data(), data.size()).ok());
  const bool cachestat = DirtyPages(path, kMiB, kMiB).has_value();

  std::vector<uint8_t> got(kMiB);
  if (!cachestat) {  // the kernel cannot say what is cached: never from the cache
    EXPECT_FALSE(dev->ReadFromCache(kMiB, got.data(), kMiB));
    return;
  }
  if (!tmpfs) {
    ASSERT_GT(*DirtyPages(path, kMiB, kMiB), 0u);
  }
  ASSERT_TRUE(dev->ReadFromCache(kMiB, got.data(), kMiB));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin()));
  if (!tmpfs) {
    // (The kernel's flusher may clean some meanwhile; an O_DIRECT read
    // cleans them all, below.)
    EXPECT_GT(*DirtyPages(path, kMiB, kMiB), 0u) << "the cached read wrote the data back";
  }
  // What Read does instead: an O_DIRECT read writes the dirty pages back.
  ASSERT_TRUE(dev->Read(kMiB, got.data(), kMiB).ok());
  EXPECT_TRUE(std::equal(got.begin(), got.end(), data.begin()));
  if (!tmpfs) {
    EXPECT_EQ(*DirtyPages(path, kMiB, kMiB), 0u);
  }

  // Refused: not whole blocks; a range that was never written (not cached).
  EXPECT_FALSE(dev->ReadFromCache(kMiB + 512, got.data(), 4096));
  EXPECT_FALSE(dev->ReadFromCache(0, got.data(), 4096));
  // A direct write into the cached range evicts what it covers: the range
  // is then refused and Read returns the new bytes.
  std::vector<uint8_t> fresh = RandomBytes(rng, 8192);
  ASSERT_TRUE(dev->Write(2 * kMiB, fresh.data(), fresh.size()).ok());
  EXPECT_FALSE(dev->ReadFromCache(2 * kMiB - 4096, got.data(), 16384));
  ASSERT_TRUE(dev->Read(2 * kMiB - 4096, got.data(), 16384).ok());
  EXPECT_TRUE(std::equal(fresh.begin(), fresh.end(), got.begin() + 4096));
  // Evicted: refused.
  if (!tmpfs) {
    dev->DropCached(kMiB, 2 * kMiB);
    EXPECT_FALSE(dev->ReadFromCache(2 * kMiB + kMiB / 2, got.data(), 4096));
  }
  // A device without O_DIRECT reads through the cache anyway: never asked.
  dev.reset();
  auto buffered = Open(path, PosixDeviceOptions{});
  ASSERT_NE(buffered, nullptr);
  EXPECT_FALSE(buffered->ReadFromCache(kMiB, got.data(), 4096));
}

TEST_F(PosixDeviceTest, CreateAndMinSize) {
  std::string path = dir_.File("new");
  PosixDeviceOptions o;
  Result<std::unique_ptr<Device>> missing = OpenPosixDevice(path, o);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
  o.create = true;
  o.min_size = 5 * kMiB + 3;
  auto dev = Open(path, o);
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->Size(), 5 * kMiB + 3);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 5 * kMiB + 3);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, kMiB);  // sparse
  EXPECT_EQ(st.st_mode & 0600, 0600u);
  dev.reset();
  o.min_size = 4096;  // never shrinks
  dev = Open(path, o);
  ASSERT_NE(dev, nullptr);
  EXPECT_EQ(dev->Size(), 5 * kMiB + 3);
}

TEST_F(PosixDeviceTest, OpenErrors) {
  PosixDeviceOptions ro;
  ro.read_only = true;
  Result<std::unique_ptr<Device>> r = OpenPosixDevice(dir_.File("nope"), ro);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsNotFound());

  for (bool read_only : {true, false}) {
    PosixDeviceOptions o;
    o.read_only = read_only;
    r = OpenPosixDevice(dir_.path(), o);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
    EXPECT_NE(r.status().message().find(dir_.path()), std::string::npos);

    std::string fifo = dir_.File("fifo");
    ::unlink(fifo.c_str());
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    r = OpenPosixDevice(fifo, o);  // must not block waiting for a writer
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();

    r = OpenPosixDevice("/dev/null", o);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  }
}

TEST_F(PosixDeviceTest, ShortReadIsAnIoErrorThatSaysSo) {
  std::string path = dir_.File("shrinks");
  ASSERT_TRUE(testing::WriteFile(path, std::vector<uint8_t>(8192, 1)));
  auto dev = Open(path);
  ASSERT_NE(dev, nullptr);
  ASSERT_EQ(::truncate(path.c_str(), 4096), 0);  // behind the device's back
  std::vector<uint8_t> buf(1000);
  Status s = dev->Read(4000, buf.data(), buf.size());
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_NE(s.message().find("short read"), std::string::npos) << s.ToString();
  EXPECT_EQ(s.ToErrno(), EIO);
}

// SPEC §7a: a source that shrinks, grows or is modified under the clone is
// noticed, and a shrunken tail never looks like a hole.
TEST_F(PosixDeviceTest, CheckUnchangedSeesShrinkGrowthAndModification) {
  std::string path = dir_.File("source");
  std::mt19937_64 rng(3);
  ASSERT_TRUE(testing::WriteFile(path, RandomBytes(rng, 4 * kMiB)));
  PosixDeviceOptions ro;
  ro.read_only = true;
  for (bool direct : {false, true}) {
    SCOPED_TRACE(direct ? "O_DIRECT" : "buffered");
    ro.direct = direct;
    ASSERT_EQ(::truncate(path.c_str(), 4 * kMiB), 0);
    ASSERT_TRUE(testing::WriteFile(path, RandomBytes(rng, 4 * kMiB)));
    auto dev = Open(path, ro);
    ASSERT_NE(dev, nullptr);
    EXPECT_TRUE(dev->CheckUnchanged().ok());
    EXPECT_EQ(*dev->NextData(3 * kMiB), 3 * kMiB);

    ASSERT_EQ(::truncate(path.c_str(), 2 * kMiB), 0);
    Status s = dev->CheckUnchanged();
    EXPECT_TRUE(s.IsMismatch()) << s.ToString();
    EXPECT_NE(s.message().find("shrank from 4194304 to 2097152 bytes"), std::string::npos)
        << s.ToString();
    // Past the new end there is no data; that is not a hole of the image.
    Result<uint64_t> d = dev->NextData(3 * kMiB);
    EXPECT_FALSE(d.ok()) << "NextData past the shrunken end said " << *d;
    Result<uint64_t> h = dev->NextHole(kMiB);
    EXPECT_FALSE(h.ok()) << "NextHole before the shrunken end said " << *h;
    std::vector<uint8_t> buf(4096);
    EXPECT_EQ(dev->Read(2 * kMiB, buf.data(), buf.size()).ToErrno(), EIO);

    ASSERT_EQ(::truncate(path.c_str(), 5 * kMiB), 0);
    s = dev->CheckUnchanged();
    EXPECT_NE(s.message().find("grew from 4194304 to 5242880 bytes"), std::string::npos)
        << s.ToString();
  }
}

TEST_F(PosixDeviceTest, CheckUnchangedComparesTheMtimeOnlyWhereAsked) {
  std::string path = dir_.File("source");
  ASSERT_TRUE(testing::WriteFile(path, std::vector<uint8_t>(kMiB, 7)));
  PosixDeviceOptions ro;
  ro.read_only = true;
  auto watched = Open(path, ro);
  ro.watch_mtime = false;
  auto unwatched = Open(path, ro);
  ASSERT_NE(watched, nullptr);
  ASSERT_NE(unwatched, nullptr);
  // Same size, other content, and an mtime set explicitly (no coarse-clock
  // luck needed).
  ASSERT_TRUE(testing::WriteFile(path, std::vector<uint8_t>(kMiB, 8)));
  struct timespec times[2] = {{0, UTIME_OMIT}, {1234567890, 123}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  Status s = watched->CheckUnchanged();
  EXPECT_TRUE(s.IsMismatch()) << s.ToString();
  EXPECT_NE(s.message().find("was modified"), std::string::npos) << s.ToString();
  EXPECT_TRUE(unwatched->CheckUnchanged().ok());  // e.g. nbdfuse: the mtime means nothing
  // The size is compared either way.
  ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
  EXPECT_TRUE(unwatched->CheckUnchanged().IsMismatch());
  // A writable device compares only its size (clonefs writes it).
  std::string dpath = dir_.File("dest");
  ASSERT_TRUE(testing::WriteFile(dpath, std::vector<uint8_t>(kMiB, 1)));
  auto dest = Open(dpath);
  ASSERT_NE(dest, nullptr);
  std::vector<uint8_t> b(10, 2);
  ASSERT_TRUE(dest->Write(100, b.data(), b.size()).ok());
  EXPECT_TRUE(dest->CheckUnchanged().ok());
}

TEST_F(PosixDeviceTest, ZeroFallsBackWhereZeroRangeIsUnsupported) {
  // tmpfs punches holes but has no FALLOC_FL_ZERO_RANGE: kWriteZeros must
  // fall back to writing zeros.
  TempDir shm("/dev/shm");
  if (!shm.ok()) GTEST_SKIP() << "no /dev/shm";
  std::string path = shm.File("img");
  std::mt19937_64 rng(5);
  std::vector<uint8_t> content = RandomBytes(rng, 3 * kMiB + 5);
  ASSERT_TRUE(testing::WriteFile(path, content));
  auto dev = Open(path);
  ASSERT_NE(dev, nullptr);
  ASSERT_TRUE(dev->Zero(100, 2 * kMiB + 7, ZeroMode::kWriteZeros).ok());
  ASSERT_TRUE(dev->Zero(2 * kMiB + 500, 4096 * 3, ZeroMode::kPunch).ok());
  std::fill(content.begin() + 100, content.begin() + 100 + 2 * kMiB + 7, 0);
  std::fill(content.begin() + 2 * kMiB + 500, content.begin() + 2 * kMiB + 500 + 3 * 4096, 0);
  EXPECT_EQ(testing::ReadFile(path), content);
  EXPECT_GE(AllocatedBytes(path), 3 * kMiB - 4 * 4096);  // written zeros stay allocated
}

}  // namespace
}  // namespace clonefs
