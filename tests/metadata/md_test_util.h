// Helpers shared by the metadata tests: temp directories, options, seeds,
// sanitizer-aware scaling and whole-bitmap snapshots.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "metadata/metadata.h"
#include "support/test_seed.h"

namespace clonefs::metadata::testing {

// True in ASan/TSan builds, where iteration counts are scaled down.
inline bool UnderSanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#else
  return false;
#endif
}

// n in normal builds, max(1, n / div) under sanitizers.
inline int Scaled(int n, int div = 5) { return UnderSanitizer() ? std::max(1, n / div) : n; }

using ::clonefs::test::TestSeed;  // support/test_seed.h

// A fresh directory under $TMPDIR (or /tmp), removed at destruction. With
// kMemory, under /dev/shm when it exists: for tests that commit thousands of
// times and check logic rather than the disk (fsync there costs nothing).
class TempDir {
 public:
  enum Where { kDisk, kMemory };
  explicit TempDir(Where where = kDisk) {
    const char* base = getenv("TMPDIR");
    std::string root = base ? base : "/tmp";
    if (where == kMemory && std::filesystem::is_directory("/dev/shm")) root = "/dev/shm";
    std::string tmpl = root + "/clonefs-md-XXXXXX";
    if (!mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline MetadataOptions Options(const std::string& dir, uint64_t nr_regions,
                               uint64_t region_size = 4096) {
  MetadataOptions o;
  o.dir = dir;
  o.region_size = region_size;
  o.image_size = nr_regions * region_size;
  o.source = FileIdentity{o.image_size, 11, 1000, 0xabcdef, "/src.img", 0, 0, 0, ""};
  o.dest = FileIdentity{o.image_size, 22, 0, 0, "/dest.img", 0, 0, 0, ""};
  o.block_cache_bytes = 1 << 20;
  o.write_buffer_bytes = 256 << 10;
  return o;
}

inline std::unique_ptr<Metadata> MustOpen(const MetadataOptions& o) {
  auto r = Metadata::Open(o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? std::move(r).value() : nullptr;
}

// The in-core hydrated bitmap as a vector<bool>, read through the public API.
inline std::vector<bool> Snapshot(const Metadata& md) {
  std::vector<bool> v(md.nr_regions(), false);
  for (uint64_t r = md.FindNextHydratedRegion(0); r < md.nr_regions();
       r = md.FindNextHydratedRegion(r + 1)) {
    v[r] = true;
  }
  return v;
}

inline uint64_t CountTrue(const std::vector<bool>& v) {
  uint64_t n = 0;
  for (bool b : v) n += b;
  return n;
}

// Index of the first difference, or -1.
inline int64_t FirstDiff(const std::vector<bool>& a, const std::vector<bool>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  }
  return -1;
}

// A whole file's bytes ("" if it cannot be read).
inline std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Replaces a file's content with `bytes`.
inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Copies the regular files of directory `from` into `to` (created).
inline void CopyDir(const std::string& from, const std::string& to) {
  std::filesystem::create_directories(to);
  for (const auto& e : std::filesystem::directory_iterator(from)) {
    if (e.is_regular_file()) {
      std::filesystem::copy_file(e.path(), to + "/" + e.path().filename().string());
    }
  }
}

}  // namespace clonefs::metadata::testing
