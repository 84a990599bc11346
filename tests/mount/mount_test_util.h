// Helpers shared by the mount-tier tests: skipping where FUSE cannot be used
// (but failing instead under CI=true), temporary directories, small file I/O.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace clonefs::testing {

// Empty if this process can mount FUSE filesystems and use loop devices;
// otherwise the reason.
inline std::string WhyNotMountable() {
  if (geteuid() != 0) return "mount tests need root";
  if (access("/dev/fuse", R_OK | W_OK) != 0) return "mount tests need /dev/fuse";
  return "";
}

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// Use at the top of a test or SetUp(): skips, or fails under CI=true.
#define CLONEFS_REQUIRE_MOUNTABLE()                                          \
  do {                                                                       \
    std::string _why = ::clonefs::testing::WhyNotMountable();                \
    if (!_why.empty()) {                                                     \
      if (::clonefs::testing::InCi()) FAIL() << _why << " (CI=true: a skip is a failure)"; \
      GTEST_SKIP() << _why;                                                  \
    }                                                                        \
  } while (0)

// A directory under /var/tmp (not tmpfs: O_DIRECT and fallocate behave as on
// a real disk), removed with its content on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/var/tmp/clonefs-test-XXXXXX";
    char* p = mkdtemp(tmpl);
    path_ = p ? p : "";
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// One step of a reference-model test on `fd`: with `write`, fills p[0, len)
// from `rng`, writes it at `off` and copies it into `model`; otherwise reads
// [off, off+len) into p and checks it against `model`. Fatal failures; call
// it under ASSERT_NO_FATAL_FAILURE.
inline void ModelIo(int fd, bool write, uint8_t* p, uint64_t len, uint64_t off,
                    std::mt19937_64& rng, std::vector<uint8_t>* model) {
  if (write) {
    for (uint64_t k = 0; k < len; ++k) p[k] = static_cast<uint8_t>(rng());
    ASSERT_EQ(pwrite(fd, p, len, static_cast<off_t>(off)), static_cast<ssize_t>(len))
        << strerror(errno);
    std::copy(p, p + len, model->begin() + static_cast<ptrdiff_t>(off));
  } else {
    ASSERT_EQ(pread(fd, p, len, static_cast<off_t>(off)), static_cast<ssize_t>(len))
        << strerror(errno);
    ASSERT_TRUE(std::equal(p, p + len, model->begin() + static_cast<ptrdiff_t>(off)))
        << "read " << len << " at " << off;
  }
}

}  // namespace clonefs::testing
