// FUSE over io_uring through the kernel (uring_queues.h): a FuseServer
// mounted in-process over the test-only PassthroughEngine, serving a
// reference model and concurrent direct I/O through io_uring; a
// registration failing part-way, which must leave a working /dev/fuse mount
// (never a hung one); and --fuse-transport dev. The rest of the mount tier
// runs on both transports (tests/run.sh).
//
// Needs a kernel with FUSE over io_uring (Linux 6.14+): the test turns its
// enable_uring parameter on for its run and puts it back.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <thread>
#include <vector>

#include "fuse/fuse_server.h"
#include "fuse/uring_queues.h"
#include "mount/in_process_server.h"
#include "mount/mount_test_util.h"
#include "mount/passthrough_engine.h"

namespace clonefs::fuse {
namespace {

using clonefs::testing::PassthroughEngine;
using clonefs::testing::TempDir;

constexpr uint64_t kImageSize = (16ull << 20) + 4096 * 3 + 11;

std::string ReadParameter() {
  std::ifstream in(kEnableUringParameter);
  std::string v;
  std::getline(in, v);
  return v;
}

// Turns the kernel's enable_uring on for the test and restores it after.
class EnableUring {
 public:
  EnableUring() : before_(ReadParameter()) {
    if (before_ != "Y") std::ofstream(kEnableUringParameter) << "1";
  }
  ~EnableUring() {
    if (before_ == "N") std::ofstream(kEnableUringParameter) << "0";
  }
  bool on() const { return ReadParameter() == "Y"; }

 private:
  const std::string before_;
};

class UringTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    if (access(kEnableUringParameter, F_OK) != 0) {
      // Said, never silent; under CI=true the kernel is known to have it.
      if (clonefs::testing::InCi()) FAIL() << "this kernel has no FUSE over io_uring";
      GTEST_SKIP() << "this kernel has no FUSE over io_uring (Linux 6.14+)";
    }
    ASSERT_TRUE(enable_.on()) << "cannot turn on " << kEnableUringParameter;
    mnt_ = dir_ / "mnt";
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    file_ = mnt_ + "/image.raw";
  }
  void Mount(FuseTransportMode mode, int fail_queue = -1) {
    engine_ = std::make_unique<PassthroughEngine>(kImageSize);
    FuseServerOptions o;
    o.mountpoint = mnt_;
    o.fsname = "clonefs-test";
    o.fs.file_name = "image.raw";
    o.transport = mode;
    o.uring_fail_queue = fail_queue;
    auto s = FuseServer::Mount(engine_.get(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    serve_thread_ = std::thread([this] { serve_status_ = server_->Serve(); });
  }
  void TearDown() override {
    if (!server_) return;
    const Status u = clonefs::testing::UnmountWhenIdle(server_.get());
    EXPECT_TRUE(u.ok()) << u.ToString();
    serve_thread_.join();
    EXPECT_TRUE(serve_status_.ok()) << serve_status_.ToString();
    EXPECT_EQ(engine_->shutdowns.load(), 1);
  }
  // Runs `command` in a child with a deadline: a request the kernel holds
  // forever shows as a timeout here instead of a hung test.
  static int Bounded(const std::string& command) {
    return system(("timeout -s KILL 30 " + command).c_str());
  }

  EnableUring enable_;
  TempDir dir_;
  std::string mnt_, file_;
  std::unique_ptr<PassthroughEngine> engine_;
  std::unique_ptr<FuseServer> server_;
  std::thread serve_thread_;
  Status serve_status_;
};

TEST_F(UringTransportTest, ServesAReferenceModelAndConcurrentDirectIoThroughIoUring) {
  Mount(FuseTransportMode::kUring);
  // The first access waits for INIT and every queue's registration.
  ASSERT_EQ(Bounded("cat " + file_ + " > /dev/null"), 0);
  EXPECT_EQ(server_->Stats().transport.rfind("io_uring (", 0), 0u) << server_->Stats().transport;

  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> model(kImageSize, 0);
  int fd = open(file_.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  int ops = 0;
  for (int i = 0; i < 300; ++i, ++ops) {
    // Up to 3 MiB: several 1 MiB requests, each filling an entry's payload.
    uint64_t len = 1 + rng() % (rng() % 4 == 0 ? (3u << 20) : 70000);
    const uint64_t off = rng() % kImageSize;
    len = std::min(len, kImageSize - off);
    std::vector<uint8_t> buf(len);
    if (rng() % 2) {
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      ASSERT_EQ(pwrite(fd, buf.data(), len, off), static_cast<ssize_t>(len)) << strerror(errno);
      std::copy(buf.begin(), buf.end(), model.begin() + off);
    } else {
      ASSERT_EQ(pread(fd, buf.data(), len, off), static_cast<ssize_t>(len)) << strerror(errno);
      ASSERT_TRUE(std::equal(buf.begin(), buf.end(), model.begin() + off)) << "at " << off;
    }
  }
  ASSERT_EQ(close(fd), 0);

  // Direct I/O from several threads at once: one process keeps many
  // requests on one CPU's queue, which grows threads to serve them.
  constexpr int kThreads = 8;
  constexpr size_t kChunk = 1 << 20;
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      int dfd = open(file_.c_str(), O_RDWR | O_DIRECT);
      void* p = nullptr;
      if (dfd < 0 || posix_memalign(&p, 4096, kChunk) != 0) return (void)++failures;
      memset(p, 0x40 + t, kChunk);
      for (int r = 0; r < 4; ++r) {
        if (pwrite(dfd, p, kChunk, static_cast<off_t>(t) * kChunk) !=
                static_cast<ssize_t>(kChunk) ||
            pread(dfd, p, kChunk, static_cast<off_t>(t) * kChunk) != static_cast<ssize_t>(kChunk)) {
          ++failures;
        }
      }
      free(p);
      close(dfd);
    });
  }
  for (auto& w : writers) w.join();
  ASSERT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    std::fill(model.begin() + t * kChunk, model.begin() + (t + 1) * kChunk,
              static_cast<uint8_t>(0x40 + t));
  }
  EXPECT_EQ(engine_->Snapshot(), model);
  const FuseStats st = server_->Stats();
  EXPECT_GE(st.uring_requests, static_cast<uint64_t>(ops + 2 * 4 * kThreads))
      << "requests came through io_uring";
  EXPECT_EQ(st.transport.rfind("io_uring (", 0), 0u) << st.transport;
}

TEST_F(UringTransportTest, ARegistrationFailingPartWayLeavesAWorkingDevFuseMount) {
  auto queues = PossibleCpus();
  ASSERT_TRUE(queues.ok());
  // The last queue's registration fails after the others succeeded: the
  // kernel would hold every request for a ring that never gets ready.
  Mount(FuseTransportMode::kUring, static_cast<int>(*queues) - 1);
  const std::string pattern = dir_ / "pattern";
  ASSERT_EQ(system(("head -c 1048576 /dev/urandom > " + pattern).c_str()), 0);
  ASSERT_EQ(Bounded("dd if=" + pattern + " of=" + file_ +
                    " bs=64k seek=3 oflag=direct conv=notrunc status=none"),
            0)
      << "writes must not hang";
  EXPECT_EQ(Bounded("cmp -n 1048576 -i 0:196608 " + pattern + " " + file_), 0)
      << "and what was written reads back";
  const FuseStats st = server_->Stats();
  EXPECT_EQ(st.transport.rfind("/dev/fuse (io_uring registration failed: ", 0), 0u) << st.transport;
  EXPECT_NE(st.transport.find("queue " + std::to_string(*queues - 1)), std::string::npos)
      << st.transport;
  EXPECT_EQ(st.uring_requests, 0u);
  EXPECT_GE(st.write_requests, 16u);
}

TEST_F(UringTransportTest, DevKeepsToDevFuseWhereIoUringIsOn) {
  Mount(FuseTransportMode::kDev);
  ASSERT_EQ(Bounded("cat " + file_ + " > /dev/null"), 0);
  const FuseStats st = server_->Stats();
  EXPECT_EQ(st.transport, "/dev/fuse (--fuse-transport dev)");
  EXPECT_EQ(st.uring_requests, 0u);
  EXPECT_GT(st.read_requests, 0u);
}

TEST(FuseTransportNames, TheOptionAndTheEnvironment) {
  const char* outer = getenv("CLONEFS_FUSE_TRANSPORT");
  const std::string saved = outer != nullptr ? outer : "";
  unsetenv("CLONEFS_FUSE_TRANSPORT");
  EXPECT_EQ(*ParseFuseTransport(""), FuseTransportMode::kAuto);
  EXPECT_EQ(*ParseFuseTransport("uring"), FuseTransportMode::kUring);
  EXPECT_EQ(*ParseFuseTransport("dev"), FuseTransportMode::kDev);
  setenv("CLONEFS_FUSE_TRANSPORT", "dev", 1);
  EXPECT_EQ(*ParseFuseTransport(""), FuseTransportMode::kDev);
  EXPECT_EQ(*ParseFuseTransport("auto"), FuseTransportMode::kAuto) << "the option wins";
  setenv("CLONEFS_FUSE_TRANSPORT", "fast", 1);
  auto bad = ParseFuseTransport("");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("CLONEFS_FUSE_TRANSPORT 'fast'"), std::string::npos);
  if (outer != nullptr) {
    setenv("CLONEFS_FUSE_TRANSPORT", saved.c_str(), 1);
  } else {
    unsetenv("CLONEFS_FUSE_TRANSPORT");
  }
}

}  // namespace
}  // namespace clonefs::fuse
