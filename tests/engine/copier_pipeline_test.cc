// The background copier's pipeline (SPEC §9): a target of bytes in flight
// on a source that overlaps reads, reads completing on other threads or
// inline, all-zero data hydrated as holes, Stop with reads in flight.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "copier/background_copier.h"
#include "copier/cache_dropper.h"
#include "copier/copy_buffer.h"
#include "devices/posix_device.h"
#include "devices/posix_io.h"
#include "engine_test_util.h"
#include "fake_async_source.h"

namespace clonefs {
namespace {

using test::FakeAsyncSource;
using test::Rig;

constexpr uint64_t kRegion = 64 << 10;

struct AsyncRig {
  explicit AsyncRig(uint64_t regions, uint64_t region = kRegion)
      : AsyncRig(region, test::RandomContent(regions * region, 17, 0)) {}
  AsyncRig(uint64_t region, std::vector<uint8_t> content)
      : size(content.size()),
        rig(size, region, std::move(content)),
        src(std::make_shared<FakeAsyncSource>(rig.source)) {}
  ~AsyncRig() {
    src->SetHold(false);  // the engine's shutdown waits for every read
    rig.engine.reset();
  }
  Status Open(const EngineOptions& o) { return rig.Open(o, true, src); }
  Engine* e() { return rig.engine.get(); }
  const uint64_t size;  // before rig: initialized first
  Rig rig;
  std::shared_ptr<FakeAsyncSource> src;
};

// The copier keeps its byte target in flight on a source that overlaps
// reads -- far more than one unit per thread -- and never more than the
// target plus one piece.
TEST(CopierPipeline, KeepsTheByteTargetInFlight) {
  AsyncRig a(256);  // 16 MiB
  a.src->SetHold(true);
  EngineOptions o;
  o.knobs.hydration_threshold = 4096;
  o.knobs.hydration_batch_size = 4;  // 256 KiB pieces
  o.copier_inflight_bytes = 4 << 20;
  const uint64_t piece = 4 * kRegion, target = 4 << 20;
  ASSERT_OK(a.Open(o));
  // Nothing completes while held: the copier fills its budget and stops.
  ASSERT_TRUE(Rig::WaitFor([&] { return a.src->inflight_bytes() >= target; }))
      << a.src->inflight_bytes();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(a.src->inflight_bytes(), target + piece);
  EXPECT_EQ(a.e()->Stats().copier_inflight_bytes, a.src->inflight_bytes());
  EXPECT_EQ(a.e()->Stats().hydrated_regions, 0u);
  EXPECT_EQ(a.src->max_read_len(), piece);

  // Released, reads complete after a delay on the source's thread; the
  // budget is refilled as writers release it.
  a.src->SetDelayMicros(2000);
  a.src->SetHold(false);
  ASSERT_TRUE(Rig::WaitFor([&] { return a.e()->Stats().hydration_done; }));
  EXPECT_GE(a.src->max_inflight_bytes(), target);
  EXPECT_LE(a.src->max_inflight_bytes(), target + piece);
  EXPECT_EQ(a.e()->Stats().copier_inflight_bytes, 0u);
  EXPECT_EQ(a.rig.DestBytes(0, a.rig.image_size), a.rig.source_content);
  EXPECT_EQ(a.src->failed_reads(), 0u);
}

// A replayed profile's units hold at most the prefetch room in flight, even
// with no user I/O (when the whole byte target would be allowed), and the
// rest of the image waits behind the profile until all of it is issued.
TEST(CopierPipeline, AReplayedProfileHoldsAtMostThePrefetchRoomInFlight) {
  AsyncRig a(768);  // 48 MiB
  a.src->SetHold(true);
  EngineOptions o;
  o.commit_interval_ms = 0;
  o.copier_inflight_bytes = 64 << 20;
  o.profile_order = {{100, 400}};  // 25 MiB
  const uint64_t room = BackgroundCopier::kPrefetchBusyBytes, piece = 16 * kRegion;
  ASSERT_OK(a.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return a.src->inflight_bytes() >= room; }))
      << a.src->inflight_bytes();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_LE(a.src->inflight_bytes(), room + piece);
  a.src->SetDelayMicros(500);
  a.src->SetHold(false);
  ASSERT_TRUE(Rig::WaitFor([&] { return a.e()->Stats().profile_hydrated == 400; }));
  // Once the profile is issued, the cursor has the whole byte target.
  ASSERT_TRUE(Rig::WaitFor([&] { return a.e()->Stats().hydration_done; }));
  EXPECT_GT(a.src->max_inflight_bytes(), room + piece);
  EXPECT_EQ(a.rig.DestBytes(0, a.rig.image_size), a.rig.source_content);
}

// The prefetch room follows the source's latency floor: a source 30 ms away
// gets its bandwidth-delay product at 1 GiB/s (~30 MiB) of the profile in
// flight, not the 16 MiB a near one gets.
TEST(CopierPipeline, ThePrefetchRoomGrowsWithTheSourcesLatency) {
  AsyncRig a(640);  // 40 MiB, all of it in the profile
  a.src->SetDelayMicros(30'000);
  EngineOptions o;
  o.commit_interval_ms = 0;
  o.copier_inflight_bytes = 64 << 20;
  o.profile_order = {{0, 640}};
  const uint64_t piece = 16 * kRegion;
  ASSERT_OK(a.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return a.e()->Stats().hydration_done; }));
  const EngineStats s = a.e()->Stats();
  EXPECT_GE(s.source_latency_floor_ns, 30'000'000u);
  EXPECT_GE(s.copier_prefetch_room_bytes, 30u << 20);
  EXPECT_LE(s.copier_prefetch_room_bytes, BackgroundCopier::kPrefetchMaxBytes);
  EXPECT_GT(a.src->max_inflight_bytes(), BackgroundCopier::kPrefetchBusyBytes + piece);
  EXPECT_EQ(a.rig.DestBytes(0, a.rig.image_size), a.rig.source_content);
}

// Hydrates a 32 MiB clone over a 40 MB/s link that delivers reads one after
// another (one connection), reading one unhydrated 4 KiB block as a user
// every 100 ms meanwhile (busy for 20 ms after each); returns the most bytes of copies that were in
// flight when one of those reads reached the source -- what it would wait
// behind on that link.
uint64_t CopiesAheadOfUserReads(bool shared, EngineStats* last) {
  AsyncRig a(512);  // 32 MiB
  a.src->SetLinkBytesPerSecond(40'000'000);
  a.src->SetDelayMicros(2000);
  a.src->SetSharedQueue(shared);
  EngineOptions o;
  o.commit_interval_ms = 0;
  o.copy_on_read = false;
  o.read_hints = false;
  EXPECT_OK(a.Open(o));
  std::vector<uint8_t> got(4096);
  std::mt19937_64 rng(5);
  bool done = false;
  while (!done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    done = a.e()->Stats().hydration_done;
    const uint64_t off = (rng() % 512) * kRegion + (rng() % 16) * 4096;
    EXPECT_OK(a.e()->Read(off, got.data(), got.size()));
    EXPECT_EQ(0, std::memcmp(got.data(), a.rig.source_content.data() + off, got.size()));
  }
  *last = a.e()->Stats();
  EXPECT_EQ(a.rig.DestBytes(0, a.rig.image_size), a.rig.source_content);
  return a.src->max_bytes_ahead_of_reads();
}

// SHARED LINK: on a source whose user reads queue behind the copier's, the
// copier keeps about two round trips of copies in flight (its window), not
// its 64 MiB byte target, so a user's read waits behind ~1 MiB instead of
// the whole image; elsewhere the byte target stays in flight.
TEST(CopierPipeline, OnASharedLinkUserReadsWaitBehindAWindowNotTheByteTarget) {
  EngineStats shared_stats, own_stats;
  const uint64_t shared = CopiesAheadOfUserReads(true, &shared_stats);
  const uint64_t own = CopiesAheadOfUserReads(false, &own_stats);
  EXPECT_TRUE(shared_stats.source_link_shared);
  EXPECT_FALSE(own_stats.source_link_shared);
  EXPECT_EQ(own_stats.copier_window_bytes, 64u << 20);
  EXPECT_LE(shared_stats.copier_window_bytes, 8u << 20);
  // 40 MB/s x (2 ms + a piece of 10 ms of the rate) x 2 is ~1 MiB; a few
  // MiB allow for a slow machine (a longer floor) and one piece over.
  EXPECT_LE(shared, 6u << 20) << "own queue: " << own;
  EXPECT_GE(own, 16u << 20);
}

// Once every region is hydrated and committed the source is released
// (Device::Release: a remote one closes its connections), once, with none
// of the copier's reads in flight; never while regions remain.
TEST(CopierPipeline, TheSourceIsReleasedOnceTheCloneIsCompleteAndCommitted) {
  AsyncRig a(64);  // 4 MiB
  a.src->SetDelayMicros(1000);
  EngineOptions o;
  o.commit_interval_ms = 60'000;  // only the completing commit, requested by the copier
  a.src->SetHold(true);
  ASSERT_OK(a.Open(o));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(a.src->releases(), 0u);  // reads held: nothing is complete
  a.src->SetHold(false);
  ASSERT_TRUE(Rig::WaitFor([&] { return a.e()->Stats().hydration_done; }));
  ASSERT_TRUE(Rig::WaitFor([&] { return a.src->releases() != 0; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the issuer loops on
  EXPECT_EQ(a.src->releases(), 1u);
  EXPECT_EQ(a.src->pending_at_release(), 0u);
  EXPECT_EQ(a.rig.DestBytes(0, a.rig.image_size), a.rig.source_content);
}

// A user's read that chose the source (its region unhydrated) and reaches
// it only after the clone completed and released it is answered from dest,
// not with EIO: every region is there by then.
TEST(CopierPipeline, AReadThatRacesTheReleaseIsAnsweredFromDest) {
  AsyncRig a(16);        // 1 MiB
  a.src->SetHold(true);  // nothing hydrates yet
  std::mutex mu;
  std::condition_variable cv;
  bool at_gate = false, open = false;
  a.src->SetReadGate([&] {
    std::unique_lock<std::mutex> l(mu);
    at_gate = true;
    cv.notify_all();
    cv.wait(l, [&] { return open; });
  });
  EngineOptions o;
  o.commit_interval_ms = 60'000;
  ASSERT_OK(a.Open(o));
  std::vector<uint8_t> got(4096);
  Status read;
  std::thread reader([&] { read = a.e()->Read(5 * kRegion, got.data(), got.size()); });
  {
    std::unique_lock<std::mutex> l(mu);
    ASSERT_TRUE(cv.wait_for(l, std::chrono::seconds(20), [&] { return at_gate; }));
  }
  a.src->SetReadGate(nullptr);  // the copier's own reads go through
  a.src->SetHold(false);
  ASSERT_TRUE(Rig::WaitFor([&] { return a.src->releases() != 0; }));
  {
    std::lock_guard<std::mutex> l(mu);
    open = true;
  }
  cv.notify_all();
  reader.join();
  ASSERT_OK(read);
  EXPECT_EQ(0, std::memcmp(got.data(), a.rig.source_content.data() + 5 * kRegion, got.size()));
}

// Reads that complete inside ReadAsync (allowed by the Device contract), and
// units larger than one copy chunk (several pieces per unit), with holes.
TEST(CopierPipeline, InlineCompletionsAndMultiPieceUnits) {
  const uint64_t region = 16ull << 20;  // 2 pieces of 8 MiB per region
  std::vector<uint8_t> content = test::RandomContent(2 * region, 17, 0);
  std::fill(content.begin() + region - (3 << 20), content.begin() + region + (1 << 20), 0);
  AsyncRig a(region, std::move(content));
  a.src->SetInline(true);
  EngineOptions o;
  o.knobs.hydration_batch_size = 2;
  o.copier_inflight_bytes = 8 << 20;  // one piece at a time, however large
  ASSERT_OK(a.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return a.e()->Stats().hydration_done; }));
  EXPECT_LE(a.src->max_read_len(), kMaxCopyChunk);
  EXPECT_LE(a.src->max_inflight_bytes(), kMaxCopyChunk);
  EXPECT_EQ(a.rig.DestBytes(0, a.rig.image_size), a.rig.source_content);
  EngineStats s = a.e()->Stats();
  EXPECT_EQ(s.bytes_copied + s.bytes_zeroed, a.rig.image_size);
}

// Content with all-zero regions, all-zero 4 KiB blocks inside data, and a
// zero tail, from a source that cannot say where its holes are.
std::vector<uint8_t> ZeroyContent(uint64_t regions, uint64_t* zero_bytes) {
  std::vector<uint8_t> c = test::RandomContent(regions * kRegion, 23, 0);
  auto zero = [&](uint64_t off, uint64_t len) {
    std::fill(c.begin() + off, c.begin() + off + len, 0);
  };
  zero(3 * kRegion, 5 * kRegion);                 // whole regions
  zero(10 * kRegion + 8192, 3 * 4096);            // blocks inside a region
  zero(12 * kRegion + kRegion - 4096, 8192);      // across a region boundary
  zero((regions - 1) * kRegion + 4096, kRegion - 4096);  // the tail
  *zero_bytes = 5 * kRegion + 3 * 4096 + 8192 + kRegion - 4096;
  return c;
}

// Zero blocks read from the source end up as holes in dest, counted as
// zeroed, never written as data: the dest MemDevice keeps written blocks
// allocated, even all-zero ones.
TEST(CopierPipeline, AllZeroDataIsHydratedAsHoles) {
  const uint64_t n = 16;
  uint64_t zeros = 0;
  Rig rig(n * kRegion, kRegion, ZeroyContent(n, &zeros));
  auto src = std::make_shared<FakeAsyncSource>(rig.source);
  src->SetAllData(true);
  ASSERT_OK(rig.Open(EngineOptions{}, true, src));
  ASSERT_TRUE(Rig::WaitFor([&] { return rig.engine->Stats().hydration_done; }));
  EngineStats s = rig.engine->Stats();
  EXPECT_EQ(s.bytes_zeroed, zeros);
  EXPECT_EQ(s.bytes_copied, n * kRegion - zeros);
  EXPECT_EQ(src->reads() > 0, true);
  rig.engine.reset();
  // dest (flushed by the final commit) is the image, with holes where it is zero.
  std::vector<uint8_t> got(n * kRegion);
  ASSERT_OK(rig.dest_base->Read(0, got.data(), got.size()));
  EXPECT_EQ(got, rig.source_content);
  auto hole_at = [&](uint64_t off, uint64_t len) {
    Result<uint64_t> d = rig.dest_base->NextData(off);
    return d.ok() && *d >= off + len;
  };
  EXPECT_TRUE(hole_at(3 * kRegion, 5 * kRegion));
  EXPECT_TRUE(hole_at(10 * kRegion + 8192, 3 * 4096));
  EXPECT_TRUE(hole_at(12 * kRegion + kRegion - 4096, 8192));
  EXPECT_TRUE(hole_at((n - 1) * kRegion + 4096, kRegion - 4096));
  Result<uint64_t> d = rig.dest_base->NextData(0);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 0u);  // data stays data
}

// With `no_discard_passdown` the zeros of the source are written, not
// punched (SPEC §3, §9): every block of dest is allocated once hydrated,
// both where the source read as zeros and where it reported holes.
void ExpectZerosKeptAllocatedWithoutPassdown(bool source_has_holes) {
  const uint64_t n = 16;
  uint64_t zeros = 0;
  Rig rig(n * kRegion, kRegion, ZeroyContent(n, &zeros));
  auto src = std::make_shared<FakeAsyncSource>(rig.source);
  src->SetAllData(!source_has_holes);
  EngineOptions o;
  o.discard_passdown = false;
  ASSERT_OK(rig.Open(o, true, src));
  ASSERT_TRUE(Rig::WaitFor([&] { return rig.engine->Stats().hydration_done; }));
  EXPECT_EQ(rig.engine->Stats().bytes_zeroed, zeros);
  rig.engine.reset();
  std::vector<uint8_t> got(n * kRegion);
  ASSERT_OK(rig.dest_base->Read(0, got.data(), got.size()));
  EXPECT_EQ(got, rig.source_content);
  for (uint64_t off = 0; off < n * kRegion; off += 4096) {
    Result<uint64_t> d = rig.dest_base->NextData(off);
    ASSERT_TRUE(d.ok());
    ASSERT_EQ(*d, off) << "a hole in dest at " << off << " without discard passdown";
  }
}

TEST(CopierPipeline, WithoutPassdownZeroDataIsWrittenNotPunched) {
  ExpectZerosKeptAllocatedWithoutPassdown(/*source_has_holes=*/false);
}

TEST(CopierPipeline, WithoutPassdownSourceHolesAreWrittenAsZeros) {
  ExpectZerosKeptAllocatedWithoutPassdown(/*source_has_holes=*/true);
}

// A clone of `src` into `dest` with fresh metadata in `md_dir`, started;
// nullptr (with a test failure) if it does not open or start. The caller
// shuts it down.
std::unique_ptr<Engine> StartClone(std::unique_ptr<Device> src, std::unique_ptr<Device> dest,
                                   const std::string& md_dir, const EngineOptions& eo = {}) {
  metadata::MetadataOptions mo;
  mo.dir = md_dir;
  mo.image_size = src->Size();
  mo.region_size = kRegion;
  auto md = metadata::Metadata::Open(mo);
  EXPECT_TRUE(md.ok()) << md.status().ToString();
  if (!md.ok()) return nullptr;
  auto e = Engine::Open(std::move(src), std::move(dest), std::move(*md), eo);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  if (!e.ok()) return nullptr;
  Status started = (*e)->Start();
  EXPECT_TRUE(started.ok()) << started.ToString();
  if (!started.ok()) return nullptr;
  return std::move(*e);
}

// StartClone, run until every region is hydrated; nullptr (with a test
// failure) if it does not get there.
std::unique_ptr<Engine> HydrateAll(std::unique_ptr<Device> src, std::unique_ptr<Device> dest,
                                   const std::string& md_dir, const EngineOptions& eo = {}) {
  auto e = StartClone(std::move(src), std::move(dest), md_dir, eo);
  if (e == nullptr) return nullptr;
  const bool done = Rig::WaitFor([&] { return e->Stats().hydration_done; });
  EXPECT_TRUE(done) << "hydration did not complete";
  if (!done) return nullptr;
  return e;
}

// A dest file at `path` of `size` bytes (created), O_DIRECT or not.
Result<std::unique_ptr<Device>> OpenFileDest(const std::string& path, uint64_t size, bool direct) {
  PosixDeviceOptions po;
  po.create = true;
  po.min_size = size;
  po.direct = direct;
  return OpenPosixDevice(path, po);
}

// The same with a real file as dest: SEEK_DATA finds no data where the
// source was all zeros.
TEST(CopierPipeline, AllZeroDataLeavesHolesInAFileDest) {
  const uint64_t n = 16;
  uint64_t zeros = 0;
  std::vector<uint8_t> content = ZeroyContent(n, &zeros);
  test::TempDir dir;
  const std::string dest_path = dir.path() + "/dest.img";
  {
    auto src = std::make_shared<FakeAsyncSource>(
        FaultDevice::Wrap(NewMemDeviceFrom(content, /*read_only=*/true, "src")));
    src->SetAllData(true);
    auto dest = OpenFileDest(dest_path, content.size(), /*direct=*/false);
    ASSERT_TRUE(dest.ok()) << dest.status().ToString();
    auto e = HydrateAll(test::Share(src), std::move(*dest), dir.path() + "/md");
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->Stats().bytes_zeroed, zeros);
    ASSERT_OK(e->Shutdown());
  }
  int fd = ::open(dest_path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  test::Cleanup close_fd([fd] { ::close(fd); });
  auto data_after = [&](uint64_t off) { return ::lseek(fd, static_cast<off_t>(off), SEEK_DATA); };
  EXPECT_EQ(data_after(0), 0);
  EXPECT_EQ(data_after(3 * kRegion), static_cast<off_t>(8 * kRegion));
  EXPECT_EQ(data_after(10 * kRegion + 8192), static_cast<off_t>(10 * kRegion + 8192 + 3 * 4096));
  EXPECT_EQ(data_after(12 * kRegion + kRegion - 4096),
            static_cast<off_t>(12 * kRegion + kRegion + 4096));
  EXPECT_EQ(data_after((n - 1) * kRegion + 4096), -1);  // nothing after: ENXIO
  std::vector<uint8_t> got(content.size());
  ASSERT_EQ(::pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  EXPECT_EQ(got, content);
}

// With a page-cached dest (--buffered), what the copier wrote does not stay
// in the page cache: at most the lag while it runs, nothing after it stops.
// (Large cached folios left by the copier's unit-sized writes made later
// 4 KiB user writes several times slower; docs/performance.md.)
void ExpectCopiedDataLeavesThePageCache(bool direct_dest) {
  // A disk-backed directory: tmpfs pages are the storage and never leave.
  const std::string dir = "/var/tmp/clonefs-cache-drop-" + std::to_string(::getpid()) +
                          (direct_dest ? "-direct" : "-buffered");
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  test::Cleanup rm_dir([&] { std::filesystem::remove_all(dir); });
  struct statfs fs;
  ASSERT_EQ(::statfs(dir.c_str(), &fs), 0);
  if (fs.f_type == TMPFS_MAGIC) GTEST_SKIP() << "/var/tmp is tmpfs: no page cache to leave";
  const uint64_t kImage = 32ull << 20, kLag = 1ull << 20;
  std::vector<uint8_t> content(kImage);
  std::mt19937_64 rng(7);
  for (auto& b : content) b = static_cast<uint8_t>(rng() | 1);  // data, never all zeros
  const std::string dest_path = dir + "/dest.img";
  // Pages of dest in the page cache.
  auto resident = [&]() -> uint64_t {
    int fd = ::open(dest_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ~0ull;
    void* m = ::mmap(nullptr, kImage, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED) return ~0ull;
    std::vector<unsigned char> vec(kImage / 4096);
    uint64_t n = ~0ull;
    if (::mincore(m, kImage, vec.data()) == 0) {
      n = 0;
      for (unsigned char v : vec) n += (v & 1) ? 4096 : 0;
    }
    ::munmap(m, kImage);
    return n;
  };
  auto src = std::make_shared<FakeAsyncSource>(
      FaultDevice::Wrap(NewMemDeviceFrom(content, /*read_only=*/true, "src")));
  src->SetAllData(true);
  auto dest = OpenFileDest(dest_path, kImage, direct_dest);  // false: --buffered
  ASSERT_TRUE(dest.ok()) << dest.status().ToString();
  ASSERT_TRUE((*dest)->PageCached());
  EngineOptions eo;
  eo.copier_cache_lag_bytes = kLag;
  auto e = HydrateAll(test::Share(src), std::move(*dest), dir + "/md", eo);
  ASSERT_NE(e, nullptr);
  // Running: at most the dropper's cap (the lag while the disk keeps up,
  // up to kPendingCapFactor x the lag while it falls behind, as on a loaded
  // machine), plus what the writers had in hand (a unit each); without the
  // dropper the whole image would stay.
  EXPECT_LE(resident(), kLag * CacheDropper::kPendingCapFactor + 4 * kRegion * 16)
      << "of " << kImage;
  // Complete: nothing more will be written, so the rest leaves too, before
  // any shutdown.
  EXPECT_TRUE(Rig::WaitFor([&] { return resident() == 0; })) << resident() << " bytes stayed";
  ASSERT_OK(e->Shutdown());
  EXPECT_EQ(resident(), 0u);
  // And the data is all there.
  std::vector<uint8_t> got(kImage);
  int fd = ::open(dest_path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pread(fd, got.data(), got.size(), 0), static_cast<ssize_t>(got.size()));
  ::close(fd);
  EXPECT_EQ(got, content);
}

// The source's holes are punched into dest only where dest has data: a
// new dest is one big hole, and a punch is a journalled fallocate per hole
// unit. Where dest holds data (an old dest reused, a copy interrupted by a
// crash) the hole is still punched.
void ExpectHolesPunchedOnlyOverData(bool dest_has_data) {
  const std::string dir = "/var/tmp/clonefs-holes-" + std::to_string(::getpid()) +
                          (dest_has_data ? "-data" : "-new");
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  test::Cleanup rm_dir([&] { std::filesystem::remove_all(dir); });
  const uint64_t n = 64, kImage = n * kRegion;
  std::vector<uint8_t> content = test::RandomContent(kImage, 9, 0);
  std::fill(content.begin() + 10 * kRegion, content.begin() + 40 * kRegion, 0);
  const std::string dest_path = dir + "/dest.img";
  if (dest_has_data) {  // garbage everywhere, the source's hole included
    std::vector<uint8_t> junk = test::RandomContent(kImage, 10, 0);
    int fd = ::open(dest_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  auto opened = OpenFileDest(dest_path, kImage, /*direct=*/true);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::shared_ptr<FaultDevice> dest = FaultDevice::Wrap(std::shared_ptr<Device>(std::move(*opened)));
  std::atomic<uint64_t> hole_punches{0};
  test::OpCounter counter;
  counter.also = [&](DeviceOp op, uint64_t off, uint64_t len) {
    if (op == DeviceOp::kZero && off < 40 * kRegion && 10 * kRegion < off + len) hole_punches++;
  };
  counter.Install(dest);
  auto e = HydrateAll(NewMemDeviceFrom(content, /*read_only=*/true, "src"), test::Share(dest),
                      dir + "/md");
  ASSERT_NE(e, nullptr);
  ASSERT_OK(e->Shutdown());
  if (dest_has_data) {
    EXPECT_GT(hole_punches.load(), 0u);
  } else {
    EXPECT_EQ(hole_punches.load(), 0u) << "punched holes into a dest that had none";
  }
  std::vector<uint8_t> got(kImage);
  ASSERT_TRUE(dest->Read(0, got.data(), kImage).ok());
  EXPECT_TRUE(got == content);
  auto d = dest->NextData(10 * kRegion);  // and the hole is a hole in dest
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 40 * kRegion);
}

TEST(CopierPipeline, SourceHolesAreNotPunchedIntoANewDest) {
  ExpectHolesPunchedOnlyOverData(/*dest_has_data=*/false);
}

TEST(CopierPipeline, SourceHolesArePunchedWhereDestHasData) {
  ExpectHolesPunchedOnlyOverData(/*dest_has_data=*/true);
}

TEST(CopierPipeline, CopiedDataLeavesThePageCacheOfABufferedDest) {
  ExpectCopiedDataLeavesThePageCache(/*direct_dest=*/false);
}

// With an O_DIRECT dest (the default) the copier writes through the page
// cache too (Device::WriteCached), so that its writers never wait for the
// disk or for a commit's flush; what it wrote leaves the cache the same way.
TEST(CopierPipeline, CopiedDataLeavesThePageCacheOfADirectDest) {
  ExpectCopiedDataLeavesThePageCache(/*direct_dest=*/true);
}

// A user's read of a region the copier has just written into an O_DIRECT
// dest, still in the page cache, is served from there: an O_DIRECT read
// would first write the dirty pages back (measured: a boot trace's reads
// that found their data in dest took 0.18-0.33 ms on average instead of
// 0.10, docs/performance.md §8). The data is the source's either way.
TEST(CopierPipeline, ReadsOfJustCopiedRegionsComeFromThePageCache) {
  const std::string dir = "/var/tmp/clonefs-read-cached-" + std::to_string(::getpid());
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  test::Cleanup rm_dir([&] { std::filesystem::remove_all(dir); });
  struct statfs fs;
  ASSERT_EQ(::statfs(dir.c_str(), &fs), 0);
  const bool tmpfs = fs.f_type == TMPFS_MAGIC;  // no write-back to avoid there
  const uint64_t n = 64, kImage = n * kRegion;
  std::vector<uint8_t> content = test::RandomContent(kImage, 21, 0);
  const std::string dest_path = dir + "/dest.img";
  auto dirty_pages = [&](uint64_t off, uint64_t len) -> uint64_t {
    int fd = ::open(dest_path.c_str(), O_RDONLY | O_CLOEXEC);
    std::optional<posix_io::CacheState> c = posix_io::Cachestat(fd, off, len);
    ::close(fd);
    return c ? c->dirty : ~0ull;
  };
  auto dest = OpenFileDest(dest_path, kImage, /*direct=*/true);
  ASSERT_TRUE(dest.ok()) << dest.status().ToString();
  EngineOptions eo;
  eo.knobs.hydration_enabled = false;  // only what the reads copy
  eo.copy_on_read = true;
  eo.read_hints = false;
  eo.commit_interval_ms = 0;
  auto e = StartClone(NewMemDeviceFrom(content, /*read_only=*/true, "src"), std::move(*dest),
                      dir + "/md", eo);
  ASSERT_NE(e, nullptr);
  // The first read fetches regions 8..11 from the source; copy-on-read
  // hands them to the copier's writers, which write them through the cache.
  std::vector<uint8_t> got(4 * kRegion);
  ASSERT_OK(e->Read(8 * kRegion, got.data(), got.size()));
  ASSERT_TRUE(Rig::WaitFor([&] { return e->Stats().hydrated_regions == 4; }));
  const uint64_t dirty = dirty_pages(8 * kRegion, 4 * kRegion);
  if (dirty != ~0ull && !tmpfs) {
    ASSERT_GT(dirty, 0u) << "the copier's write did not stay in the page cache";
  }
  // The second read is served by dest, from the cache: nothing written back.
  std::fill(got.begin(), got.end(), 0);
  ASSERT_OK(e->Read(8 * kRegion, got.data(), got.size()));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), content.begin() + 8 * kRegion));
  if (dirty != ~0ull && !tmpfs) {
    EXPECT_GT(dirty_pages(8 * kRegion, 4 * kRegion), 0u) << "the read wrote the pages back first";
  }
  // A read straddling cached and never-copied regions: each run its way.
  ASSERT_OK(e->Read(10 * kRegion, got.data(), got.size()));
  EXPECT_TRUE(std::equal(got.begin(), got.end(), content.begin() + 10 * kRegion));
  ASSERT_OK(e->Shutdown());
}

// Stop (engine shutdown) with reads in flight waits for every read's done,
// then finishes: nothing is used after it is freed (ASan), nothing read
// after the stop began is lost or marked half-written.
TEST(CopierPipeline, StopWithReadsInFlight) {
  for (bool fail : {false, true}) {
    SCOPED_TRACE(fail ? "reads fail" : "reads succeed");
    AsyncRig a(256);
    a.src->SetHold(true);
    EngineOptions o;
    o.copier_inflight_bytes = 2 << 20;
    ASSERT_OK(a.Open(o));
    ASSERT_TRUE(Rig::WaitFor([&] { return a.src->inflight_bytes() >= (2u << 20); }));
    std::atomic<bool> done{false};
    std::thread stopper([&] {
      EXPECT_OK(a.e()->Shutdown());
      done = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(done.load());  // waiting for the reads it started
    a.src->SetFailing(fail);
    a.src->SetHold(false);
    stopper.join();
    EXPECT_EQ(a.src->inflight_bytes(), 0u);
    EXPECT_EQ(a.src->pending(), 0u);
    // Every region the copier marked holds the source's bytes in dest.
    const uint64_t hydrated = a.e()->Stats().hydrated_regions;
    if (fail) {
      EXPECT_EQ(hydrated, 0u);
    }
    a.rig.engine.reset();
    auto md = metadata::Metadata::Open(a.rig.MdOptions());
    ASSERT_TRUE(md.ok()) << md.status().ToString();
    std::vector<uint8_t> got(kRegion);
    for (uint64_t r = 0; r < 256; ++r) {
      if (!(*md)->IsRegionHydrated(r)) continue;
      ASSERT_OK(a.rig.dest->Read(r * kRegion, got.data(), kRegion));
      ASSERT_TRUE(std::equal(got.begin(), got.end(), a.rig.source_content.begin() + r * kRegion))
          << "region " << r;
    }
  }
}

// Reads that were in flight when the source changed finish, land in dest,
// and are not marked: the source is re-checked after a unit's last piece is
// written and before the mark.
TEST(CopierPipeline, ReadsFinishedAfterTheSourceChangedAreNotMarked) {
  AsyncRig a(64);
  a.src->SetHold(true);
  EngineOptions o;
  o.copier_inflight_bytes = 2 << 20;
  ASSERT_OK(a.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] { return a.src->inflight_bytes() >= (2u << 20); }));
  a.rig.source->SimulateChange(Status::Mismatch("src was modified during the copy"));
  a.src->SetHold(false);
  ASSERT_TRUE(Rig::WaitFor([&] { return a.src->inflight_bytes() == 0; }));
  ASSERT_TRUE(Rig::WaitFor([&] { return a.e()->Stats().hydrating_regions == 0; }));
  EngineStats s = a.e()->Stats();
  EXPECT_EQ(s.hydrated_regions, 0u);
  EXPECT_FALSE(s.source_change.empty());
  EXPECT_GE(s.copy_failures, 1u);
}

}  // namespace
}  // namespace clonefs
