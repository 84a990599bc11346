// FuseChannel without the kernel (fuse_channel.h): the kernel ABI layouts it
// relies on, the INIT reply patch (only when asked for, only when offered,
// only for INIT's own reply), and the pass-through of everything else.
#include "fuse/fuse_channel.h"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>

#include "fuse/fake_transport.h"
#include "fuse/fuse_kernel_abi.h"

namespace clonefs::fuse {
namespace {

using testing::FakeTransport;
using testing::InitRequest;

constexpr uint64_t kInitUnique = 2;
// What a 6.18 kernel offers (among others): INIT_EXT, and PASSTHROUGH in flags2.
constexpr uint64_t kOfferWithPassthrough = kabi::kInitExt | (1u << 0) | kabi::kPassthrough;
constexpr uint64_t kOfferWithout = kabi::kInitExt | (1u << 0);

// libfuse 3.14's INIT reply: INIT_EXT set, flags2 and max_stack_depth zero.
kabi::InitOut LibfuseInitReply() {
  kabi::InitOut o;
  std::memset(&o, 0, sizeof(o));
  o.major = 7;
  o.minor = 38;
  o.max_readahead = 128 << 10;
  o.flags = static_cast<uint32_t>(kabi::kInitExt) | (1u << 0) | (1u << 5);
  o.max_background = 64;
  o.congestion_threshold = 48;
  o.max_write = 1 << 20;
  o.time_gran = 1;
  o.max_pages = 256;
  o.flags2 = 0x1;  // some other ext flag, kept
  return o;
}

kabi::InitOut ParseInitOut(const std::string& reply) {
  kabi::InitOut o;
  std::memset(&o, 0, sizeof(o));
  EXPECT_GE(reply.size(), sizeof(kabi::OutHeader) + sizeof(o));
  std::memcpy(&o, reply.data() + sizeof(kabi::OutHeader),
              std::min(sizeof(o), reply.size() - sizeof(kabi::OutHeader)));
  return o;
}

class FuseChannelTest : public ::testing::Test {
 protected:
  void Make(bool passthrough, uint32_t depth = 1) {
    auto t = std::make_unique<FakeTransport>();
    transport_ = t.get();
    FuseChannel::Options o;
    o.passthrough = passthrough;
    o.max_stack_depth = depth;
    channel_ = std::make_unique<FuseChannel>(o, std::move(t));
    channel_->set_on_init([this](const InitInfo& i) {
      ++init_calls_;
      init_ = i;
    });
  }

  // Feeds one request through Read.
  void Receive(const std::string& request) {
    transport_->QueueRequest(request);
    char buf[4096];
    ASSERT_EQ(channel_->Read(3, buf, sizeof(buf)), static_cast<ssize_t>(request.size()));
    EXPECT_EQ(std::string(buf, request.size()), request) << "requests are never changed";
  }

  // Sends a reply (header + payload as libfuse does: two iovecs) through
  // Writev; returns what reached the transport.
  std::string Reply(uint64_t unique, int32_t error, const void* payload, size_t len) {
    kabi::OutHeader h;
    h.len = static_cast<uint32_t>(sizeof(h) + len);
    h.error = error;
    h.unique = unique;
    std::string payload_before(static_cast<const char*>(payload), len);
    struct iovec iov[2] = {{&h, sizeof(h)}, {const_cast<void*>(payload), len}};
    const ssize_t n = channel_->Writev(3, iov, len == 0 ? 1 : 2);
    EXPECT_EQ(n, static_cast<ssize_t>(sizeof(h) + len));
    EXPECT_EQ(std::string(static_cast<const char*>(payload), len), payload_before)
        << "the caller's reply buffer is never written";
    auto r = transport_->replies();
    return r.empty() ? std::string() : r.back();
  }
  std::string Original(uint64_t unique, int32_t error, const void* payload, size_t len) {
    kabi::OutHeader h;
    h.len = static_cast<uint32_t>(sizeof(h) + len);
    h.error = error;
    h.unique = unique;
    std::string s(reinterpret_cast<const char*>(&h), sizeof(h));
    s.append(static_cast<const char*>(payload), len);
    return s;
  }

  FakeTransport* transport_ = nullptr;
  std::unique_ptr<FuseChannel> channel_;
  int init_calls_ = 0;
  InitInfo init_;
};

TEST(KernelAbi, LayoutsAndConstantsAreTheKernels) {
  // fuse_init_out: flags2 at 32, max_stack_depth right after it at 36.
  EXPECT_EQ(offsetof(kabi::InitOut, flags2), 32u);
  EXPECT_EQ(offsetof(kabi::InitOut, max_stack_depth), 36u);
  EXPECT_EQ(sizeof(kabi::InitOut), 64u);
  // fuse_open_out: backing_id is the int32 after open_flags (was padding).
  EXPECT_EQ(offsetof(kabi::OpenOut, backing_id), 12u);
  EXPECT_EQ(sizeof(kabi::OpenOut), 16u);
  // FUSE_PASSTHROUGH is bit 37: bit 5 of flags2.
  EXPECT_EQ(kabi::kPassthrough >> 32, 1u << 5);
  EXPECT_EQ(kabi::kFopenPassthrough, 1u << 7);
  EXPECT_EQ(kabi::kInitExt, 1u << 30);
  EXPECT_EQ(sizeof(kabi::BackingMap), 16u);
}

TEST_F(FuseChannelTest, InitReplyAsksForPassthroughWhenTheKernelOffersIt) {
  Make(/*passthrough=*/true);
  Receive(InitRequest(kInitUnique, 45, kOfferWithPassthrough));
  const kabi::InitOut in = LibfuseInitReply();
  const std::string sent = Reply(kInitUnique, 0, &in, sizeof(in));
  ASSERT_EQ(sent.size(), sizeof(kabi::OutHeader) + sizeof(in));
  EXPECT_EQ(sent.substr(0, sizeof(kabi::OutHeader)),
            Original(kInitUnique, 0, &in, sizeof(in)).substr(0, sizeof(kabi::OutHeader)))
      << "the header (length included) is unchanged";
  const kabi::InitOut out = ParseInitOut(sent);
  EXPECT_EQ(out.flags2, in.flags2 | (1u << 5)) << "FUSE_PASSTHROUGH added, other flags2 kept";
  EXPECT_EQ(out.max_stack_depth, 1u);
  // Every other byte as libfuse wrote it.
  kabi::InitOut expect = in;
  expect.flags2 = out.flags2;
  expect.max_stack_depth = 1;
  EXPECT_EQ(std::memcmp(&out, &expect, sizeof(out)), 0);
  ASSERT_EQ(init_calls_, 1);
  EXPECT_EQ(init_.kernel_minor, 45u);
  EXPECT_TRUE(init_.passthrough_offered);
  EXPECT_TRUE(init_.passthrough_requested);
  EXPECT_TRUE(init_.reply_sent);
}

TEST_F(FuseChannelTest, InitReplyIsUntouchedWhenTheKernelDoesNotOffer) {
  Make(true);
  Receive(InitRequest(kInitUnique, 38, kOfferWithout));
  const kabi::InitOut in = LibfuseInitReply();
  EXPECT_EQ(Reply(kInitUnique, 0, &in, sizeof(in)), Original(kInitUnique, 0, &in, sizeof(in)));
  ASSERT_EQ(init_calls_, 1);
  EXPECT_FALSE(init_.passthrough_offered);
  EXPECT_FALSE(init_.passthrough_requested);
  EXPECT_EQ(init_.kernel_minor, 38u);
}

TEST_F(FuseChannelTest, PassthroughBitWithoutInitExtIsNotAnOffer) {
  Make(true);
  // Without FUSE_INIT_EXT the kernel's flags2 means nothing.
  Receive(InitRequest(kInitUnique, 45, kabi::kPassthrough | 1u));
  const kabi::InitOut in = LibfuseInitReply();
  EXPECT_EQ(Reply(kInitUnique, 0, &in, sizeof(in)), Original(kInitUnique, 0, &in, sizeof(in)));
  EXPECT_FALSE(init_.passthrough_offered);
}

TEST_F(FuseChannelTest, InitReplyIsUntouchedWhenPassthroughIsNotWanted) {
  Make(/*passthrough=*/false);
  Receive(InitRequest(kInitUnique, 45, kOfferWithPassthrough));
  const kabi::InitOut in = LibfuseInitReply();
  EXPECT_EQ(Reply(kInitUnique, 0, &in, sizeof(in)), Original(kInitUnique, 0, &in, sizeof(in)));
  ASSERT_EQ(init_calls_, 1);
  EXPECT_TRUE(init_.passthrough_offered);
  EXPECT_FALSE(init_.passthrough_requested);
}

TEST_F(FuseChannelTest, ReplyWithoutInitExtCannotCarryTheRequest) {
  Make(true);
  Receive(InitRequest(kInitUnique, 45, kOfferWithPassthrough));
  kabi::InitOut in = LibfuseInitReply();
  in.flags &= ~static_cast<uint32_t>(kabi::kInitExt);
  EXPECT_EQ(Reply(kInitUnique, 0, &in, sizeof(in)), Original(kInitUnique, 0, &in, sizeof(in)));
  EXPECT_FALSE(init_.passthrough_requested);
}

TEST_F(FuseChannelTest, OnlyTheInitRepliesUniqueIsPatched) {
  Make(true);
  Receive(InitRequest(kInitUnique, 45, kOfferWithPassthrough));
  // A reply to another request (same size as an INIT reply) goes out as is,
  // also before the INIT reply.
  const kabi::InitOut in = LibfuseInitReply();
  EXPECT_EQ(Reply(kInitUnique + 1, 0, &in, sizeof(in)),
            Original(kInitUnique + 1, 0, &in, sizeof(in)));
  EXPECT_EQ(init_calls_, 0);
  EXPECT_NE(Reply(kInitUnique, 0, &in, sizeof(in)), Original(kInitUnique, 0, &in, sizeof(in)));
  EXPECT_EQ(init_calls_, 1);
  // After INIT nothing is patched, not even a reply reusing INIT's unique.
  EXPECT_EQ(Reply(kInitUnique, 0, &in, sizeof(in)), Original(kInitUnique, 0, &in, sizeof(in)));
  kabi::OpenOut open;
  std::memset(&open, 0, sizeof(open));
  open.open_flags = kabi::kFopenDirectIo;
  EXPECT_EQ(Reply(9, 0, &open, sizeof(open)), Original(9, 0, &open, sizeof(open)));
  EXPECT_EQ(init_calls_, 1);
}

TEST_F(FuseChannelTest, NoInitSeenNothingPatched) {
  Make(true);
  const kabi::InitOut in = LibfuseInitReply();
  EXPECT_EQ(Reply(kInitUnique, 0, &in, sizeof(in)), Original(kInitUnique, 0, &in, sizeof(in)));
  EXPECT_EQ(init_calls_, 0);
}

TEST_F(FuseChannelTest, ErrorAndShortInitRepliesAreUntouched) {
  Make(true);
  Receive(InitRequest(kInitUnique, 45, kOfferWithPassthrough));
  // libfuse refusing INIT (EPROTO): header only.
  const char none[1] = {0};
  EXPECT_EQ(Reply(kInitUnique, -EPROTO, none, 0), Original(kInitUnique, -EPROTO, none, 0));
  EXPECT_EQ(init_calls_, 0) << "a refused INIT is no connection";
  // A reply too short to hold flags2 and max_stack_depth (protocol < 7.23).
  Make(true);
  Receive(InitRequest(kInitUnique, 22, kOfferWithPassthrough));
  const kabi::InitOut in = LibfuseInitReply();
  EXPECT_EQ(Reply(kInitUnique, 0, &in, 24), Original(kInitUnique, 0, &in, 24));
  EXPECT_FALSE(init_.passthrough_requested);
}

TEST_F(FuseChannelTest, MaxStackDepthIsClampedToWhatTheKernelAccepts) {
  for (auto [asked, sent] : {std::pair<uint32_t, uint32_t>{0, 1}, {1, 1}, {2, 2}, {7, 2}}) {
    Make(true, asked);
    Receive(InitRequest(kInitUnique, 45, kOfferWithPassthrough));
    const kabi::InitOut in = LibfuseInitReply();
    EXPECT_EQ(ParseInitOut(Reply(kInitUnique, 0, &in, sizeof(in))).max_stack_depth, sent)
        << "asked " << asked;
  }
}

TEST_F(FuseChannelTest, ErrorsPassThroughWithTheirErrno) {
  Make(true);
  char buf[256];
  errno = 0;
  EXPECT_EQ(channel_->Read(3, buf, sizeof(buf)), -1);
  EXPECT_EQ(errno, ENODEV);
  Receive(InitRequest(kInitUnique, 45, kOfferWithPassthrough));
  transport_->FailWrites(ENOENT);  // the request was interrupted
  const kabi::InitOut in = LibfuseInitReply();
  kabi::OutHeader h{static_cast<uint32_t>(sizeof(h) + sizeof(in)), 0, kInitUnique};
  struct iovec iov[2] = {{&h, sizeof(h)}, {const_cast<kabi::InitOut*>(&in), sizeof(in)}};
  errno = 0;
  EXPECT_EQ(channel_->Writev(3, iov, 2), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(init_calls_, 0);
}

TEST_F(FuseChannelTest, BackingIoctlsNameTheFileAndTheId) {
  Make(true);
  transport_->SetNextBackingId(5);
  Result<int32_t> id = channel_->OpenBacking(42);
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(*id, 5);
  EXPECT_TRUE(channel_->CloseBacking(5).ok());
  auto io = transport_->ioctls();
  ASSERT_EQ(io.size(), 2u);
  EXPECT_EQ(io[0].request, kabi::kDevIocBackingOpen);
  EXPECT_EQ(io[0].arg, 42);
  EXPECT_EQ(io[1].request, kabi::kDevIocBackingClose);
  EXPECT_EQ(io[1].arg, 5);

  transport_->FailBackingOpen(EPERM);
  id = channel_->OpenBacking(42);
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().sys_errno(), EPERM);
  EXPECT_EQ(id.status().code(), Status::Code::kPermission);
}

}  // namespace
}  // namespace clonefs::fuse
