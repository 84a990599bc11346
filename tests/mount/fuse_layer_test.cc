// The FUSE layer on its own: a FuseServer mounted in-process over a
// test-only PassthroughEngine, exercised through the kernel with plain
// system calls. Checks the decoding of every operation (what reaches the
// engine) and the errno choices of fuse_ops.cc.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "fuse/fuse_server.h"
#include "mount/in_process_server.h"
#include "mount/mount_test_util.h"
#include "mount/passthrough_engine.h"

namespace clonefs::fuse {
namespace {

using clonefs::testing::PassthroughEngine;
using clonefs::testing::TempDir;

constexpr uint64_t kImageSize = (8ull << 20) + 12345;  // not a multiple of anything

class FuseLayerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    engine_ = std::make_unique<PassthroughEngine>(kImageSize);
    mnt_ = dir_ / "mnt";
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    FuseServerOptions o;
    o.mountpoint = mnt_;
    o.fsname = "clonefs-test";
    o.fs.file_name = "image.raw";
    o.fs.mode = 0640;
    o.fs.uid = 0;
    o.fs.gid = 0;
    // The transport tests/run.sh runs the mount tier on (both, in turn).
    auto transport = ParseFuseTransport("");
    ASSERT_TRUE(transport.ok()) << transport.status().ToString();
    o.transport = transport_ = *transport;
    auto s = FuseServer::Mount(engine_.get(), o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(*s);
    serve_thread_ = std::thread([this] { serve_status_ = server_->Serve(); });
    file_ = mnt_ + "/image.raw";
  }

  void TearDown() override {
    if (!server_) return;
    if (transport_ == FuseTransportMode::kUring) {
      EXPECT_GT(server_->Stats().uring_requests, 0u) << "asked for io_uring, served without it";
    }
    const Status u = clonefs::testing::UnmountWhenIdle(server_.get());
    EXPECT_TRUE(u.ok()) << u.ToString();
    serve_thread_.join();
    EXPECT_TRUE(serve_status_.ok()) << serve_status_.ToString();
    EXPECT_EQ(engine_->shutdowns.load(), 1) << "destroy must shut the engine down once";
  }

  int Open(int flags) {
    int fd = open(file_.c_str(), flags);
    EXPECT_GE(fd, 0) << "open " << file_ << ": " << strerror(errno);
    return fd;
  }

  TempDir dir_;
  std::string mnt_, file_;
  std::unique_ptr<PassthroughEngine> engine_;
  std::unique_ptr<FuseServer> server_;
  std::thread serve_thread_;
  Status serve_status_;
  FuseTransportMode transport_ = FuseTransportMode::kAuto;
};

TEST_F(FuseLayerTest, RootHoldsExactlyTheImageWithItsAttributes) {
  DIR* d = opendir(mnt_.c_str());
  ASSERT_NE(d, nullptr);
  std::set<std::string> names;
  while (struct dirent* e = readdir(d)) names.insert(e->d_name);
  closedir(d);
  EXPECT_EQ(names, (std::set<std::string>{".", "..", "image.raw"}));

  struct stat st;
  ASSERT_EQ(stat(file_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kImageSize);
  EXPECT_NE(stat((mnt_ + "/other").c_str(), &st), 0);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_NE(open((mnt_ + "/new").c_str(), O_CREAT | O_RDWR, 0644), 0);
}

TEST_F(FuseLayerTest, NamespaceIsFixed) {
  const std::string other = mnt_ + "/other";
  // Each refused with EPERM, as a size change is (not ENOSYS).
  auto refused = [](int rc) { return rc == -1 && errno == EPERM; };
  EXPECT_TRUE(refused(open(other.c_str(), O_CREAT | O_RDWR, 0644))) << strerror(errno);
  EXPECT_TRUE(refused(mkdir(other.c_str(), 0755))) << strerror(errno);
  EXPECT_TRUE(refused(mknod(other.c_str(), S_IFIFO | 0644, 0))) << strerror(errno);
  EXPECT_TRUE(refused(symlink("image.raw", other.c_str()))) << strerror(errno);
  EXPECT_TRUE(refused(link(file_.c_str(), other.c_str()))) << strerror(errno);
  EXPECT_TRUE(refused(rename(file_.c_str(), other.c_str()))) << strerror(errno);
  EXPECT_TRUE(refused(unlink(file_.c_str()))) << strerror(errno);
  EXPECT_EQ(rmdir(file_.c_str()), -1);
  struct stat st;
  ASSERT_EQ(stat(file_.c_str(), &st), 0) << "the image is still there";
  EXPECT_NE(stat(other.c_str(), &st), 0);
  // O_CREAT on the image itself opens it, as on any existing file.
  int fd = open(file_.c_str(), O_CREAT | O_RDWR, 0644);
  EXPECT_GE(fd, 0) << strerror(errno);
  if (fd >= 0) close(fd);
}

TEST_F(FuseLayerTest, RandomReadsAndWritesMatchAModel) {
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> model(kImageSize, 0);
  int fd = Open(O_RDWR);
  for (int i = 0; i < 300; ++i) {
    uint64_t len = 1 + rng() % (rng() % 4 == 0 ? (3u << 20) : 70000);
    uint64_t off = rng() % kImageSize;
    len = std::min(len, kImageSize - off);
    if (rng() % 2) {
      std::vector<uint8_t> buf(len);
      for (auto& b : buf) b = static_cast<uint8_t>(rng());
      ASSERT_EQ(pwrite(fd, buf.data(), len, off), static_cast<ssize_t>(len)) << strerror(errno);
      std::copy(buf.begin(), buf.end(), model.begin() + off);
    } else {
      std::vector<uint8_t> buf(len);
      ASSERT_EQ(pread(fd, buf.data(), len, off), static_cast<ssize_t>(len)) << strerror(errno);
      ASSERT_TRUE(std::equal(buf.begin(), buf.end(), model.begin() + off)) << "at " << off;
    }
  }
  EXPECT_EQ(close(fd), 0);  // flush answers 0
  EXPECT_EQ(engine_->Snapshot(), model);
}

TEST_F(FuseLayerTest, DirectIoUsesOneMebibyteRequests) {
  int fd = Open(O_RDWR | O_DIRECT);
  void* p = nullptr;
  ASSERT_EQ(posix_memalign(&p, 4096, 4u << 20), 0);
  std::unique_ptr<void, decltype(&free)> buf(p, free);
  memset(p, 0xab, 4u << 20);
  ASSERT_EQ(pwrite(fd, p, 4u << 20, 1u << 20), 4 << 20) << strerror(errno);
  memset(p, 0, 4u << 20);
  ASSERT_EQ(pread(fd, p, 4u << 20, 1u << 20), 4 << 20) << strerror(errno);
  EXPECT_EQ(static_cast<uint8_t*>(p)[(4u << 20) - 1], 0xab);
  EXPECT_EQ(engine_->max_write_len.load(), 1u << 20);
  EXPECT_EQ(engine_->max_read_len.load(), 1u << 20);
  // A read at the end returns the short tail, then end of file.
  EXPECT_EQ(pread(fd, p, 1u << 20, kImageSize - 12345 - 4096 * 0), 12345);
  EXPECT_EQ(pread(fd, p, 4096, kImageSize + 4096 * 2), 0);
  close(fd);
}

// The request loop hands the engine WRITE payloads on a page boundary, so an
// O_DIRECT dest is written without a bounce copy. Several writers at once, so
// that several workers (each with its own buffer) serve them.
TEST_F(FuseLayerTest, WritePayloadsArePageAligned) {
  constexpr int kThreads = 4, kWrites = 64;
  constexpr size_t kLen = 64 << 10;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      int fd = Open(O_RDWR | O_DIRECT);
      void* p = nullptr;
      ASSERT_EQ(posix_memalign(&p, 4096, kLen), 0);
      std::unique_ptr<void, decltype(&free)> buf(p, free);
      for (int i = 0; i < kWrites; ++i) {
        memset(p, t * kWrites + i, kLen);
        off_t off = static_cast<off_t>(((t * kWrites + i) * kLen) % (kImageSize - kLen)) & ~4095;
        ASSERT_EQ(pwrite(fd, p, kLen, off), static_cast<ssize_t>(kLen)) << strerror(errno);
      }
      close(fd);
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(engine_->plain_writes.load(), kThreads * kWrites);
  EXPECT_EQ(engine_->unaligned_write_buffers.load(), 0u);
}

// Synchronous O_DIRECT writers (QEMU's thread pool, several fio jobs) reach
// the engine concurrently: the file is opened with parallel direct writes, so
// the kernel does not hold the inode lock across each write's round trip.
TEST_F(FuseLayerTest, DirectWritesFromSeveralThreadsRunConcurrently) {
  struct utsname u;
  int major = 0, minor = 0;
  ASSERT_EQ(uname(&u), 0);
  ASSERT_EQ(sscanf(u.release, "%d.%d", &major, &minor), 2) << u.release;
  if (major < 6 || (major == 6 && minor < 2)) {
    GTEST_SKIP() << "kernel " << u.release << " predates FOPEN_PARALLEL_DIRECT_WRITES (6.2)";
  }
  engine_->hold_writes_until = 2;  // each write waits (up to 2 s) for a second one
  std::vector<std::thread> writers;
  for (int t = 0; t < 2; ++t) {
    writers.emplace_back([&, t] {
      int fd = Open(O_RDWR | O_DIRECT);
      void* p = nullptr;
      ASSERT_EQ(posix_memalign(&p, 4096, 4096), 0);
      std::unique_ptr<void, decltype(&free)> buf(p, free);
      memset(p, 'a' + t, 4096);
      EXPECT_EQ(pwrite(fd, p, 4096, t * 8192), 4096) << strerror(errno);
      close(fd);
    });
  }
  for (auto& w : writers) w.join();
  EXPECT_EQ(engine_->max_writes_in_flight.load(), 2)
      << "the second write reached the engine only after the first had finished";
  auto img = engine_->Snapshot();
  EXPECT_EQ(img[0], 'a');
  EXPECT_EQ(img[8192], 'b');
}

TEST_F(FuseLayerTest, SyncFlagsReachTheEngine) {
  char b[4096] = {1};
  int plain = Open(O_RDWR);
  ASSERT_EQ(pwrite(plain, b, sizeof(b), 0), 4096);
  EXPECT_EQ(engine_->sync_writes.load(), 0);
  struct iovec iov = {b, sizeof(b)};
  ASSERT_EQ(pwritev2(plain, &iov, 1, 8192, RWF_DSYNC), 4096) << strerror(errno);
  EXPECT_EQ(engine_->sync_writes.load(), 1);
  close(plain);
  int dsync = Open(O_RDWR | O_DSYNC);
  ASSERT_EQ(pwrite(dsync, b, sizeof(b), 0), 4096);
  close(dsync);
  int osync = Open(O_RDWR | O_SYNC);
  ASSERT_EQ(pwrite(osync, b, sizeof(b), 0), 4096);
  close(osync);
  EXPECT_EQ(engine_->sync_writes.load(), 3);
  EXPECT_EQ(engine_->plain_writes.load(), 1);
}

TEST_F(FuseLayerTest, FsyncAndFdatasyncAreCommitsAndReportFailure) {
  int fd = Open(O_RDWR);
  int before = engine_->fsyncs.load();
  EXPECT_EQ(fsync(fd), 0);
  EXPECT_EQ(fdatasync(fd), 0);
  EXPECT_EQ(engine_->fsyncs.load(), before + 2);
  engine_->fail_fsync = true;
  EXPECT_EQ(fsync(fd), -1);
  EXPECT_EQ(errno, EIO);
  engine_->fail_fsync = false;
  EXPECT_EQ(fsync(fd), 0) << "a failed fsync must not turn later ones into no-ops";
  EXPECT_EQ(engine_->fsyncs.load(), before + 4);
  close(fd);
}

TEST_F(FuseLayerTest, SizeIsFixed) {
  EXPECT_EQ(truncate(file_.c_str(), 4096), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(truncate(file_.c_str(), kImageSize * 2), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(truncate(file_.c_str(), kImageSize), 0) << "same size is a no-op";
  EXPECT_EQ(open(file_.c_str(), O_RDWR | O_TRUNC), -1);
  EXPECT_EQ(errno, EPERM);
  int fd = Open(O_RDWR);
  char b[8192] = {7};
  EXPECT_EQ(pwrite(fd, b, 10, kImageSize), -1);
  EXPECT_EQ(errno, EFBIG);
  EXPECT_EQ(pwrite(fd, b, 8192, kImageSize - 100), 100) << "a write crossing the end is cut";
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kImageSize);
  close(fd);
}

TEST_F(FuseLayerTest, FallocateModes) {
  int fd = Open(O_RDWR);
  std::vector<uint8_t> ones(1 << 20, 1);
  ASSERT_EQ(pwrite(fd, ones.data(), ones.size(), 0), static_cast<ssize_t>(ones.size()));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192), 0)
      << strerror(errno);
  EXPECT_EQ(engine_->punches.load(), 1);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE, 65536, 100), 0) << strerror(errno);
  ASSERT_EQ(fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 200000, 100), 0);
  EXPECT_EQ(engine_->zeroes.load(), 2);
  auto img = engine_->Snapshot();
  for (uint64_t i = 0; i < (1 << 20); ++i) {
    bool zeroed =
        (i >= 4096 && i < 12288) || (i >= 65536 && i < 65636) || (i >= 200000 && i < 200100);
    ASSERT_EQ(img[i], zeroed ? 0 : 1) << "at " << i;
  }
  EXPECT_EQ(fallocate(fd, 0, 0, 1 << 20), 0) << "allocation inside the file is a no-op";
  EXPECT_EQ(fallocate(fd, 0, kImageSize - 10, 100), -1);
  EXPECT_EQ(errno, EFBIG);
  EXPECT_EQ(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kImageSize - 10, 100), 0)
      << "punching across the end is clipped";
  EXPECT_EQ(fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 65536), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  close(fd);
}

TEST_F(FuseLayerTest, SeekDataAndHoleAskTheEngine) {
  int fd = Open(O_RDWR);
  char b[10] = {1};
  ASSERT_EQ(pwrite(fd, b, sizeof(b), 3 * PassthroughEngine::kBlock + 5), 10);
  EXPECT_EQ(lseek(fd, 0, SEEK_DATA), static_cast<off_t>(3 * PassthroughEngine::kBlock));
  EXPECT_EQ(lseek(fd, 3 * PassthroughEngine::kBlock, SEEK_HOLE),
            static_cast<off_t>(4 * PassthroughEngine::kBlock));
  EXPECT_EQ(lseek(fd, 4 * PassthroughEngine::kBlock, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  EXPECT_EQ(lseek(fd, kImageSize, SEEK_HOLE), -1);
  EXPECT_EQ(errno, ENXIO);
  close(fd);
}

TEST_F(FuseLayerTest, ChmodAndChownChangeTheExposedFile) {
  ASSERT_EQ(chmod(file_.c_str(), 0600), 0) << strerror(errno);
  ASSERT_EQ(chown(file_.c_str(), 1234, 5678), 0) << strerror(errno);
  struct stat st;
  ASSERT_EQ(stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
}

TEST_F(FuseLayerTest, UnmountIsRefusedWhileTheFileIsOpen) {
  int fd = Open(O_RDONLY);
  EXPECT_EQ(server_->open_handles(), 1);
  Status s = server_->RequestUnmount();
  EXPECT_TRUE(s.IsBusy()) << s.ToString();
  char b[16];
  EXPECT_EQ(pread(fd, b, sizeof(b), 0), 16) << "still serving after a refused unmount";
  close(fd);
  for (int i = 0; i < 500 && server_->open_handles() != 0; ++i) usleep(10000);  // RELEASE is async
  EXPECT_EQ(server_->open_handles(), 0);
}

// libfuse can end the session by itself while the kernel connection stays
// up: here INIT fails because the max_read mount option differs from what
// libfuse negotiates. The request loop must notice, end, and report it,
// instead of waiting forever in reads that never return.
TEST(FuseServerLoop, EndsAndReportsWhenLibfuseEndsTheSession) {
  CLONEFS_REQUIRE_MOUNTABLE();
  TempDir dir;
  const std::string mnt = dir / "mnt";
  ASSERT_EQ(mkdir(mnt.c_str(), 0755), 0);
  PassthroughEngine engine(1 << 20);
  FuseServerOptions o;
  o.mountpoint = mnt;
  o.fsname = "clonefs-test";
  o.fs.file_name = "image.raw";
  o.extra_options = {"max_read=65536"};
  auto s = FuseServer::Mount(&engine, o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  std::unique_ptr<FuseServer> server = std::move(*s);
  std::atomic<bool> done{false};
  Status served;
  std::thread t([&] {
    served = server->Serve();
    done = true;
  });
  (void)access((mnt + "/image.raw").c_str(), F_OK);  // the kernel refuses: INIT failed
  for (int i = 0; i < 1000 && !done; ++i) usleep(10000);
  if (!done) {
    // Unblock the loop so the test ends, then fail.
    (void)server->RequestUnmount();
    t.join();
    FAIL() << "Serve() still running 10 s after INIT failed";
  }
  t.join();
  EXPECT_FALSE(served.ok());
  EXPECT_NE(served.ToString().find("connection"), std::string::npos) << served.ToString();
}

}  // namespace
}  // namespace clonefs::fuse
