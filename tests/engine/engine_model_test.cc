// Reference-model test (TESTING §1): several threads issue a seeded random
// mix of reads, writes of every size and alignment, punch/zero, fsync,
// O_SYNC writes and knob changes while the background copier runs. Every
// read must match a plain in-memory model; at the end, once hydration
// completes, dest must equal the model byte for byte and the source must be
// unchanged. Threads reserve the byte range of each request so that the
// expected content of every read is well defined.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>

#include "engine_test_util.h"
#include "support/range_reservations.h"

namespace clonefs {
namespace {

using test::Rig;

constexpr uint64_t kRegion = 16 << 10;
constexpr uint64_t kImage = 3072 * kRegion + 5000;  // 48 MiB  // partial last region of 5000 bytes

// The model: the image's expected bytes, plus the ranges reserved by
// requests in flight.
class Model {
 public:
  explicit Model(std::vector<uint8_t> content) : bytes_(std::move(content)) {}

  // Reserves [off, off+len) if it overlaps no reservation.
  bool TryReserve(uint64_t off, uint64_t len) { return reserved_.TryReserve(off, len); }
  void Release(uint64_t off) { reserved_.Release(off); }
  // Only the holder of a reservation touches its bytes.
  void Write(uint64_t off, const uint8_t* d, uint64_t len) {
    std::memcpy(bytes_.data() + off, d, len);
  }
  void Zero(uint64_t off, uint64_t len) { std::memset(bytes_.data() + off, 0, len); }
  const uint8_t* at(uint64_t off) const { return bytes_.data() + off; }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  test::RangeReservations reserved_;
  std::vector<uint8_t> bytes_;
};

// A request range of a random shape (TESTING §1: every size and alignment).
std::pair<uint64_t, uint64_t> RandomRange(std::mt19937_64& rng) {
  auto u = [&](uint64_t n) { return n ? rng() % n : 0; };
  const uint64_t nr = (kImage + kRegion - 1) / kRegion;
  uint64_t off, len;
  switch (u(20) % 7 == 6 && u(3) ? u(6) : u(7)) {  // large requests are rarer
    case 0:  // tiny, unaligned
      len = 1 + u(512);
      off = u(kImage - len + 1);
      break;
    case 1: {  // inside one region
      uint64_t r = u(nr - 1);
      uint64_t a = u(kRegion), b = u(kRegion);
      if (a > b) std::swap(a, b);
      off = r * kRegion + a;
      len = b - a + 1;
      if (off + len > kImage) len = kImage - off;
      break;
    }
    case 2: {  // whole regions, aligned
      uint64_t n = 1 + u(3);
      uint64_t r = u(nr - 1 - n + 1);
      off = r * kRegion;
      len = n * kRegion;
      break;
    }
    case 3:  // spanning several regions, unaligned
      len = kRegion / 2 + u(3 * kRegion);
      off = u(kImage - len + 1);
      break;
    case 4: {  // the last partial region, or a tail reaching the end
      uint64_t last = (nr - 1) * kRegion;
      off = u(2) ? last : last - u(2 * kRegion);
      off += u(2) ? 0 : u(kImage - off);
      len = kImage - off;
      if (len == 0) {
        off = kImage - 1;
        len = 1;
      }
      break;
    }
    case 5:  // sector aligned
      len = 512 * (1 + u(64));
      off = 512 * u((kImage - len) / 512 + 1);
      break;
    default:  // large (up to 1 MiB, the FUSE maximum)
      len = 1 + u(1 << 20);
      off = u(kImage - len + 1);
      break;
  }
  return {off, len};
}

struct Counts {
  std::atomic<uint64_t> reads{0}, writes{0}, zeros{0}, fsyncs{0}, knobs{0};
};

void Worker(Engine* e, Model* m, uint64_t seed, int ops, Counts* c) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> buf, got;
  for (int i = 0; i < ops && !::testing::Test::HasFailure(); ++i) {
    int kind = static_cast<int>(rng() % 100);
    if (kind < 4) {  // fsync
      Status s = e->Fsync();
      ASSERT_TRUE(s.ok()) << "fsync: " << s.ToString();
      c->fsyncs++;
      continue;
    }
    if (kind < 7) {  // knob change
      switch (rng() % 4) {
        case 0: e->SetHydrationThreshold(static_cast<uint32_t>(rng() % 40)); break;
        case 1: e->SetHydrationBatchSize(static_cast<uint32_t>(1 + rng() % 24)); break;
        // Slow enough that hydration is still under way when users stop.
        case 2: e->SetRate((1 + rng() % 16) << 16); break;
        default: e->EnableHydration(rng() % 4 != 0); break;
      }
      c->knobs++;
      continue;
    }
    auto [off, len] = RandomRange(rng);
    while (!m->TryReserve(off, len)) std::tie(off, len) = RandomRange(rng);
    if (kind < 55) {
      got.resize(len);
      Status s = e->Read(off, got.data(), len);
      ASSERT_TRUE(s.ok()) << s.ToString();
      ASSERT_EQ(0, std::memcmp(got.data(), m->at(off), len))
          << "read [" << off << ", +" << len << ") differs from the model";
      c->reads++;
    } else if (kind < 88) {
      buf.resize(len);
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      bool sync = kind < 60;
      Status s = e->Write(off, buf.data(), len, sync);
      ASSERT_TRUE(s.ok()) << s.ToString();
      m->Write(off, buf.data(), len);
      c->writes++;
    } else {
      Status s = e->Zero(off, len, /*punch=*/kind < 95);
      ASSERT_TRUE(s.ok()) << s.ToString();
      m->Zero(off, len);
      c->zeros++;
    }
    m->Release(off);
  }
}

class ModelTest : public ::testing::TestWithParam<bool> {};

TEST_P(ModelTest, ConcurrentRandomOpsMatchTheModel) {
  const bool passdown = GetParam();
  const uint64_t seed = test::TestSeed();
  SCOPED_TRACE("seed=" + std::to_string(seed) + " (rerun with CLONEFS_TEST_SEED=" +
               std::to_string(seed) + ")");
  std::vector<uint8_t> source = test::RandomContent(kImage, seed, 0.1);
  // Lengthen some source reads so copies stay in flight while users write.
  std::atomic<uint64_t> n{0};
  test::OpCounter src_hook;
  src_hook.also = [&](DeviceOp op, uint64_t, uint64_t) {
    if (op == DeviceOp::kRead && n++ % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  };
  Rig rig(kImage, kRegion, source, /*dest_extra=*/4096);
  src_hook.Install(rig.source);
  EngineOptions o;
  o.discard_passdown = passdown;
  o.knobs.hydration_threshold = 8;
  o.knobs.hydration_batch_size = 4;
  o.commit_interval_ms = 20;
  o.knobs.rate_bytes_per_s = 256 << 10;
  o.min_background_pace_bytes_per_s = 1 << 20;
  o.copier_threads = 3;
  // Copy-on-read (SPEC §10) in one of the two instances: reads racing with
  // writes, zeros and copies of the same regions, checked the same way.
  o.copy_on_read = passdown;
  ASSERT_OK(rig.Open(o));

  Model model(source);
  Counts counts;
  const int kThreads = 4;
  const int ops = test::Scaled(1500, 150);
  for (int phase = 0; phase < 2; ++phase) {
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back(Worker, rig.engine.get(), &model, seed * 31 + phase * 7 + t, ops, &counts);
    }
    for (auto& t : ts) t.join();
    ASSERT_FALSE(HasFailure());
    EngineStats st = rig.engine->Stats();
    std::printf("phase %d: %llu of %llu regions hydrated, %llu bytes copied, %llu zeroed\n",
                phase, static_cast<unsigned long long>(st.hydrated_regions),
                static_cast<unsigned long long>(st.nr_regions),
                static_cast<unsigned long long>(st.bytes_copied),
                static_cast<unsigned long long>(st.bytes_zeroed));
    if (phase == 0) {  // a clean restart in the middle: everything persists
      ASSERT_OK(rig.engine->Shutdown());
      rig.engine.reset();
      ASSERT_OK(rig.Open(o));
      EXPECT_EQ(rig.ReadAll(), model.bytes());
    }
  }
  EXPECT_GT(counts.reads.load(), 0u);
  EXPECT_GT(counts.writes.load(), 0u);
  EXPECT_GT(counts.zeros.load(), 0u);

  // Let hydration finish, then dest alone must be the model.
  Engine* e = rig.engine.get();
  e->SetRate(0);
  e->SetHydrationBatchSize(16);
  e->SetHydrationThreshold(64);
  e->EnableHydration(true);
  ASSERT_TRUE(Rig::WaitFor([&] { return e->Stats().hydration_done; }, 60000))
      << e->Stats().hydrated_regions << " of " << e->Stats().nr_regions;
  EngineStats st = e->Stats();
  EXPECT_EQ(st.mode, EngineMode::kReadWrite);
  EXPECT_EQ(st.copy_failures, 0u);
  EXPECT_EQ(st.hydrated_bytes, kImage);
  EXPECT_EQ(rig.ReadAll(), model.bytes());
  // One memcmp of the whole image, and only on a difference a search for the
  // first differing byte: an ASSERT_EQ per byte of the 48 MiB image was 40%
  // of the test's CPU time under TSan (the drivers are built at -O0 there).
  std::vector<uint8_t> dest = rig.DestBytes(0, kImage);
  if (std::memcmp(dest.data(), model.bytes().data(), kImage) != 0) {
    auto diff = std::mismatch(dest.begin(), dest.end(), model.bytes().begin());
    FAIL() << "dest differs from the model at byte " << (diff.first - dest.begin()) << ": "
           << int{*diff.first} << " instead of " << int{*diff.second};
  }
  std::vector<uint8_t> src(kImage);
  ASSERT_OK(rig.source->Read(0, src.data(), kImage));
  EXPECT_TRUE(src == source) << "the source was modified";
  rig.engine.reset();
}

INSTANTIATE_TEST_SUITE_P(Passdown, ModelTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "punch" : "no_passdown"; });

}  // namespace
}  // namespace clonefs
