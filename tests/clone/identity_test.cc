// clone::Fingerprint and WideFingerprint read their samples at once, so a
// remote source costs one round trip per mount, not one per sample; the
// hashes are the same as reading the samples one by one. DestIdentity
// records the inode generation where the file system has one, so a dest
// removed and created again under the same inode number is told apart even
// without a birth time.
#include "clone/identity.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
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

// The generation the kernel reports for `path`, or nullopt (as the probe).
std::optional<uint32_t> KernelGeneration(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  unsigned int gen = 0;
  const int rc = ioctl(fd, FS_IOC_GETVERSION, &gen);
  close(fd);
  if (rc != 0) return std::nullopt;
  return gen;
}

// Where the file system has generations (the build tree's, usually ext4 or
// XFS) the dest's is recorded and compared; where it has none (tmpfs: /dev/shm)
// nothing is recorded and the identity is still complete.
TEST(DestIdentity, RecordsTheGenerationWhereTheFileSystemHasOne) {
  for (const std::string& dir :
       {std::filesystem::current_path().string(), std::string("/dev/shm")}) {
    SCOPED_TRACE(dir);
    if (access(dir.c_str(), W_OK) != 0) continue;
    const std::string path = dir + "/identity_test_dest." + std::to_string(getpid());
    std::ofstream(path).put('x');
    Result<metadata::FileIdentity> id = DestIdentity(path);
    const std::optional<uint32_t> kernel = KernelGeneration(path);
    std::filesystem::remove(path);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    if (!kernel) {
      EXPECT_EQ(id->flags & metadata::FileIdentity::kGeneration, 0u);
      EXPECT_EQ(id->generation, 0u);
      continue;
    }
    EXPECT_NE(id->flags & metadata::FileIdentity::kGeneration, 0u);
    EXPECT_EQ(id->generation, *kernel);
    EXPECT_TRUE(metadata::IdentityDifferences("dest", *id, *id).empty());
  }
}

// The comparison the mount makes: a recorded generation that differs is a
// recreated dest (even with no birth time); one recorded by earlier
// versions' metadata (none) or a file system without generations is not
// compared, so such a clone keeps mounting.
TEST(DestIdentity, GenerationDecidesOnlyWhenBothSidesHaveOne) {
  metadata::FileIdentity recorded;
  recorded.inode = 12;
  recorded.path = "/mnt/ext4/d.img";
  recorded.flags = metadata::FileIdentity::kGeneration;
  recorded.generation = 0x5eed;
  metadata::FileIdentity recreated = recorded;
  recreated.generation = 0xbeef;
  std::vector<std::string> d = metadata::IdentityDifferences("dest", recorded, recreated);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].find("dest inode generation"), std::string::npos) << d[0];
  EXPECT_NE(d[0].find("removed and created again"), std::string::npos) << d[0];

  metadata::FileIdentity old_metadata = recorded;  // written before format 3
  old_metadata.flags = 0;
  old_metadata.generation = 0;
  EXPECT_TRUE(metadata::IdentityDifferences("dest", old_metadata, recreated).empty());
  metadata::FileIdentity no_generations = recreated;  // e.g. the dest now on tmpfs
  no_generations.flags = 0;
  EXPECT_TRUE(metadata::IdentityDifferences("dest", recorded, no_generations).empty());
}

}  // namespace
}  // namespace clonefs::clone
