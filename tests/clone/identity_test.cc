// clone::Fingerprint and WideFingerprint read their samples at once, so a
// remote source costs one round trip per mount, not one per sample; the
// hashes are those of the documented definition (docs/metadata-format.md).
#include "clone/identity.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "devices/mem_device.h"

namespace clonefs::clone {
namespace {

// A source whose reads complete on another thread after a delay, counting
// how many were outstanding at once.
class SlowAsyncSource : public Device {
 public:
  explicit SlowAsyncSource(std::unique_ptr<Device> inner) : inner_(std::move(inner)) {}
  ~SlowAsyncSource() override {
    for (auto& t : threads_) t.join();
  }
  uint64_t Size() const override { return inner_->Size(); }
  bool ReadOnly() const override { return true; }
  const std::string& Name() const override { return inner_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override { return inner_->Read(off, buf, len); }
  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    const int now = ++outstanding_;
    int seen = max_outstanding_.load();
    while (now > seen && !max_outstanding_.compare_exchange_weak(seen, now)) {
    }
    std::lock_guard<std::mutex> l(mu_);
    threads_.emplace_back([this, off, buf, len, done = std::move(done)] {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      Status s = inner_->Read(off, buf, len);
      --outstanding_;
      done(s);
    });
  }
  bool AsyncReads() const override { return true; }
  Status Write(uint64_t, const void*, size_t) override { return Status::Permission("ro"); }
  Status Flush() override { return Status::OK(); }
  Status Zero(uint64_t, uint64_t, ZeroMode) override { return Status::Permission("ro"); }
  Result<uint64_t> NextData(uint64_t off) override { return off; }
  Result<uint64_t> NextHole(uint64_t) override { return Size(); }

  int max_outstanding() const { return max_outstanding_.load(); }

 private:
  std::unique_ptr<Device> inner_;
  std::atomic<int> outstanding_{0};
  std::atomic<int> max_outstanding_{0};
  std::mutex mu_;
  std::vector<std::thread> threads_;  // GUARDED_BY(mu_)
};

std::vector<uint8_t> Pattern(size_t n) {
  std::vector<uint8_t> v(n);
  uint64_t x = 88172645463325252ull;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  return v;
}

TEST(Fingerprints, SamplesAreReadAtOnceAndHashTheSameAsOneByOne) {
  const std::vector<uint8_t> content = Pattern(8 << 20);
  auto plain = NewMemDeviceFrom(content, true);
  SlowAsyncSource slow(NewMemDeviceFrom(content, true));
  Result<uint64_t> fp1 = Fingerprint(*plain), fp2 = WideFingerprint(*plain);
  ASSERT_TRUE(fp1.ok() && fp2.ok());
  Result<uint64_t> a = Fingerprint(slow);
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, *fp1);
  EXPECT_EQ(slow.max_outstanding(), 3) << "fp1's three samples are read at once";
  Result<uint64_t> b = WideFingerprint(slow);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(*b, *fp2);
  EXPECT_EQ(slow.max_outstanding(), kWideSamples) << "fp2's samples are read at once";
  // Any change in a sampled block changes the hash.
  std::vector<uint8_t> changed = content;
  changed[4096 * 3 + 7] ^= 1;  // inside fp1's first sample
  EXPECT_NE(*Fingerprint(*NewMemDeviceFrom(changed, true)), *fp1);
}

TEST(Fingerprints, SamplesAreClippedToATinyImage) {
  auto tiny = NewMemDevice(4096, true);
  Result<uint64_t> ok = Fingerprint(*tiny);  // samples clipped to the image
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
}

}  // namespace
}  // namespace clonefs::clone
