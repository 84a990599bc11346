// Unit tests: request/response framing, mountinfo parsing, socket paths.
#include <gtest/gtest.h>

#include "control/discovery.h"
#include "control/protocol.h"

namespace clonefs::control {
namespace {

TEST(ProtocolTest, SplitRequest) {
  Result<std::vector<std::string>> w = SplitRequest("  message\thydration_threshold   5 ");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(*w, (std::vector<std::string>{"message", "hydration_threshold", "5"}));
  EXPECT_FALSE(SplitRequest("").ok());
  EXPECT_FALSE(SplitRequest("   ").ok());
  EXPECT_FALSE(SplitRequest("status\r").ok());
  EXPECT_FALSE(SplitRequest(std::string("a\0b", 3)).ok());
  EXPECT_TRUE(SplitRequest(std::string(kMaxRequestBytes - 1, 'a')).ok());
  EXPECT_FALSE(SplitRequest(std::string(kMaxRequestBytes, 'a')).ok());
}

TEST(ProtocolTest, EncodeRequest) {
  EXPECT_EQ(*EncodeRequest({"message", "rate", "1M"}), "message rate 1M\n");
  EXPECT_FALSE(EncodeRequest({}).ok());
  EXPECT_FALSE(EncodeRequest({"message", ""}).ok());
  EXPECT_FALSE(EncodeRequest({"message", "a b"}).ok());
  EXPECT_FALSE(EncodeRequest({"message", "a\nstatus"}).ok());
}

TEST(ProtocolTest, ResponseRoundTripWithDotStuffing) {
  for (const Response& r : {Response{true, ""}, Response{true, "one\n"},
                            Response{true, ".\n..x\nlast\n"}, Response{false, "bad thing"},
                            Response{false, "first\n  second\n.dot"}}) {
    std::string wire = EncodeResponse(r);
    EXPECT_EQ(wire.substr(wire.size() - 3), "\n.\n");
    Result<Response> back = DecodeResponse(wire);
    ASSERT_TRUE(back.ok()) << wire;
    EXPECT_EQ(back->ok, r.ok);
    EXPECT_EQ(back->text, r.text) << wire;
  }
  EXPECT_EQ(EncodeResponse(Response{false, "no such thing"}), "error no such thing\n.\n");
  EXPECT_EQ(EncodeResponse(Response{true, "x\n"}), "ok\nx\n.\n");
}

// Found by tests/fuzz/control_request_fuzz and control_response_fuzz: an
// error text ending in '\n' (the message usage list) lost its last newline
// on the way, so a decoded response did not re-encode to itself.
TEST(ProtocolTest, ErrorTextEndingInNewlineRoundTrips) {
  for (const std::string& text :
       {std::string("unsupported message 'x'; accepted messages:\n  enable_hydration\n"),
        std::string("first\n"), std::string("first\n\n"), std::string("\n"),
        std::string("\n\n.\n")}) {
    Result<Response> back = DecodeResponse(EncodeResponse(Response{false, text}));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->text, text);
  }
  // What an older daemon sent still decodes as before.
  Result<Response> old = DecodeResponse("error first\nsecond\n.\n");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->text, "first\nsecond");
}

TEST(ProtocolTest, DecodeRejectsTruncatedAndMalformed) {
  EXPECT_FALSE(DecodeResponse("").ok());
  EXPECT_FALSE(DecodeResponse("ok\npayload\n").ok());  // no terminator
  EXPECT_FALSE(DecodeResponse("ok\npayload\n.").ok());
  EXPECT_FALSE(DecodeResponse("okay\n.\n").ok());
  EXPECT_TRUE(DecodeResponse("error\n.\n").ok());
}

TEST(DiscoveryTest, SocketLivesInTheMetadataDirectory) {
  EXPECT_EQ(ControlSocketPath("/var/lib/d.img.clonefs"), "/var/lib/d.img.clonefs/control.sock");
  EXPECT_EQ(ControlSocketPath("/md/"), "/md/control.sock");
}

constexpr char kMountInfo[] =
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "40 22 0:35 / /mnt/my\\040clone rw,nosuid,nodev,relatime shared:20 - fuse.clonefs clonefs "
    "rw,user_id=1000,group_id=1000,allow_other\n"
    "41 22 0:36 / /mnt/other rw,relatime - fuse.sshfs host:/x rw,user_id=0,group_id=0\n"
    "42 22 0:37 / /mnt/plain rw,relatime - fuse clonefs rw,user_id=0,group_id=0\n"
    "43 41 0:38 / /mnt/other rw,relatime - fuse.clonefs clonefs rw,user_id=7,group_id=7\n";

TEST(DiscoveryTest, ParseMountInfo) {
  Result<MountEntry> e = FindMount(kMountInfo, "/mnt/my clone");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->fstype, "fuse.clonefs");
  EXPECT_EQ(e->source, "clonefs");
  ASSERT_TRUE(e->user_id.has_value());
  EXPECT_EQ(*e->user_id, 1000u);
  EXPECT_TRUE(IsClonefsMount(*e));
  EXPECT_FALSE(FindMount(kMountInfo, "/mnt/none").ok());
  e = FindMount(kMountInfo, "/");
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(IsClonefsMount(*e));
  EXPECT_FALSE(e->user_id.has_value());
  // Stacked mounts: the last (topmost) wins.
  e = FindMount(kMountInfo, "/mnt/other");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(IsClonefsMount(*e));
  EXPECT_EQ(*e->user_id, 7u);
  e = FindMount(kMountInfo, "/mnt/plain");
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(IsClonefsMount(*e));
  EXPECT_EQ(ClonefsMounts(kMountInfo).size(), 3u);
  EXPECT_FALSE(ParseMountInfoLine("garbage").ok());
  EXPECT_FALSE(ParseMountInfoLine("1 2 3 4 5 6 7").ok());
}

TEST(DiscoveryTest, NotAClonefsMount) {
  Result<std::string> s = ResolveControlSocket("/");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("/ is not a clonefs mount"), std::string::npos)
      << s.status().message();
  s = ResolveControlSocket("/proc/self");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("is not a clonefs mount"), std::string::npos);
  s = ResolveControlSocket("/nonexistent/dir");
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsNotFound());
}

}  // namespace
}  // namespace clonefs::control
