// Helpers shared by the device tests: temporary directories, seeds, random
// content, and iteration scaling under sanitizers.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "devices/device.h"
#include "support/test_seed.h"

namespace clonefs::testing {

// Iteration counts are divided by this under sanitizers (slower by ~5-20x).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr int kSlowdown = 8;
#else
inline constexpr int kSlowdown = 1;
#endif

// The seed for a randomized test: $CLONEFS_TEST_SEED, or a fresh one. Print
// it with SCOPED_TRACE(SeedTrace(seed)) so a failure can be replayed.
using ::clonefs::test::TestSeed;  // support/test_seed.h
inline std::string SeedTrace(uint64_t seed) {
  return "seed=" + std::to_string(seed) +
         " (replay with CLONEFS_TEST_SEED=" + std::to_string(seed) + ")";
}

inline std::vector<uint8_t> RandomBytes(std::mt19937_64& rng, size_t n) {
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng() | 1);  // never 0: zeros must mean "zeroed"
  return v;
}

// A fresh directory under $TMPDIR (or /tmp), removed with its content.
class TempDir {
 public:
  explicit TempDir(const std::string& base = "") {
    std::string root = base;
    if (root.empty()) {
      const char* t = std::getenv("TMPDIR");
      root = t && *t ? t : "/tmp";
    }
    std::string tmpl = root + "/clonefs-devtest-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Creates (or truncates) `path` as a sparse file of `size` bytes.
inline bool MakeSparseFile(const std::string& path, uint64_t size) {
  int fd = ::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::ftruncate(fd, static_cast<off_t>(size)) == 0;
  ::close(fd);
  return ok;
}

inline bool WriteFile(const std::string& path, const std::vector<uint8_t>& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(content.data()),
          static_cast<std::streamsize>(content.size()));
  return static_cast<bool>(f);
}

inline std::vector<uint8_t> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// 64-bit FNV-1a of a file's content: enough to notice any change.
inline uint64_t FileHash(const std::string& path) {
  uint64_t h = 1469598103934665603ull;
  for (uint8_t b : ReadFile(path)) h = (h ^ b) * 1099511628211ull;
  return h;
}

inline std::vector<uint8_t> ReadAll(Device& dev, Status* status) {
  std::vector<uint8_t> v(dev.Size());
  *status = dev.Read(0, v.data(), v.size());
  return v;
}

}  // namespace clonefs::testing
