// FUSE over io_uring through the kernel (uring_queues.h): a FuseServer
// mounted in-process over the test-only PassthroughEngine, serving a
// reference model and concurrent direct I/O through io_uring; a
// registration failing part-way, which must leave a working /dev/fuse mount
// (never a hung one); direct reads and writes (of a file the engine names),
// also when they fail; and --fuse-transport dev. The rest of the mount tier
// runs on both transports (tests/run.sh).
//
// Needs a kernel with FUSE over io_uring (Linux 6.14+): the test turns its
// enable_uring parameter on for its run and puts it back.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>
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

// PassthroughEngine's image in a file, offering direct I/O on it
// (Engine::DirectReadFd/DirectWriteFd) everywhere but in its first MiB,
// which stays the engine's. Counts what reached Read and Write.
class FileEngine : public PassthroughEngine {
 public:
  static constexpr uint64_t kEngineOnly = 1 << 20;
  FileEngine(uint64_t size, const std::string& path) : PassthroughEngine(size) {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    EXPECT_GE(fd_, 0);
    EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(size)), 0);
  }
  ~FileEngine() override { close(fd_); }
  Status Read(uint64_t off, void* buf, size_t len) override {
    reads.fetch_add(1);
    const ssize_t n = pread(fd_, buf, len, static_cast<off_t>(off));
    return n == static_cast<ssize_t>(len) ? Status::OK() : Status::IoError("pread", errno);
  }
  Status Write(uint64_t off, const void* buf, size_t len, bool) override {
    writes.fetch_add(1);
    const ssize_t n = pwrite(fd_, buf, len, static_cast<off_t>(off));
    return n == static_cast<ssize_t>(len) ? Status::OK() : Status::IoError("pwrite", errno);
  }
  int DirectReadFd(uint64_t off, size_t len) override {
    if (off < kEngineOnly || off + len > image_size()) return -1;
    direct.fetch_add(1);
    return fd_;
  }
  int DirectWriteFd(uint64_t off, size_t len) override { return DirectReadFd(off, len); }
  std::vector<uint8_t> Contents() const {
    std::vector<uint8_t> v(image_size());
    EXPECT_EQ(pread(fd_, v.data(), v.size(), 0), static_cast<ssize_t>(v.size()));
    return v;
  }
  std::atomic<uint64_t> reads{0}, writes{0}, direct{0};

 private:
  int fd_ = -1;
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
  void Mount(FuseTransportMode mode, int fail_queue = -1,
             std::unique_ptr<PassthroughEngine> engine = nullptr, uint32_t fail_direct_every = 0,
             const std::function<void(FuseServerOptions*)>& tweak = nullptr) {
    engine_ = engine ? std::move(engine) : std::make_unique<PassthroughEngine>(kImageSize);
    FuseServerOptions o;
    o.uring_fail_direct_every = fail_direct_every;
    o.mountpoint = mnt_;
    o.fsname = "clonefs-test";
    o.fs.file_name = "image.raw";
    o.transport = mode;
    o.uring_fail_queue = fail_queue;
    if (tweak) tweak(&o);
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
  void DirectIoRound(uint32_t fail_every);
  static int Bounded(const std::string& command) {
    return system(("timeout -s KILL 30 " + command).c_str());
  }
  // Writes 1 MiB of random bytes through the mount with O_DIRECT, bounded,
  // and reads them back.
  void WriteAndCompare() {
    const std::string pattern = dir_ / "pattern";
    ASSERT_EQ(system(("head -c 1048576 /dev/urandom > " + pattern).c_str()), 0);
    ASSERT_EQ(Bounded("dd if=" + pattern + " of=" + file_ +
                      " bs=64k seek=3 oflag=direct conv=notrunc status=none"),
              0)
        << "writes must not hang";
    EXPECT_EQ(Bounded("cmp -n 1048576 -i 0:196608 " + pattern + " " + file_), 0)
        << "and what was written reads back";
  }
  // After WriteAndCompare: status shows io_uring as `transport_prefix`
  // says, and the writes came through it.
  void ExpectServedThroughIoUring(const std::string& transport_prefix) {
    const FuseStats st = server_->Stats();
    EXPECT_EQ(st.transport.rfind(transport_prefix, 0), 0u) << st.transport;
    EXPECT_GE(st.uring_requests, 16u) << "the writes came through io_uring";
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
  WriteAndCompare();
  const FuseStats st = server_->Stats();
  EXPECT_EQ(st.transport.rfind("/dev/fuse (io_uring registration failed: ", 0), 0u) << st.transport;
  EXPECT_NE(st.transport.find("queue " + std::to_string(*queues - 1)), std::string::npos)
      << st.transport;
  EXPECT_EQ(st.uring_requests, 0u);
  EXPECT_GE(st.write_requests, 16u);
}

TEST_F(UringTransportTest, AQueueThreadFailingToRegisterLeavesItsSiblingsServing) {
  auto queues = PossibleCpus();
  ASSERT_TRUE(queues.ok());
  // Two threads per queue; the last queue's last thread fails before its
  // REGISTER. Every queue still has a thread, so the kernel uses them all:
  // io_uring serves, and nothing is refused.
  const uint32_t threads = 2 * *queues;
  Mount(FuseTransportMode::kUring, -1, nullptr, 0, [&](FuseServerOptions* o) {
    o->uring_threads_per_queue = 2;
    o->uring_fail_thread = static_cast<int>(threads) - 1;
  });
  WriteAndCompare();
  ExpectServedThroughIoUring("io_uring (" + std::to_string(*queues) + " queues, " +
                             std::to_string(threads - 1) + " of " + std::to_string(threads) +
                             " threads, ");
}

TEST_F(UringTransportTest, EntriesFailingToRegisterLeaveTheirThreadServing) {
  // Each thread's REGISTERs after its first are refused by the kernel (as
  // for lack of memory). A thread with one entry registered serves with it
  // (it used to give up, and with it the whole mount's io_uring).
  auto queues = PossibleCpus();
  ASSERT_TRUE(queues.ok());
  Mount(FuseTransportMode::kUring, -1, nullptr, 0, [&](FuseServerOptions* o) {
    o->uring_threads_per_queue = 2;
    o->uring_fail_register_after = 1;
  });
  WriteAndCompare();
  // One entry per thread: those refused are not counted.
  ExpectServedThroughIoUring("io_uring (" + std::to_string(*queues) + " queues, " +
                             std::to_string(2 * *queues) + " threads, " +
                             std::to_string(2 * *queues) + " entries, ");
}

TEST_F(UringTransportTest, AQueuesEntriesStayWithinTheThreadLimit) {
  // --threads 8: each queue registers at most 8 entries (1 MiB payload
  // buffer each), its threads together, however busy.
  auto queues = PossibleCpus();
  ASSERT_TRUE(queues.ok());
  Mount(FuseTransportMode::kUring, -1, nullptr, 0,
        [](FuseServerOptions* o) { o->max_threads = 8; });
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      const int fd = open(file_.c_str(), O_RDWR | O_DIRECT);
      void* p = nullptr;
      if (fd < 0 || posix_memalign(&p, 4096, 1 << 20) != 0) return (void)++failures;
      for (int r = 0; r < 8; ++r) {
        const off_t at = static_cast<off_t>((t * 8 + r) % 16) << 20;
        if (pwrite(fd, p, 1 << 20, at) != (1 << 20) || pread(fd, p, 1 << 20, at) != (1 << 20)) {
          ++failures;
        }
      }
      free(p);
      close(fd);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  const std::string transport = server_->Stats().transport;
  ASSERT_EQ(transport.rfind("io_uring (", 0), 0u) << transport;
  const size_t at = transport.find(" entries");
  ASSERT_NE(at, std::string::npos) << transport;
  const size_t from = transport.rfind(' ', at - 1) + 1;
  const unsigned long entries = std::stoul(transport.substr(from, at - from));
  EXPECT_LE(entries, 8u * *queues) << transport;
  EXPECT_GE(entries, *queues) << transport;
}

// Reads and writes of a range the engine hands out go straight to its file
// from the queue's thread (a read linked to its commit, a write then its
// reply); the others reach the engine; every one matches a model, with
// buffered, O_DIRECT and concurrent I/O. With `fail_every`, that many
// direct ones in each fail (fd -1, as a failing disk's) and are answered
// through the engine instead.
void UringTransportTest::DirectIoRound(uint32_t fail_every) {
  auto engine = std::make_unique<FileEngine>(kImageSize, dir_ / "image.file");
  FileEngine* fe = engine.get();
  Mount(FuseTransportMode::kUring, -1, std::move(engine), fail_every);
  ASSERT_EQ(Bounded("cat " + file_ + " > /dev/null"), 0);
  const uint32_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> model(kImageSize, 0);
  int fd = open(file_.c_str(), O_RDWR);
  int dfd = open(file_.c_str(), O_RDWR | O_DIRECT);
  ASSERT_GE(fd, 0);
  ASSERT_GE(dfd, 0);
  void* abuf = nullptr;
  ASSERT_EQ(posix_memalign(&abuf, 4096, 1 << 20), 0);
  for (int i = 0; i < 600; ++i) {
    const bool direct = rng() % 2;
    uint64_t len = direct ? 4096 * (1 + rng() % 64) : 1 + rng() % 100000;
    uint64_t off = direct ? 4096 * (rng() % (kImageSize / 4096)) : rng() % kImageSize;
    if (rng() % 4 == 0) off = rng() % (2 * FileEngine::kEngineOnly);  // across the border
    if (direct) off -= off % 4096;
    len = std::min(len, kImageSize - off);
    if (direct && len % 4096 != 0) continue;
    std::vector<uint8_t> buf(len);
    uint8_t* p = direct ? static_cast<uint8_t*>(abuf) : buf.data();
    const bool write = rng() % 2;
    ASSERT_NO_FATAL_FAILURE(
        clonefs::testing::ModelIo(direct ? dfd : fd, write, p, len, off, rng, &model));
  }
  free(abuf);
  close(fd);
  close(dfd);
  // 4 KiB direct reads and writes from 8 threads at once: many entries of
  // one queue with direct I/O in flight together.
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      int tfd = open(file_.c_str(), O_RDWR | O_DIRECT);
      void* b = nullptr;
      if (tfd < 0 || posix_memalign(&b, 4096, 4096) != 0) return (void)++failures;
      const off_t base = static_cast<off_t>(FileEngine::kEngineOnly) + t * (1 << 20);
      for (int k = 0; k < 200; ++k) {
        memset(b, 0x10 + t + k % 7, 4096);
        const off_t at = base + (k % 64) * 4096;
        if (pwrite(tfd, b, 4096, at) != 4096) ++failures;
        if (pread(tfd, b, 4096, at) != 4096 ||
            static_cast<uint8_t*>(b)[4095] != static_cast<uint8_t>(0x10 + t + k % 7)) {
          ++failures;
        }
      }
      free(b);
      close(tfd);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  for (int t = 0; t < 8; ++t) {
    for (int k = 136; k < 200; ++k) {  // each block's last write
      const uint64_t at = FileEngine::kEngineOnly + t * (1 << 20) + (k % 64) * 4096;
      std::fill(model.begin() + at, model.begin() + at + 4096, 0x10 + t + k % 7);
    }
  }
  EXPECT_TRUE(fe->Contents() == model) << "the file holds what was written";
  const FuseStats st = server_->Stats();
  EXPECT_GT(st.uring_direct, 1000u) << "direct I/O served most of it";
  // Every READ and WRITE counted once: served directly, or by the engine
  // (a failed direct one only there).
  EXPECT_EQ(st.uring_direct + st.uring_direct_retries, fe->direct.load());
  EXPECT_EQ(st.read_requests + st.write_requests,
            st.uring_direct + fe->reads.load() + fe->writes.load());
  EXPECT_GT(fe->reads.load() + fe->writes.load(), 0u) << "the engine's first MiB went to it";
  if (fail_every == 0) {
    EXPECT_EQ(st.uring_direct_retries, 0u);
  } else {
    EXPECT_GE(st.uring_direct_retries, st.uring_direct / fail_every - 1);
    EXPECT_GT(st.uring_direct_retries, 0u) << "and the failures were answered by the engine";
  }
}

TEST_F(UringTransportTest, DirectReadsAndWritesMatchAModel) { DirectIoRound(0); }

TEST_F(UringTransportTest, DirectReadsAndWritesThatFailAreAnsweredThroughTheEngine) {
  DirectIoRound(3);
}

TEST_F(UringTransportTest, DevKeepsToDevFuseWhereIoUringIsOn) {
  Mount(FuseTransportMode::kDev);
  ASSERT_EQ(Bounded("cat " + file_ + " > /dev/null"), 0);
  const FuseStats st = server_->Stats();
  EXPECT_EQ(st.transport, "/dev/fuse (--fuse-transport dev)");
  EXPECT_EQ(st.uring_requests, 0u);
  EXPECT_GT(st.read_requests, 0u);
}

// /dev/fuse chosen by $CLONEFS_FUSE_TRANSPORT says so, not that an option
// nobody gave chose it.
TEST_F(UringTransportTest, DevChosenByTheEnvironmentSaysSo) {
  Mount(FuseTransportMode::kDev, -1, nullptr, 0,
        [](FuseServerOptions* o) { o->transport_named_by = "CLONEFS_FUSE_TRANSPORT=dev"; });
  EXPECT_EQ(server_->Stats().transport, "/dev/fuse (CLONEFS_FUSE_TRANSPORT=dev)");
}

TEST(FuseTransportNames, TheOptionAndTheEnvironment) {
  const char* outer = getenv("CLONEFS_FUSE_TRANSPORT");
  const std::string saved = outer != nullptr ? outer : "";
  unsetenv("CLONEFS_FUSE_TRANSPORT");
  EXPECT_EQ(*ParseFuseTransport(""), FuseTransportMode::kAuto);
  EXPECT_EQ(*ParseFuseTransport("uring"), FuseTransportMode::kUring);
  EXPECT_EQ(*ParseFuseTransport("dev"), FuseTransportMode::kDev);
  EXPECT_EQ(FuseTransportNamedBy(""), "");
  EXPECT_EQ(FuseTransportNamedBy("dev"), "--fuse-transport dev");
  setenv("CLONEFS_FUSE_TRANSPORT", "dev", 1);
  EXPECT_EQ(*ParseFuseTransport(""), FuseTransportMode::kDev);
  EXPECT_EQ(FuseTransportNamedBy(""), "CLONEFS_FUSE_TRANSPORT=dev");
  EXPECT_EQ(*ParseFuseTransport("auto"), FuseTransportMode::kAuto) << "the option wins";
  EXPECT_EQ(FuseTransportNamedBy("auto"), "--fuse-transport auto");
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
