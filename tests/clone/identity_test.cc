// clone::Fingerprint and WideFingerprint read their samples at once, so a
// remote source costs one round trip per mount, not one per sample; the
// hashes are the same as reading the samples one by one.
#include "clone/identity.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "devices/mem_device.h"

namespace clonefs::clone {
namespace {

// A source that holds every ReadAsync until the test releases them (after
// that, reads complete at once), so the test can see how many a caller had
// outstanding together, without depending on timing.
class GatedSource : public Device {
 public:
  explicit GatedSource(std::unique_ptr<Device> inner) : inner_(std::move(inner)) {}
  uint64_t Size() const override { return inner_->Size(); }
  bool ReadOnly() const override { return true; }
  const std::string& Name() const override { return inner_->Name(); }
  Status Read(uint64_t off, void* buf, size_t len) override { return inner_->Read(off, buf, len); }
  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!released_) {
        pending_.push_back(Pending{off, buf, len, std::move(done)});
        cv_.notify_all();
        return;
      }
    }
    done(inner_->Read(off, buf, len));
  }
  bool AsyncReads() const override { return true; }
  Status Write(uint64_t, const void*, size_t) override { return Status::Permission("ro"); }
  Status Flush() override { return Status::OK(); }
  Status Zero(uint64_t, uint64_t, ZeroMode) override { return Status::Permission("ro"); }
  Result<uint64_t> NextData(uint64_t off) override { return off; }
  Result<uint64_t> NextHole(uint64_t) override { return Size(); }

  // Waits (up to 10 s) until `n` reads are held; returns how many are.
  size_t WaitHeld(size_t n) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, std::chrono::seconds(10), [&] { return pending_.size() >= n; });
    return pending_.size();
  }
  // Completes the held reads; later ones complete at once. Then re-arms.
  void ReleaseAll() {
    std::vector<Pending> p;
    {
      std::lock_guard<std::mutex> l(mu_);
      released_ = true;
      p.swap(pending_);
    }
    for (Pending& r : p) r.done(inner_->Read(r.off, r.buf, r.len));
  }
  void Rearm() {
    std::lock_guard<std::mutex> l(mu_);
    released_ = false;
  }

 private:
  struct Pending {
    uint64_t off;
    void* buf;
    size_t len;
    ReadDone done;
  };
  std::unique_ptr<Device> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending> pending_;  // GUARDED_BY(mu_)
  bool released_ = false;         // GUARDED_BY(mu_)
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
  GatedSource gated(NewMemDeviceFrom(content, true));
  Result<uint64_t> fp1 = Fingerprint(*plain), fp2 = WideFingerprint(*plain);
  ASSERT_TRUE(fp1.ok() && fp2.ok());

  Result<uint64_t> a = Status::IoError("not run");
  std::thread t1([&] { a = Fingerprint(gated); });
  EXPECT_EQ(gated.WaitHeld(3), 3u) << "fp1's three samples are read at once";
  gated.ReleaseAll();
  t1.join();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(*a, *fp1);

  gated.Rearm();
  Result<uint64_t> b = Status::IoError("not run");
  std::thread t2([&] { b = WideFingerprint(gated); });
  EXPECT_EQ(gated.WaitHeld(kWideSamples), static_cast<size_t>(kWideSamples))
      << "fp2's samples are read at once";
  gated.ReleaseAll();
  t2.join();
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(*b, *fp2);

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
