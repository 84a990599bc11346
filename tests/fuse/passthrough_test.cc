// Passthrough without the kernel (passthrough.h): which opens are passed
// through, the registration after INIT and its fallbacks, the status words.
#include "fuse/passthrough.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include "control/fake_engine.h"
#include "fuse/fake_transport.h"
#include "fuse/fuse_kernel_abi.h"

namespace clonefs::fuse {
namespace {

using control::testing::FakeEngineForControlTests;
using testing::FakeTransport;

TEST(ChooseOpen, TheRules) {
  struct Case {
    bool ready, complete;
    EngineMode mode;
    bool writable;
    int64_t live;
    OpenChoice want;
  };
  const EngineMode rw = EngineMode::kReadWrite, ro = EngineMode::kReadOnly,
                   fail = EngineMode::kFail;
  const OpenChoice daemon = OpenChoice::kDaemon, pass = OpenChoice::kPassthrough,
                   refuse = OpenChoice::kRefuse;
  const Case cases[] = {
      // Not registered or not complete: the daemon, whatever else holds.
      {false, false, rw, true, 0, daemon},
      {false, true, rw, true, 0, daemon},
      {true, false, rw, true, 0, daemon},
      {true, false, rw, false, 0, daemon},
      // Complete, read-write: every open.
      {true, true, rw, true, 0, pass},
      {true, true, rw, false, 3, pass},
      // Read-only: reading opens only; a writable one goes to the daemon,
      // unless passed-through opens are live (the kernel would fail it).
      {true, true, ro, false, 0, pass},
      {true, true, ro, false, 2, pass},
      {true, true, ro, true, 0, daemon},
      {true, true, ro, true, 1, refuse},
      // Fail mode: never.
      {true, true, fail, false, 0, daemon},
      {true, true, fail, true, 0, daemon},
      {true, true, fail, false, 1, refuse},
  };
  for (const Case& c : cases) {
    OpenSituation s;
    s.backing_ready = c.ready;
    s.complete = c.complete;
    s.mode = c.mode;
    s.writable = c.writable;
    s.live_passthrough = c.live;
    EXPECT_EQ(ChooseOpen(s), c.want)
        << "ready " << c.ready << " complete " << c.complete << " mode " << static_cast<int>(c.mode)
        << " writable " << c.writable << " live " << c.live;
  }
}

// An appending open writes past the image's end only: never passed through
// (the kernel would extend dest), refused while passed-through opens are
// live, also in read-write mode where every other open is passed through.
TEST(ChooseOpen, AnAppendingOpenIsNeverPassedThrough) {
  OpenSituation s;
  s.backing_ready = true;
  s.complete = true;
  s.writable = true;
  EXPECT_EQ(ChooseOpen(s), OpenChoice::kPassthrough);
  s.appending = true;
  EXPECT_EQ(ChooseOpen(s), OpenChoice::kDaemon);
  s.live_passthrough = 2;
  EXPECT_EQ(ChooseOpen(s), OpenChoice::kRefuse);
  s.complete = false;  // the daemon serves every open anyway
  EXPECT_EQ(ChooseOpen(s), OpenChoice::kDaemon);
}

// dest changed under the clone: never passed through; refused while
// passed-through opens are live (the kernel would fail a daemon open).
TEST(ChooseOpen, DestChangedIsNeverPassedThrough) {
  for (bool writable : {false, true}) {
    OpenSituation s;
    s.backing_ready = true;
    s.complete = true;
    s.writable = writable;
    s.dest_changed = true;
    EXPECT_EQ(ChooseOpen(s), OpenChoice::kDaemon) << writable;
    s.live_passthrough = 1;
    EXPECT_EQ(ChooseOpen(s), OpenChoice::kRefuse) << writable;
  }
}

class PassthroughTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = std::make_unique<FakeTransport>();
    transport_ = t.get();
    FuseChannel::Options co;
    co.passthrough = true;
    channel_ = std::make_unique<FuseChannel>(co, std::move(t));
    engine_.SetHydrated(10, /*commit=*/true);  // of 160: not complete
  }
  PassthroughOptions Enabled() {
    PassthroughOptions o;
    o.enabled = true;
    o.backing_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    backing_fd_ = o.backing_fd;
    return o;
  }
  static InitInfo Negotiated() {
    InitInfo i;
    i.kernel_minor = 45;
    i.passthrough_offered = true;
    i.passthrough_requested = true;
    i.reply_sent = true;
    return i;
  }

  FakeEngineForControlTests engine_;
  FakeTransport* transport_ = nullptr;
  std::unique_ptr<FuseChannel> channel_;
  int backing_fd_ = -1;
};

TEST_F(PassthroughTest, RegistersOnceAfterInitAndPassesOpensThroughOnceComplete) {
  transport_->SetNextBackingId(7);
  Passthrough p(&engine_, channel_.get(), Enabled());
  EXPECT_TRUE(p.wanted());
  EXPECT_EQ(p.Describe(), "waiting for the FUSE connection");
  p.ConnectionReady(Negotiated());
  ASSERT_EQ(transport_->ioctls().size(), 1u);
  EXPECT_EQ(transport_->ioctls()[0].request, kabi::kDevIocBackingOpen);
  EXPECT_EQ(transport_->ioctls()[0].arg, backing_fd_);
  EXPECT_EQ(p.Describe(), "waiting for completion");

  // Before completion: the daemon serves the open.
  EXPECT_EQ(p.DecideOpen(O_RDWR).choice, OpenChoice::kDaemon);
  struct stat st;
  EXPECT_FALSE(p.BackingAttributes(&st)) << "no passed-through open yet";

  engine_.SetHydrated(160, true);
  EXPECT_EQ(p.Describe(), "active");
  Passthrough::Decision d = p.DecideOpen(O_RDWR | O_DIRECT);
  EXPECT_EQ(d.choice, OpenChoice::kPassthrough);
  EXPECT_EQ(d.backing_id, 7);
  d = p.DecideOpen(O_RDONLY);
  EXPECT_EQ(d.choice, OpenChoice::kPassthrough);
  EXPECT_EQ(d.backing_id, 7) << "every open names the one backing file";
  EXPECT_EQ(p.passthrough_opens(), 2u);
  EXPECT_TRUE(p.BackingAttributes(&st));
  EXPECT_EQ(transport_->ioctls().size(), 1u) << "registered once, not per open";

  // Read-only mode with both opens live: reading opens still pass, a
  // writable one is refused (the daemon may not take it while they live).
  engine_.SetMode(EngineMode::kReadOnly);
  EXPECT_EQ(p.Describe(), "active for read-only opens (metadata read-only)");
  EXPECT_EQ(p.DecideOpen(O_RDONLY).choice, OpenChoice::kPassthrough);
  EXPECT_EQ(p.DecideOpen(O_WRONLY).choice, OpenChoice::kRefuse);
  for (int i = 0; i < 3; ++i) p.PassthroughReleased();
  EXPECT_EQ(p.DecideOpen(O_WRONLY).choice, OpenChoice::kDaemon)
      << "with none live the daemon serves it";

  p.Shutdown();
  auto io = transport_->ioctls();
  ASSERT_EQ(io.size(), 2u);
  EXPECT_EQ(io[1].request, kabi::kDevIocBackingClose);
  EXPECT_EQ(io[1].arg, 7);
  EXPECT_EQ(p.Describe(), "off: unmounting");
  engine_.SetMode(EngineMode::kReadWrite);
  EXPECT_EQ(p.DecideOpen(O_RDWR).choice, OpenChoice::kDaemon) << "no backing id after shutdown";
  p.Shutdown();
  EXPECT_EQ(transport_->ioctls().size(), 2u) << "closed once";
}

TEST_F(PassthroughTest, FallsBackWithAReason) {
  engine_.SetHydrated(160, true);
  {
    PassthroughOptions o;
    o.enabled = false;
    Passthrough p(&engine_, channel_.get(), o);
    EXPECT_FALSE(p.wanted());
    p.ConnectionReady(Negotiated());
    EXPECT_EQ(p.Describe(), "off: disabled (--no-passthrough)");
    EXPECT_EQ(p.DecideOpen(O_RDWR).choice, OpenChoice::kDaemon);
  }
  {
    PassthroughOptions o;
    o.enabled = true;
    o.unavailable = "dest is not a regular file (the kernel passes through to regular files only)";
    Passthrough p(&engine_, channel_.get(), o);
    EXPECT_FALSE(p.wanted());
    p.ConnectionReady(Negotiated());
    EXPECT_EQ(p.Describe(), "off: " + o.unavailable);
  }
  {
    Passthrough p(&engine_, channel_.get(), Enabled());
    InitInfo old;
    old.kernel_minor = 38;
    old.reply_sent = true;
    p.ConnectionReady(old);
    EXPECT_EQ(p.Describe().rfind("off: the kernel does not offer FUSE passthrough", 0), 0u)
        << p.Describe();
    EXPECT_NE(p.Describe().find("7.38"), std::string::npos) << p.Describe();
    EXPECT_EQ(p.DecideOpen(O_RDWR).choice, OpenChoice::kDaemon);
  }
  {
    transport_->FailBackingOpen(ELOOP);
    Passthrough p(&engine_, channel_.get(), Enabled());
    p.ConnectionReady(Negotiated());
    EXPECT_NE(p.Describe().find("stacked too deep"), std::string::npos) << p.Describe();
    EXPECT_EQ(p.DecideOpen(O_RDWR).choice, OpenChoice::kDaemon);
  }
  {
    transport_->FailBackingOpen(EPERM);
    Passthrough p(&engine_, channel_.get(), Enabled());
    p.ConnectionReady(Negotiated());
    EXPECT_EQ(p.Describe().rfind("off: ", 0), 0u) << p.Describe();
    EXPECT_EQ(p.DecideOpen(O_RDONLY).choice, OpenChoice::kDaemon);
    p.Shutdown();
    EXPECT_EQ(transport_->ioctls().back().request, kabi::kDevIocBackingOpen)
        << "nothing registered, nothing to close";
  }
}

TEST_F(PassthroughTest, FailModeIsNeverPassedThrough) {
  Passthrough p(&engine_, channel_.get(), Enabled());
  p.ConnectionReady(Negotiated());
  engine_.SetHydrated(160, true);
  engine_.SetMode(EngineMode::kFail);
  EXPECT_EQ(p.Describe(), "off: fail mode (every I/O fails)");
  EXPECT_EQ(p.DecideOpen(O_RDONLY).choice, OpenChoice::kDaemon);
}

TEST_F(PassthroughTest, AChangedDestIsNeverPassedThroughAndStatusSaysSo) {
  Passthrough p(&engine_, channel_.get(), Enabled());
  p.ConnectionReady(Negotiated());
  engine_.SetHydrated(160, true);
  EXPECT_EQ(p.Describe(), "active");
  ASSERT_EQ(p.DecideOpen(O_RDONLY).choice, OpenChoice::kPassthrough);
  engine_.SetDestChange("dest shrank");
  // Status said "active" here while no open was passed through any more.
  EXPECT_EQ(p.Describe(), "off: dest changed under the clone (every request fails)");
  EXPECT_EQ(p.DecideOpen(O_RDONLY).choice, OpenChoice::kRefuse) << "one passed-through open live";
  p.PassthroughReleased();
  EXPECT_EQ(p.DecideOpen(O_RDONLY).choice, OpenChoice::kDaemon);
}

}  // namespace
}  // namespace clonefs::fuse
