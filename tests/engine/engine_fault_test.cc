// Fault tests (SPEC §5, §7): source EIO, dest ENOSPC, metadata write failure
// (read-only mode), dest flush failure, rollback failure (fail mode).
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/log.h"

#include "copier/copy_buffer.h"
#include "engine/io_error_log.h"
#include "engine_test_util.h"

namespace clonefs {
namespace {

using test::Rig;

constexpr uint64_t kRegion = 64 << 10;

// Forwards to a real Metadata; runs `before_abort` first in Abort (a test
// uses it to end an injected metadata failure, as a transient error would).
// With `abort_error`, Abort then fails with it instead (a rollback failure).
class AbortHookMetadata final : public test::ForwardingMetadata {
 public:
  AbortHookMetadata(std::unique_ptr<metadata::Metadata> m, std::function<void()> before_abort,
                    Status abort_error = Status::OK())
      : ForwardingMetadata(std::move(m)),
        before_abort_(std::move(before_abort)),
        abort_error_(abort_error) {}
  Status Abort() override {
    before_abort_();
    return abort_error_.ok() ? inner()->Abort() : abort_error_;
  }

 private:
  std::function<void()> before_abort_;
  const Status abort_error_;
};

FaultRule Rule(DeviceOp op, uint64_t off, uint64_t len, Status err) {
  FaultRule r;
  r.op = op;
  r.offset = off;
  r.length = len;
  r.error = std::move(err);
  return r;
}

std::vector<uint8_t> Bytes(uint64_t n, uint8_t v) { return std::vector<uint8_t>(n, v); }

class FaultTest : public ::testing::Test {
 protected:
  FaultTest() : rig_(32 * kRegion, kRegion, test::RandomContent(32 * kRegion, 9, 0)) {}
  ~FaultTest() override { rig_.engine.reset(); }
  Engine* e() { return rig_.engine.get(); }
  std::vector<uint8_t> Src(uint64_t off, uint64_t len) {
    return {rig_.source_content.begin() + off, rig_.source_content.begin() + off + len};
  }
  std::vector<uint8_t> Get(uint64_t off, uint64_t len) {
    std::vector<uint8_t> v(len);
    EXPECT_OK(e()->Read(off, v.data(), len));
    return v;
  }
  Rig rig_;
};

TEST_F(FaultTest, SourceEioReachesTheReaderAndTheCopierRetriesWithBackoff) {
  rig_.source->AddRule(Rule(DeviceOp::kRead, 5 * kRegion, kRegion,
                            Status::IoError("injected source error", EIO)));
  std::atomic<uint64_t> attempts{0};
  test::OpCounter src;
  src.also = [&](DeviceOp op, uint64_t off, uint64_t len) {
    if (op == DeviceOp::kRead && off < 6 * kRegion && 5 * kRegion < off + len) attempts++;
  };
  src.Install(rig_.source);
  EngineOptions o;
  o.retry_backoff_initial_ms = 20;
  o.knobs.hydration_batch_size = 4;
  ASSERT_OK(rig_.Open(o));

  std::vector<uint8_t> b(100);
  Status s = e()->Read(5 * kRegion + 10, b.data(), b.size());
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_EQ(s.ToErrno(), EIO);
  s = e()->Write(5 * kRegion + 10, b.data(), b.size(), false);  // needs a copy
  EXPECT_EQ(s.ToErrno(), EIO) << s.ToString();

  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydrated_regions == 31; }));
  EXPECT_TRUE(e()->Read(5 * kRegion, b.data(), b.size()).IsIoError());  // still the source
  // Retries back off: 20, 40, 80, 160, 320, 640 ms... at most ~7 in a second.
  uint64_t a0 = attempts.load();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  uint64_t a1 = attempts.load();
  EXPECT_LE(a1 - a0, 8u);
  EXPECT_GE(a1, 3u);  // it was retried, and alone after the first failure
  EngineStats st = e()->Stats();
  EXPECT_GE(st.copy_failures, 2u);
  EXPECT_EQ(st.hydrated_regions, 31u);
  EXPECT_EQ(st.copy_failing_regions, 1u);
  EXPECT_FALSE(st.hydration_done);
  EXPECT_EQ(st.mode, EngineMode::kReadWrite);

  rig_.source->ClearRules();
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydration_done; }, 30000));
  EXPECT_EQ(e()->Stats().copy_failing_regions, 0u);
  EXPECT_EQ(rig_.ReadAll(), rig_.source_content);
}

// The regions counted as failing (status: `degraded: copies failing`) are
// those still unhydrated: one a user then overwrites whole (no copy needed)
// is no longer counted, although the copier never copied it.
TEST_F(FaultTest, ARegionWrittenWholeNoLongerCountsAsFailing) {
  for (uint64_t r : {5, 9}) {
    rig_.source->AddRule(
        Rule(DeviceOp::kRead, r * kRegion, kRegion, Status::IoError("injected source error", EIO)));
  }
  EngineOptions o;
  o.retry_backoff_initial_ms = 20;
  ASSERT_OK(rig_.Open(o));
  ASSERT_TRUE(Rig::WaitFor([&] {
    const EngineStats st = e()->Stats();
    return st.hydrated_regions == 30 && st.copy_failing_regions == 2;
  })) << e()->Stats().hydrated_regions
      << " hydrated, " << e()->Stats().copy_failing_regions << " failing";
  auto d = Bytes(kRegion, 0x5c);
  ASSERT_OK(e()->Write(9 * kRegion, d.data(), d.size(), false));
  EngineStats st = e()->Stats();
  EXPECT_EQ(st.hydrated_regions, 31u);
  EXPECT_EQ(st.copy_failing_regions, 1u);
  rig_.source->ClearRules();
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydration_done; }, 30000));
  EXPECT_EQ(e()->Stats().copy_failing_regions, 0u);
  EXPECT_EQ(Get(9 * kRegion, kRegion), d);
  EXPECT_EQ(Get(5 * kRegion, kRegion), Src(5 * kRegion, kRegion));
}

// A copy buffer that cannot be allocated fails the request with ENOMEM (a
// Status: an exception on a FUSE worker would end the daemon) and marks
// nothing; the copier counts it and carries on once memory is back.
TEST_F(FaultTest, OutOfMemoryForACopyBufferIsEnomemNotAnException) {
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.retry_backoff_initial_ms = 10;
  ASSERT_OK(rig_.Open(o));
  CopyBuffer::SetAllocationLimitForTesting(0);
  test::Cleanup unlimit([] { CopyBuffer::SetAllocationLimitForTesting(SIZE_MAX); });
  auto d = Bytes(100, 7);
  Status s;
  bool threw = false;
  // A fresh thread: no copy buffer cached from earlier requests.
  std::thread([&] {
    try {
      s = e()->Write(3 * kRegion + 5, d.data(), d.size(), false);  // partial: copy first
    } catch (...) {
      threw = true;
    }
  }).join();
  ASSERT_FALSE(threw);
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_EQ(s.ToErrno(), ENOMEM) << s.ToString();
  EXPECT_EQ(e()->Stats().hydrated_regions, 0u);
  EXPECT_EQ(Get(3 * kRegion, kRegion), Src(3 * kRegion, kRegion));
  e()->EnableHydration(true);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().copy_failures >= 3; }));
  EXPECT_EQ(e()->Stats().hydrated_regions, 0u);
  CopyBuffer::SetAllocationLimitForTesting(SIZE_MAX);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydration_done; }, 30000));
  EXPECT_EQ(rig_.ReadAll(), rig_.source_content);
}

using test::LinesWith;

std::vector<std::string> WarningLines(const std::string& path) {
  return LinesWith(path, " warning: ");
}

// The IoErrorLog's lines (a request answered an error).
std::vector<std::string> RequestErrorLines(const std::string& path) {
  return LinesWith(path, " answered errno ");
}

// Device errors that reach a request are logged at warning level with the
// offset, length and errno: at most one line a second per kind of request,
// the next line counting those not logged. Errors that are the request's
// own (outside the image) are not.
TEST_F(FaultTest, IoErrorsReachingRequestsAreWarnedOncePerSecondPerKind) {
  const std::string log = rig_.dir.path() + "/log";
  ASSERT_OK(SetLogToFile(log));
  test::Cleanup restore([&] {
    for (const std::string& l : WarningLines(log)) std::printf("logged: %s\n", l.c_str());
    SetLogToStderr();
  });
  test::ManualClock clock;
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.commit_interval_ms = 0;
  o.clock = &clock;
  ASSERT_OK(rig_.Open(o));
  test::Cleanup stop([&] { rig_.engine.reset(); });
  rig_.source->AddRule(Rule(DeviceOp::kRead, 5 * kRegion, kRegion,
                            Status::IoError("injected source error", EIO)));
  std::vector<uint8_t> b(100);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(e()->Read(5 * kRegion + 10, b.data(), b.size()).ToErrno(), EIO);
  }
  std::vector<std::string> lines = RequestErrorLines(log);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("read of 100 bytes at offset 327690"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("errno 5 (EIO)"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("injected source error"), std::string::npos) << lines[0];

  // Another kind has its own allowance.
  rig_.dest->AddRule(Rule(DeviceOp::kWrite, 0, UINT64_MAX, Status::NoSpace("injected ENOSPC")));
  auto d = Bytes(kRegion, 7);
  EXPECT_EQ(e()->Write(3 * kRegion, d.data(), kRegion, false).ToErrno(), ENOSPC);
  EXPECT_EQ(e()->Write(3 * kRegion, d.data(), kRegion, false).ToErrno(), ENOSPC);
  // Not a device error: not logged.
  EXPECT_TRUE(e()->Read(32 * kRegion - 1, b.data(), 2).IsInvalidArgument());
  lines = RequestErrorLines(log);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("write of 65536 bytes at offset 196608"), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find("errno 28 (ENOSPC)"), std::string::npos) << lines[1];

  clock.Advance(IoErrorLog::kIntervalNanos);
  EXPECT_EQ(e()->Read(5 * kRegion, b.data(), b.size()).ToErrno(), EIO);
  lines = RequestErrorLines(log);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[2].find("read of 100 bytes at offset 327680"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("9 more read error(s)"), std::string::npos) << lines[2];
}

// Threads read the clock before the log's lock: a report whose time is a
// little older than the last line's is within the interval, not 2^64 ns
// after it (it was logged, and set the interval's start back).
TEST_F(FaultTest, AnIoErrorReportedWithAnOlderTimeIsWithinTheInterval) {
  const std::string log = rig_.dir.path() + "/log";
  ASSERT_OK(SetLogToFile(log));
  test::Cleanup restore([&] { SetLogToStderr(); });
  struct SetClock final : Clock {
    std::atomic<uint64_t> t{10 * IoErrorLog::kIntervalNanos};
    uint64_t NowNanos() override { return t.load(); }
  } clock;
  const uint64_t t0 = clock.t.load();
  IoErrorLog errors(&clock);
  const Status eio = Status::IoError("injected", EIO);
  errors.Report(IoKind::kRead, 0, 512, eio);
  ASSERT_EQ(RequestErrorLines(log).size(), 1u);
  clock.t = t0 - 1'000'000;  // another thread's reading, 1 ms older
  errors.Report(IoKind::kRead, 4096, 512, eio);
  EXPECT_EQ(RequestErrorLines(log).size(), 1u);
  // The interval still ends a second after the logged line.
  clock.t = t0 + IoErrorLog::kIntervalNanos;
  errors.Report(IoKind::kRead, 8192, 512, eio);
  const std::vector<std::string> lines = RequestErrorLines(log);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_NE(lines[1].find("1 more read error(s)"), std::string::npos) << lines[1];
}

// SPEC §7a: a full dest shows as dest's condition and as the last error
// (what, errno, when, how many), not only as a failure count; the log says
// it once when dest fills up and once when it takes data again, not once
// per region; a copy succeeding again clears the condition.
TEST_F(FaultTest, DestFullIsTheLastErrorAndIsLoggedOncePerChange) {
  const std::string log = rig_.dir.path() + "/log";
  ASSERT_OK(SetLogToFile(log));
  test::Cleanup restore([&] { SetLogToStderr(); });
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.retry_backoff_initial_ms = 1;
  ASSERT_OK(rig_.Open(o));
  test::Cleanup stop([&] { rig_.engine.reset(); });
  EXPECT_EQ(e()->Stats().dest_condition, DestCondition::kOk);
  EXPECT_TRUE(e()->Stats().last_error.empty());

  rig_.dest->AddRule(Rule(DeviceOp::kWrite, 0, UINT64_MAX, Status::FromErrno(ENOSPC, "pwrite")));
  const uint64_t before = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  auto d = Bytes(kRegion, 7);
  EXPECT_EQ(e()->Write(4 * kRegion, d.data(), kRegion, false).ToErrno(), ENOSPC);
  EngineStats s = e()->Stats();
  EXPECT_EQ(s.dest_condition, DestCondition::kFull);
  EXPECT_EQ(s.last_error.kind, ErrorKind::kDestFull);
  EXPECT_EQ(s.last_error.err, ENOSPC);
  EXPECT_EQ(s.last_error.what, "write to dest at offset 262144: No space left on device");
  EXPECT_EQ(s.last_error.count, 1u);
  EXPECT_GE(s.last_error.unix_ns, before);

  // The copier meets it too (its probe, DestFullGate): every failed copy
  // counts, the condition is one.
  e()->EnableHydration(true);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().copy_failures >= 1; }));
  s = e()->Stats();
  EXPECT_EQ(s.dest_condition, DestCondition::kFull);
  EXPECT_EQ(s.last_error.kind, ErrorKind::kDestFull);
  EXPECT_GE(s.last_error.count, 2u);
  EXPECT_NE(s.last_error.what.find("copy write to dest at offset "), std::string::npos)
      << s.last_error.what;
  EXPECT_EQ(s.hydrated_regions, 0u);

  // Space is back: the retried copies succeed and the condition clears.
  rig_.dest->ClearRules();
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydrated_regions == 32; }));
  s = e()->Stats();
  EXPECT_EQ(s.dest_condition, DestCondition::kOk);
  EXPECT_EQ(s.last_error.kind, ErrorKind::kDestFull);  // still the last error there was

  EXPECT_EQ(LinesWith(log, "is full").size(), 1u);
  EXPECT_EQ(LinesWith(log, "dest has space again").size(), 1u);
  EXPECT_TRUE(LinesWith(log, "background copy failed").empty());
}

// SPEC §7a, a full dest: background copying pauses and probes (one unit at
// growing intervals) instead of reading the source over and over only for
// dest to refuse it; status says so; once space is back a probe lands and
// copying resumes at full speed.
TEST_F(FaultTest, DestFullPausesCopyingAndProbes) {
  test::OpCounter src;
  src.Install(rig_.source);
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.knobs.hydration_batch_size = 1;
  ASSERT_OK(rig_.Open(o));
  test::Cleanup stop([&] { rig_.engine.reset(); });
  rig_.dest->AddRule(Rule(DeviceOp::kWrite, 0, UINT64_MAX, Status::FromErrno(ENOSPC, "pwrite")));
  auto d = Bytes(kRegion, 7);
  ASSERT_EQ(e()->Write(4 * kRegion, d.data(), kRegion, false).ToErrno(), ENOSPC);
  ASSERT_EQ(e()->Stats().dest_condition, DestCondition::kFull);
  e()->EnableHydration(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  EngineStats s = e()->Stats();
  // Probes at about 1 s and 3 s: a few regions read, not sweeps of the image.
  EXPECT_LE(src.read_bytes.load(), 6 * kRegion) << "the copier kept reading the source";
  EXPECT_EQ(s.copy_stopped.rfind("dest full (next try in ", 0), 0u) << s.copy_stopped;
  EXPECT_EQ(s.copy_rate_bytes_per_s, 0u);  // nothing reached dest
  EXPECT_EQ(s.hydrated_regions, 0u);

  rig_.dest->ClearRules();
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().hydrated_regions == 32; }));
  s = e()->Stats();
  EXPECT_EQ(s.dest_condition, DestCondition::kOk);
  EXPECT_EQ(s.copy_stopped, "");
}

// Other dest errors are dest's I/O errors; source errors are recorded as
// the source's, and do not touch dest's condition.
TEST_F(FaultTest, DestIoErrorAndSourceErrorsAreRecordedByKind) {
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  ASSERT_OK(rig_.Open(o));
  rig_.source->AddRule(Rule(DeviceOp::kRead, 5 * kRegion, kRegion, Status::IoError("bad", EIO)));
  std::vector<uint8_t> b(100);
  EXPECT_EQ(e()->Read(5 * kRegion + 10, b.data(), b.size()).ToErrno(), EIO);
  EXPECT_EQ(e()->Read(5 * kRegion + 10, b.data(), b.size()).ToErrno(), EIO);
  EngineStats s = e()->Stats();
  EXPECT_EQ(s.dest_condition, DestCondition::kOk);
  EXPECT_EQ(s.last_error.kind, ErrorKind::kSource);
  EXPECT_EQ(s.last_error.err, EIO);
  EXPECT_EQ(s.last_error.count, 2u);
  EXPECT_EQ(s.last_error.what, "read from source at offset 327690: Input/output error");

  rig_.dest->AddRule(Rule(DeviceOp::kZero, 0, UINT64_MAX, Status::IoError("dead disk", EIO)));
  EXPECT_EQ(e()->Zero(2 * kRegion, kRegion, /*punch=*/true).ToErrno(), EIO);
  s = e()->Stats();
  EXPECT_EQ(s.dest_condition, DestCondition::kIoError);
  EXPECT_EQ(s.last_error.kind, ErrorKind::kDestIo);
  EXPECT_EQ(s.last_error.count, 1u);
  EXPECT_EQ(s.last_error.what, "zero in dest at offset 131072: Input/output error");
  // A write that hydrates a region shows dest takes data again.
  rig_.dest->ClearRules();
  auto d = Bytes(kRegion, 3);
  ASSERT_OK(e()->Write(7 * kRegion, d.data(), kRegion, false));
  EXPECT_EQ(e()->Stats().dest_condition, DestCondition::kOk);
}

TEST_F(FaultTest, DestFullReachesTheWriterAndNothingIsMarked) {
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  ASSERT_OK(rig_.Open(o));
  rig_.dest->AddRule(Rule(DeviceOp::kWrite, 0, UINT64_MAX, Status::NoSpace("injected ENOSPC")));
  auto d = Bytes(kRegion, 7);
  Status s = e()->Write(3 * kRegion + 5, d.data(), 100, false);  // partial: copy first
  EXPECT_TRUE(s.IsNoSpace()) << s.ToString();
  EXPECT_EQ(s.ToErrno(), ENOSPC);
  s = e()->Write(4 * kRegion, d.data(), kRegion, false);  // whole region: direct
  EXPECT_EQ(s.ToErrno(), ENOSPC);
  s = e()->Write(6 * kRegion + 1, d.data(), kRegion, true);  // spanning, sync
  EXPECT_EQ(s.ToErrno(), ENOSPC);
  EXPECT_EQ(e()->Stats().hydrated_regions, 0u);
  EXPECT_EQ(Get(3 * kRegion, 3 * kRegion), Src(3 * kRegion, 3 * kRegion));
  // The copier fails the same way, counts it, and marks nothing.
  e()->EnableHydration(true);
  ASSERT_TRUE(Rig::WaitFor([&] { return e()->Stats().copy_failures >= 3; }));
  EXPECT_EQ(e()->Stats().hydrated_regions, 0u);
  EXPECT_EQ(e()->mode(), EngineMode::kReadWrite);
  rig_.dest->ClearRules();
  ASSERT_OK(e()->Write(4 * kRegion, d.data(), kRegion, false));
  EXPECT_EQ(Get(4 * kRegion, kRegion), d);
}

// The metadata write fails (the WAL append): the commit fails, the
// transaction is rolled back, the clone goes read-only.
TEST_F(FaultTest, MetadataWriteFailureRollsBackToReadOnlyMode) {
  rig_.wrap_md = [&](std::unique_ptr<metadata::Metadata> m) -> std::unique_ptr<metadata::Metadata> {
    return std::make_unique<AbortHookMetadata>(std::move(m), [&] {
      rig_.fs->SetFailSyncs(false);  // the failure was transient: rollback works
      rig_.fs->SetFailWrites(false);
    });
  };
  std::atomic<int> ro_changes{0};
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.commit_interval_ms = 0;
  o.on_mode_change = [&](EngineMode m) { ro_changes += m == EngineMode::kReadOnly; };
  ASSERT_OK(rig_.Open(o));
  auto one = Bytes(kRegion, 1), two = Bytes(100, 2);
  ASSERT_OK(e()->Write(kRegion, one.data(), kRegion, false));  // region 1
  ASSERT_OK(e()->Fsync());                                     // committed
  ASSERT_OK(e()->Write(2 * kRegion + 50, two.data(), two.size(), false));  // region 2, in core
  EXPECT_EQ(e()->Stats().hydrated_regions, 2u);

  rig_.fs->SetFailWrites(true);
  Status s = e()->Fsync();
  EXPECT_TRUE(s.IsIoError()) << s.ToString();
  EXPECT_EQ(s.ToErrno(), EIO);
  EXPECT_EQ(e()->mode(), EngineMode::kReadOnly);
  EXPECT_EQ(ro_changes.load(), 1);
  EngineStats st = e()->Stats();
  EXPECT_EQ(st.commit_failures, 1u);
  EXPECT_STREQ(EngineModeName(st.mode), "ro");
  // Rolled back to the last commit: region 2 is the source's again.
  EXPECT_EQ(st.hydrated_regions, 1u);
  EXPECT_EQ(Get(2 * kRegion, kRegion), Src(2 * kRegion, kRegion));

  // Reads work, writes to hydrated regions work (also O_SYNC ones).
  EXPECT_EQ(Get(0, kRegion), Src(0, kRegion));
  EXPECT_EQ(Get(kRegion, kRegion), one);
  ASSERT_OK(e()->Write(kRegion + 10, two.data(), two.size(), false));
  ASSERT_OK(e()->Write(kRegion + 500, two.data(), two.size(), true));
  ASSERT_OK(e()->Zero(kRegion + 1000, 24, true));
  // Anything that needs a hydration, and fsync, fails with EIO.
  s = e()->Write(3 * kRegion + 5, two.data(), two.size(), false);
  EXPECT_TRUE(s.IsReadOnly()) << s.ToString();
  EXPECT_EQ(s.ToErrno(), EIO);
  EXPECT_TRUE(e()->Write(4 * kRegion, one.data(), kRegion, false).IsReadOnly());
  EXPECT_TRUE(e()->Zero(5 * kRegion, kRegion, true).IsReadOnly());
  s = e()->Fsync();
  EXPECT_TRUE(s.IsReadOnly()) << s.ToString();
  EXPECT_EQ(s.ToErrno(), EIO);
  // Background hydration stays stopped.
  e()->EnableHydration(true);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(e()->Stats().hydrated_regions, 1u);
  ASSERT_TRUE(e()->CommitAndStats().ok());
  EXPECT_FALSE(e()->Shutdown().ok());
  rig_.engine.reset();

  // After a restart: region 1 with the writes made in read-only mode.
  rig_.wrap_md = nullptr;
  o.knobs.hydration_enabled = false;
  ASSERT_OK(rig_.Open(o));
  EXPECT_EQ(e()->mode(), EngineMode::kReadWrite);
  std::copy(two.begin(), two.end(), one.begin() + 10);
  std::copy(two.begin(), two.end(), one.begin() + 500);
  std::fill(one.begin() + 1000, one.begin() + 1024, 0);
  EXPECT_EQ(Get(kRegion, kRegion), one);
  EXPECT_EQ(Get(2 * kRegion, kRegion), Src(2 * kRegion, kRegion));
}

// The metadata sync fails after the WAL record was written: read-only mode;
// the reopened store may or may not hold the record (RocksDB replays what
// the WAL holds), and either way the in-core state matches dest.
TEST_F(FaultTest, MetadataSyncFailureGoesReadOnlyConsistently) {
  rig_.wrap_md = [&](std::unique_ptr<metadata::Metadata> m) -> std::unique_ptr<metadata::Metadata> {
    return std::make_unique<AbortHookMetadata>(std::move(m), [&] { rig_.fs->SetFailSyncs(false); });
  };
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  ASSERT_OK(rig_.Open(o));
  auto d = Bytes(100, 2);
  ASSERT_OK(e()->Write(2 * kRegion + 50, d.data(), d.size(), false));
  rig_.fs->SetFailSyncs(true);
  EXPECT_EQ(e()->Fsync().ToErrno(), EIO);
  EXPECT_EQ(e()->mode(), EngineMode::kReadOnly);
  auto want = Src(2 * kRegion, kRegion);
  if (e()->Stats().hydrated_regions == 1) std::copy(d.begin(), d.end(), want.begin() + 50);
  EXPECT_EQ(Get(2 * kRegion, kRegion), want);
  EXPECT_TRUE(e()->Fsync().IsReadOnly());
}

TEST_F(FaultTest, DestFlushFailureRollsBackToReadOnlyMode) {
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  ASSERT_OK(rig_.Open(o));
  auto d = Bytes(10, 3);
  ASSERT_OK(e()->Write(7 * kRegion + 3, d.data(), d.size(), false));
  FaultRule r = Rule(DeviceOp::kFlush, 0, UINT64_MAX, Status::IoError("injected flush error", EIO));
  r.count = 1;
  rig_.dest->AddRule(r);
  Status s = e()->Write(8 * kRegion + 3, d.data(), d.size(), /*sync=*/true);
  EXPECT_EQ(s.ToErrno(), EIO) << s.ToString();
  EXPECT_EQ(e()->mode(), EngineMode::kReadOnly);
  EXPECT_EQ(e()->Stats().hydrated_regions, 0u);
  EXPECT_EQ(e()->Stats().committed_hydrated_regions, 0u);
  EXPECT_EQ(Get(7 * kRegion, kRegion), Src(7 * kRegion, kRegion));
  const LastError last = e()->Stats().last_error;
  EXPECT_EQ(last.kind, ErrorKind::kDestIo);
  EXPECT_EQ(last.what, "dest flush in a commit at offset 0: Input/output error");
}

// A dest whose flush does not return (a hung NFS server, a stopped FUSE
// daemon under it) holds the commit. A status query must still answer: it
// waits at most kStatusCommitWaitNanos and reports the step the commit is
// stuck at. (It used to wait for the commit, so `clonefs status` gave up
// after 60 s saying that the daemon did not answer.)
TEST_F(FaultTest, StatusAnswersWhileADestFlushHangs) {
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.commit_interval_ms = 0;
  ASSERT_OK(rig_.Open(o));
  std::mutex mu;
  std::condition_variable cv;
  bool held = false, release = false;
  rig_.dest->SetHook([&](DeviceOp op, uint64_t, uint64_t) {
    if (op != DeviceOp::kFlush) return;
    std::unique_lock<std::mutex> l(mu);
    held = true;
    cv.notify_all();
    cv.wait(l, [&] { return release; });
  });
  auto d = Bytes(10, 3);
  ASSERT_OK(e()->Write(3 * kRegion + 5, d.data(), d.size(), false));
  std::thread fsyncer([&] { EXPECT_OK(e()->Fsync()); });
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return held; });
  }
  auto query = std::async(std::launch::async, [&] { return e()->CommitAndStats(); });
  const bool answered = query.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  EXPECT_TRUE(answered) << "the status query waited for the hung flush";
  EngineStats st;
  if (answered) {
    Result<EngineStats> r = query.get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    st = *r;
  }
  {
    std::lock_guard<std::mutex> l(mu);
    release = true;
  }
  cv.notify_all();
  fsyncer.join();
  if (!answered) query.wait();
  rig_.dest->SetHook(nullptr);
  EXPECT_EQ(st.commit_step, "flushing the destination");
  EXPECT_EQ(st.committed_hydrated_regions, 0u);
  EXPECT_EQ(st.mode, EngineMode::kReadWrite);
  st = e()->Stats();
  EXPECT_EQ(st.commit_step, "");
  EXPECT_EQ(st.committed_hydrated_regions, 1u);
}

// A rollback that fails (the store cannot even be read back) enters fail
// mode. (A failed write alone no longer does: the rollback reads the store
// that is still open: MetadataFullGoesReadOnlyAndResumesOnceSpaceIsBack.)
TEST_F(FaultTest, RollbackFailureEntersFailMode) {
  rig_.wrap_md = [&](std::unique_ptr<metadata::Metadata> m) -> std::unique_ptr<metadata::Metadata> {
    return std::make_unique<AbortHookMetadata>(
        std::move(m), [] {}, Status::IoError("injected: the store cannot be read back", EIO));
  };
  std::atomic<int> fail_changes{0};
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.on_mode_change = [&](EngineMode m) { fail_changes += m == EngineMode::kFail; };
  ASSERT_OK(rig_.Open(o));
  auto d = Bytes(10, 3);
  ASSERT_OK(e()->Write(3, d.data(), d.size(), false));
  rig_.fs->SetFailWrites(true);
  rig_.fs->SetFailSyncs(true);
  Status s = e()->Fsync();
  EXPECT_EQ(s.ToErrno(), EIO) << s.ToString();
  EXPECT_EQ(e()->mode(), EngineMode::kFail);
  EXPECT_EQ(fail_changes.load(), 1);
  std::vector<uint8_t> b(10);
  EXPECT_TRUE(e()->Read(0, b.data(), b.size()).IsFailed());
  EXPECT_TRUE(e()->Read(5 * kRegion, b.data(), b.size()).IsFailed());
  EXPECT_TRUE(e()->Write(3, d.data(), d.size(), false).IsFailed());
  EXPECT_TRUE(e()->Zero(0, 10, true).IsFailed());
  EXPECT_TRUE(e()->Fsync().IsFailed());
  EXPECT_EQ(e()->Read(0, b.data(), b.size()).ToErrno(), EIO);
  EngineStats st = e()->Stats();
  EXPECT_STREQ(EngineModeName(st.mode), "Fail");
  EXPECT_GE(st.commit_failures, 1u);
  rig_.engine.reset();
  rig_.fs->SetFailWrites(false);
  rig_.fs->SetFailSyncs(false);
}

// The metadata file system fills up (ENOSPC from RocksDB, SPEC §7a): the
// commit fails and rolls back while the file system is still full, the clone
// goes read-only and keeps serving, every later commit fails without any
// metadata I/O, shutdown reports the failed final commit, a restart while
// full is refused with NoSpace, and once space is back nothing committed is
// lost.
TEST_F(FaultTest, MetadataFullGoesReadOnlyAndResumesOnceSpaceIsBack) {
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.commit_interval_ms = 0;
  ASSERT_OK(rig_.Open(o));
  auto one = Bytes(kRegion, 1), two = Bytes(100, 2);
  ASSERT_OK(e()->Write(kRegion, one.data(), kRegion, false));  // region 1
  ASSERT_OK(e()->Write(5 * kRegion + 7, two.data(), two.size(), false));  // region 5, merged copy
  ASSERT_OK(e()->Fsync());
  auto five = Src(5 * kRegion, kRegion);
  std::copy(two.begin(), two.end(), five.begin() + 7);

  rig_.fs->SetNoSpace(true);
  ASSERT_OK(e()->Write(2 * kRegion + 50, two.data(), two.size(), false));  // region 2, in core
  Status s = e()->Fsync();
  EXPECT_EQ(s.ToErrno(), EIO) << s.ToString();
  EXPECT_EQ(e()->mode(), EngineMode::kReadOnly);
  EXPECT_EQ(e()->Stats().hydrated_regions, 2u);  // region 2 rolled back
  EXPECT_EQ(Get(2 * kRegion, kRegion), Src(2 * kRegion, kRegion));

  // Keeps serving: reads, writes to hydrated regions; hydration and fsync fail.
  EXPECT_EQ(Get(kRegion, kRegion), one);
  EXPECT_EQ(Get(5 * kRegion, kRegion), five);
  ASSERT_OK(e()->Write(kRegion + 10, two.data(), two.size(), false));
  std::copy(two.begin(), two.end(), one.begin() + 10);
  EXPECT_EQ(e()->Write(3 * kRegion + 5, two.data(), two.size(), false).ToErrno(), EIO);
  const uint64_t injected = rig_.fs->InjectedFailures();
  for (int i = 0; i < 3; ++i) {
    s = e()->Fsync();
    EXPECT_TRUE(s.IsReadOnly()) << s.ToString();
    EXPECT_EQ(s.ToErrno(), EIO);
    EXPECT_NE(s.message().find("metadata file system is full"), std::string::npos) << s.ToString();
  }
  ASSERT_TRUE(e()->CommitAndStats().ok());
  EXPECT_EQ(e()->Stats().mode, EngineMode::kReadOnly);
  EXPECT_EQ(e()->Stats().commit_failures, 1u);
  s = e()->Shutdown();
  EXPECT_TRUE(s.IsReadOnly()) << s.ToString();
  EXPECT_NE(s.message().find("metadata file system is full"), std::string::npos) << s.ToString();
  EXPECT_EQ(rig_.fs->InjectedFailures(), injected);  // nothing after the failure wrote
  rig_.engine.reset();

  s = rig_.Open(o);  // still full
  EXPECT_TRUE(s.IsNoSpace()) << s.ToString();

  rig_.fs->SetNoSpace(false);
  ASSERT_OK(rig_.Open(o));
  EXPECT_EQ(e()->mode(), EngineMode::kReadWrite);
  EXPECT_EQ(e()->Stats().committed_hydrated_regions, 2u);
  EXPECT_EQ(Get(kRegion, kRegion), one);
  EXPECT_EQ(Get(5 * kRegion, kRegion), five);
  EXPECT_EQ(Get(2 * kRegion, kRegion), Src(2 * kRegion, kRegion));
  ASSERT_OK(e()->Write(2 * kRegion + 50, two.data(), two.size(), false));
  ASSERT_OK(e()->Fsync());
  EXPECT_EQ(e()->Stats().committed_hydrated_regions, 3u);
}

// The metadata file system fills up and the first commit to notice is the
// final one, at shutdown: it fails cleanly, naming the cause and what to do.
TEST_F(FaultTest, MetadataFullAtTheFinalCommitFailsCleanly) {
  EngineOptions o;
  o.knobs.hydration_enabled = false;
  o.commit_interval_ms = 0;
  ASSERT_OK(rig_.Open(o));
  auto one = Bytes(kRegion, 1);
  ASSERT_OK(e()->Write(kRegion, one.data(), kRegion, false));
  ASSERT_OK(e()->Fsync());
  ASSERT_OK(e()->Write(3 * kRegion, one.data(), kRegion, false));
  rig_.fs->SetNoSpace(true);
  Status s = e()->Shutdown();
  EXPECT_EQ(s.ToErrno(), EIO) << s.ToString();
  EXPECT_NE(s.message().find("metadata file system is full"), std::string::npos) << s.ToString();
  EXPECT_EQ(e()->mode(), EngineMode::kReadOnly);
  rig_.engine.reset();
  rig_.fs->SetNoSpace(false);
  ASSERT_OK(rig_.Open(o));
  EXPECT_EQ(e()->Stats().committed_hydrated_regions, 1u);
  EXPECT_EQ(Get(kRegion, kRegion), one);
}

}  // namespace
}  // namespace clonefs
