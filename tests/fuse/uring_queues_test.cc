// The FUSE-over-io_uring transport without the kernel's FUSE (uring_queues.h,
// fuse_channel.h): rebuilding a request from an entry's buffers, storing a
// reply into them, the INIT negotiation, and the kernel facts it reads.
#include "fuse/uring_queues.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "fuse/fake_transport.h"
#include "fuse/fuse_channel.h"
#include "fuse/fuse_kernel_abi.h"

namespace clonefs::fuse {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kIn = sizeof(kabi::InHeader);

// An entry's buffers as UringQueues lays them out: the header at the start
// of a page, the payload on the next page.
struct Entry {
  Entry() : mem(2 * kPage + kCap) {
    char* base = mem.data() + (kPage - reinterpret_cast<uintptr_t>(mem.data()) % kPage);
    header = reinterpret_cast<kabi::UringReqHeader*>(base);
    payload = base + kPage;
    std::memset(header, 0, sizeof(*header));
  }
  static constexpr size_t kCap = 64 * 1024;
  std::vector<char> mem;
  kabi::UringReqHeader* header;
  char* payload;
};

kabi::InHeader In(uint32_t opcode, uint32_t len, uint64_t unique) {
  kabi::InHeader h;
  std::memset(&h, 0, sizeof(h));
  h.len = len;
  h.opcode = opcode;
  h.unique = unique;
  h.nodeid = 2;
  return h;
}

TEST(UringRequest, AWriteIsRebuiltAsDevFuseDeliversItWithItsPayloadPageAligned) {
  Entry e;
  constexpr uint32_t kWrite = 16, kOpLen = 40, kData = 8192;
  const kabi::InHeader in = In(kWrite, kIn + kOpLen + kData, 77);
  std::memcpy(e.header->in_out, &in, sizeof(in));
  for (uint32_t i = 0; i < kOpLen; ++i) e.header->op_in[i] = static_cast<uint8_t>(i + 1);
  for (uint32_t i = 0; i < kData; ++i) e.payload[i] = static_cast<char>(i * 7);
  e.header->ring_ent_in_out.payload_sz = kData;
  auto r =
      AssembleUringRequest(*e.header, e.payload, kPage - sizeof(kabi::UringReqHeader), Entry::kCap);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  char* req = *r;
  EXPECT_EQ(req, e.payload - kIn - kOpLen) << "the payload is used where it lies (no copy)";
  EXPECT_EQ(reinterpret_cast<uintptr_t>(req + kIn + kOpLen) % kPage, 0u);
  EXPECT_EQ(std::memcmp(req, &in, kIn), 0);
  EXPECT_EQ(std::memcmp(req + kIn, e.header->op_in, kOpLen), 0);
  for (uint32_t i = 0; i < kData; ++i) ASSERT_EQ(req[kIn + kOpLen + i], static_cast<char>(i * 7));
}

TEST(UringRequest, AnEmptyOpHeaderPutsTheArgumentsRightAfterTheInHeader) {
  Entry e;
  // LOOKUP since 6.14: an empty first argument, the name in the payload.
  const char name[] = "image.raw";
  const kabi::InHeader in = In(1, kIn + sizeof(name), 5);
  std::memcpy(e.header->in_out, &in, sizeof(in));
  std::memcpy(e.payload, name, sizeof(name));
  e.header->ring_ent_in_out.payload_sz = sizeof(name);
  auto r = AssembleUringRequest(*e.header, e.payload, 200, Entry::kCap);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, e.payload - kIn);
  EXPECT_STREQ(*r + kIn, name);
}

TEST(UringRequest, LengthsThatDoNotAddUpAreRefused) {
  Entry e;
  auto with = [&](uint32_t len, uint32_t payload_sz, size_t room, size_t cap) {
    const kabi::InHeader in = In(15, len, 9);
    std::memcpy(e.header->in_out, &in, sizeof(in));
    e.header->ring_ent_in_out.payload_sz = payload_sz;
    return AssembleUringRequest(*e.header, e.payload, room, cap).ok();
  };
  EXPECT_TRUE(with(kIn + 40 + 100, 100, 3000, 1000));
  EXPECT_FALSE(with(kIn + 40 + 100, 2000, 3000, 1000)) << "payload beyond the buffer";
  EXPECT_FALSE(with(kIn + 10, 100, 3000, 1000)) << "len shorter than header and payload";
  EXPECT_FALSE(with(kIn + 129 + 100, 100, 3000, 1000)) << "op header longer than op_in";
  EXPECT_FALSE(with(kIn + 100 + 100, 100, 120, 1000)) << "no room before the payload";
}

TEST(UringReply, HeaderGoesToInOutAndTheRestToThePayload) {
  Entry e;
  kabi::OutHeader h = {0, 0, 77};
  const std::string a = "hello ", b = "world";
  h.len = static_cast<uint32_t>(sizeof(h) + a.size() + b.size());
  struct iovec iov[3] = {{&h, sizeof(h)},
                         {const_cast<char*>(a.data()), a.size()},
                         {const_cast<char*>(b.data()), b.size()}};
  auto n = StoreUringReply(iov, 3, e.header, e.payload, Entry::kCap);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, h.len);
  EXPECT_EQ(std::memcmp(e.header->in_out, &h, sizeof(h)), 0);
  EXPECT_EQ(std::string(e.payload, 11), "hello world");
  EXPECT_EQ(e.header->ring_ent_in_out.payload_sz, 11u);
}

TEST(UringReply, AnErrorReplyHasNoPayloadAndAnOversizedOneIsRefusedUntouched) {
  Entry e;
  kabi::OutHeader err = {sizeof(kabi::OutHeader), -5, 3};
  e.header->ring_ent_in_out.payload_sz = 999;
  struct iovec one = {&err, sizeof(err)};
  ASSERT_TRUE(StoreUringReply(&one, 1, e.header, e.payload, Entry::kCap).ok());
  EXPECT_EQ(e.header->ring_ent_in_out.payload_sz, 0u);

  Entry f;
  std::vector<char> big(Entry::kCap + 1, 'x');
  kabi::OutHeader h = {0, 0, 4};
  struct iovec iov[2] = {{&h, sizeof(h)}, {big.data(), big.size()}};
  EXPECT_FALSE(StoreUringReply(iov, 2, f.header, f.payload, Entry::kCap).ok());
  EXPECT_EQ(f.header->ring_ent_in_out.payload_sz, 0u);
  EXPECT_EQ(f.payload[0], 0);
  struct iovec short_header = {&h, 8};
  EXPECT_FALSE(StoreUringReply(&short_header, 1, f.header, f.payload, Entry::kCap).ok());
}

TEST(UringQueueGrowth, AQueueGrowsWhileOneEntryIsStillWaiting) {
  // A request that finds every entry busy waits for the next commit, never
  // for an entry registered after it: growth must come before the last
  // waiting entry is taken.
  EXPECT_TRUE(UringQueueShouldGrow(2, 1, 64)) << "one of two busy: one waiting left";
  EXPECT_TRUE(UringQueueShouldGrow(2, 2, 64));
  EXPECT_FALSE(UringQueueShouldGrow(3, 1, 64)) << "two still waiting";
  EXPECT_TRUE(UringQueueShouldGrow(3, 2, 64));
  EXPECT_FALSE(UringQueueShouldGrow(64, 64, 64)) << "at the limit";
  EXPECT_FALSE(UringQueueShouldGrow(1, 1, 1));
}

TEST(UringQueueGrowth, AQueuesThreadsShareItsEntries) {
  // Each entry holds a payload buffer of the largest request (1 MiB): a
  // queue's threads together stay within the queue's limit, rounded up.
  EXPECT_EQ(UringEntriesPerThread(64, 4), 16u);
  EXPECT_EQ(UringEntriesPerThread(64, 1), 64u);
  EXPECT_EQ(UringEntriesPerThread(65, 4), 17u);
  EXPECT_EQ(UringEntriesPerThread(8, 4), 2u);
  EXPECT_EQ(UringEntriesPerThread(1, 4), 1u) << "every thread keeps one";
  EXPECT_EQ(UringEntriesPerThread(3, 0), 3u);
}

TEST(UringQueueGrowth, ThreadsPerQueueMakeAtLeastEightInAllUpToFourPerQueue) {
  EXPECT_EQ(UringThreadsPerQueue(1), 4u);
  EXPECT_EQ(UringThreadsPerQueue(2), 4u);
  EXPECT_EQ(UringThreadsPerQueue(3), 2u);
  EXPECT_EQ(UringThreadsPerQueue(4), 2u);
  EXPECT_EQ(UringThreadsPerQueue(8), 1u);
  EXPECT_EQ(UringThreadsPerQueue(256), 1u);
  EXPECT_EQ(UringThreadsPerQueue(0), 4u);
}

TEST(UringKernel, CpuListsAsTheKernelPrintsThem) {
  EXPECT_EQ(*CpuCountFromList("0"), 1u);
  EXPECT_EQ(*CpuCountFromList("0-3\n"), 4u);
  EXPECT_EQ(*CpuCountFromList("0,2-5"), 5u) << "one queue per possible CPU";
  EXPECT_FALSE(CpuCountFromList("").ok());
  EXPECT_FALSE(CpuCountFromList("x-3").ok());
  EXPECT_FALSE(CpuCountFromList("3-1").ok());
  auto here = PossibleCpus();
  ASSERT_TRUE(here.ok()) << here.status().ToString();
  EXPECT_GE(*here, static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
}

TEST(UringKernel, TheModuleParameterSaysWhetherIoUringIsOn) {
  char dir[] = "/tmp/clonefs-uring-param-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string p = std::string(dir) + "/enable_uring";
  std::ofstream(p) << "Y\n";
  EXPECT_EQ(KernelUringUnavailable(p), "");
  std::ofstream(p) << "N\n";
  EXPECT_NE(KernelUringUnavailable(p).find("echo 1 > " + p), std::string::npos);
  unlink(p.c_str());
  EXPECT_NE(KernelUringUnavailable(p).find("6.14"), std::string::npos)
      << "no parameter: a kernel without FUSE over io_uring";
  rmdir(dir);
}

// The channel's side of the negotiation.
class UringNegotiationTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kInitUnique = 2;
  void Make(bool with_queues, bool passthrough) {
    if (with_queues) {
      auto q = UringQueues::Create({});
      if (!q.ok()) {
        // A sandbox without io_uring (seccomp, kernel.io_uring_disabled).
        const char* ci = getenv("CI");
        if (ci != nullptr && std::string(ci) == "true") FAIL() << q.status().ToString();
        GTEST_SKIP() << "io_uring is unavailable here: " << q.status().ToString();
      }
      queues_ = std::move(*q);
    }
    auto t = std::make_unique<testing::FakeTransport>();
    transport_ = t.get();
    FuseChannel::Options o;
    o.passthrough = passthrough;
    o.uring = queues_.get();
    channel_ = std::make_unique<FuseChannel>(o, std::move(t));
    channel_->set_on_init([this](const InitInfo& i) { init_ = i; });
  }
  // INIT in, libfuse 3.14's reply out; returns the reply as sent.
  kabi::InitOut Exchange(uint64_t offer) {
    const std::string req = testing::InitRequest(kInitUnique, 45, offer);
    transport_->QueueRequest(req);
    char buf[4096];
    EXPECT_EQ(channel_->Read(3, buf, sizeof(buf)), static_cast<ssize_t>(req.size()));
    kabi::InitOut o;
    std::memset(&o, 0, sizeof(o));
    o.major = 7;
    o.minor = 38;
    o.flags = static_cast<uint32_t>(kabi::kInitExt);
    o.max_write = 1 << 20;
    o.max_pages = 256;
    kabi::OutHeader h = {static_cast<uint32_t>(sizeof(h) + sizeof(o)), 0, kInitUnique};
    struct iovec iov[2] = {{&h, sizeof(h)}, {&o, sizeof(o)}};
    EXPECT_EQ(channel_->Writev(3, iov, 2), static_cast<ssize_t>(sizeof(h) + sizeof(o)));
    kabi::InitOut sent;
    std::memcpy(&sent, transport_->replies().back().data() + sizeof(h), sizeof(sent));
    return sent;
  }
  std::unique_ptr<UringQueues> queues_;
  testing::FakeTransport* transport_ = nullptr;
  std::unique_ptr<FuseChannel> channel_;
  InitInfo init_;
};

constexpr uint32_t kUringBit = static_cast<uint32_t>(kabi::kOverIoUring >> 32);
constexpr uint32_t kPassthroughBit = static_cast<uint32_t>(kabi::kPassthrough >> 32);

TEST_F(UringNegotiationTest, AcceptedWhenOfferedAndTheQueuesExist) {
  Make(true, false);
  const kabi::InitOut sent = Exchange(kabi::kInitExt | kabi::kOverIoUring);
  EXPECT_EQ(sent.flags2, kUringBit);
  EXPECT_TRUE(init_.uring_offered);
  EXPECT_TRUE(init_.uring_requested);
  EXPECT_EQ(init_.max_write, 1u << 20);
  EXPECT_EQ(init_.max_pages, 256u);
}

TEST_F(UringNegotiationTest, NotAcceptedWithoutQueuesOrWithoutAnOffer) {
  Make(false, false);
  EXPECT_EQ(Exchange(kabi::kInitExt | kabi::kOverIoUring).flags2, 0u);
  EXPECT_TRUE(init_.uring_offered);
  EXPECT_FALSE(init_.uring_requested);

  Make(true, false);
  EXPECT_EQ(Exchange(kabi::kInitExt).flags2, 0u);
  EXPECT_FALSE(init_.uring_offered);
  EXPECT_FALSE(init_.uring_requested);

  Make(true, false);  // without FUSE_INIT_EXT, flags2 means nothing
  EXPECT_EQ(Exchange(kabi::kOverIoUring).flags2, 0u);
  EXPECT_FALSE(init_.uring_requested);
}

TEST_F(UringNegotiationTest, PassthroughAndIoUringTogether) {
  Make(true, true);
  const kabi::InitOut sent = Exchange(kabi::kInitExt | kabi::kOverIoUring | kabi::kPassthrough);
  EXPECT_EQ(sent.flags2, kUringBit | kPassthroughBit);
  EXPECT_EQ(sent.max_stack_depth, 1u);
  EXPECT_TRUE(init_.uring_requested);
  EXPECT_TRUE(init_.passthrough_requested);
}

TEST_F(UringNegotiationTest, AnInterruptLibfuseCannotPlaceYetIsRetriedOnlyWhereTheServerSays) {
  Make(false, false);
  std::vector<uint64_t> asked;
  channel_->set_retry_interrupt([&](uint64_t target) {
    asked.push_back(target);
    return target == 41;  // a request an io_uring thread is serving
  });
  auto reply = [&](uint64_t unique, int32_t error) {
    kabi::OutHeader h = {sizeof(kabi::OutHeader), error, unique};
    struct iovec iov = {&h, sizeof(h)};
    EXPECT_EQ(channel_->Writev(3, &iov, 1), static_cast<ssize_t>(sizeof(h)))
        << "the caller sees a written reply either way";
    return transport_->replies().size();
  };
  EXPECT_EQ(reply(41 | kabi::kIntReqBit, -EAGAIN), 0u) << "kept from the kernel";
  EXPECT_EQ(reply(42 | kabi::kIntReqBit, -EAGAIN), 1u)
      << "a /dev/fuse request's: the kernel retries";
  EXPECT_EQ(reply(41 | kabi::kIntReqBit, -ENOSYS), 2u) << "only EAGAIN asks for a retry";
  EXPECT_EQ(reply(41, -EAGAIN), 3u) << "an ordinary reply";
  EXPECT_EQ(asked, (std::vector<uint64_t>{41, 42}));
}

TEST_F(UringNegotiationTest, RepliesOfOtherThreadsGoToTheDevice) {
  Make(true, false);
  // No io_uring thread serves this request: the reply goes out by writev.
  kabi::OutHeader h = {sizeof(kabi::OutHeader), -2, 41};
  struct iovec iov = {&h, sizeof(h)};
  ASSERT_EQ(channel_->Writev(3, &iov, 1), static_cast<ssize_t>(sizeof(h)));
  ASSERT_EQ(transport_->replies().size(), 1u);
  EXPECT_EQ(std::memcmp(transport_->replies()[0].data(), &h, sizeof(h)), 0);
}

}  // namespace
}  // namespace clonefs::fuse
