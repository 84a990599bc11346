// `clonefs mount --fuse-transport` where the kernel's FUSE over io_uring is
// off (docs/cli.md, "FUSE transports"): `uring` refuses to mount, says what
// to do and stores nothing; `auto` mounts over /dev/fuse and status says
// why. The test turns the kernel's enable_uring off for its run, so it runs
// alone (RUN_SERIAL: the rest of the mount tier may run over io_uring), and
// puts it back.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "control/status_report.h"
#include "fuse/uring_queues.h"
#include "mount/harness.h"

namespace clonefs::testing {
namespace {

std::string ReadParameter() {
  std::ifstream in(fuse::kEnableUringParameter);
  std::string v;
  std::getline(in, v);
  return v;
}

class UringRefusalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    if (access(fuse::kEnableUringParameter, F_OK) != 0) {
      if (InCi()) FAIL() << "this kernel has no FUSE over io_uring";
      GTEST_SKIP() << "this kernel has no FUSE over io_uring (Linux 6.14+)";
    }
    before_ = ReadParameter();
    std::ofstream(fuse::kEnableUringParameter) << "0";
    ASSERT_EQ(ReadParameter(), "N");
  }
  void TearDown() override {
    if (before_ == "Y") std::ofstream(fuse::kEnableUringParameter) << "1";
  }
  std::string before_;
  CloneDir c_;
};

TEST_F(UringRefusalTest, UringIsRefusedWithTheFixAndAutoFallsBackSayingWhy) {
  WriteRandomFile(c_.src, 4 << 20, 3);
  const std::string src_sha = Sha256(c_.src);
  auto expect_refused = [&](const RunResult& m) {
    EXPECT_EQ(m.code, 1) << m.out;
    EXPECT_NE(m.out.find("--fuse-transport uring: FUSE over io_uring is off in the kernel (as "
                         "root: echo 1 > /sys/module/fuse/parameters/enable_uring)"),
              std::string::npos)
        << m.out;
    EXPECT_NE(m.out.find("--fuse-transport auto"), std::string::npos) << m.out;
    EXPECT_FALSE(c_.IsMounted());
  };

  // A new clone: the refused mount leaves neither dest nor metadata behind.
  expect_refused(c_.Mount("--fuse-transport uring"));
  EXPECT_FALSE(std::filesystem::exists(c_.dst));
  EXPECT_FALSE(std::filesystem::exists(c_.metadata));

  // auto mounts over /dev/fuse and says why.
  RunResult m = c_.Mount("--fuse-transport auto --no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  RunResult st = Sh(ClonefsBinary() + " status " + Quote(c_.mnt) + " --json");
  auto rep = control::ReportFromJsonText(st.out);
  ASSERT_TRUE(rep.ok()) << st.out;
  EXPECT_EQ(rep->fuse.transport.rfind("/dev/fuse (FUSE over io_uring is off in the kernel", 0), 0u)
      << rep->fuse.transport;
  ASSERT_EQ(c_.Unmount().code, 0);

  // An existing clone: the refused option is not stored with it.
  expect_refused(c_.Mount("--fuse-transport uring"));
  RunResult info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  EXPECT_NE(info.out.find("--fuse-transport auto"), std::string::npos) << info.out;
  EXPECT_EQ(info.out.find("--fuse-transport uring"), std::string::npos)
      << "a refused option is not stored:\n"
      << info.out;
  EXPECT_EQ(Sha256(c_.src), src_sha);
}

}  // namespace
}  // namespace clonefs::testing
