// SPEC §7a through the real `clonefs` command: a source truncated under a
// live clone. Before, the copier took the missing tail for a hole, "hydrated"
// it as zeros and status said complete. Now nothing past the new end is
// hydrated, the copier stops, reads that need the source fail with EIO,
// status and the log say why, and unmount still works.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "metadata/metadata.h"
#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kRegion = 64 << 10;

size_t Count(const std::string& text, const std::string& needle) {
  size_t n = 0;
  for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

// First hydrated region at or after `from` in the clone's metadata (read
// offline), or the region count if none; -1 on error.
int64_t FirstHydratedFrom(const std::string& metadata_dir, uint64_t from) {
  auto md = OpenMetadataOffline(metadata_dir);
  return md ? static_cast<int64_t>(md->FindNextHydratedRegion(from)) : -1;
}

class SourceChangeMountTest : public ::testing::Test {
 protected:
  void SetUp() override { CLONEFS_REQUIRE_MOUNTABLE(); }
  CloneDir c_;
};

TEST_F(SourceChangeMountTest, TruncatedSourceStopsTheCloneAndIsReported) {
  constexpr uint64_t kSize = 64 * kMiB, kNewSize = 32 * kMiB;
  WriteRandomFile(c_.src, kSize, 11);
  std::vector<uint8_t> original = ReadAll(c_.src);
  ASSERT_EQ(original.size(), kSize);
  RunResult m = c_.Mount("--region-size 64K --rate 10M");
  ASSERT_EQ(m.code, 0) << m.out;
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the copier is under way
  ASSERT_TRUE(ShOk("truncate -s 32M " + Quote(c_.src)));

  // The daemon notices without any request (it re-examines the source about
  // once a second).
  const std::string status_json = ClonefsBinary() + " status --json " + Quote(c_.mnt);
  RunResult st;
  for (int i = 0; i < 200; ++i) {
    st = Sh(status_json);
    if (st.out.find("source-changed") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(st.code, 0) << st.out;
  EXPECT_NE(st.out.find("\"state\": \"source-changed\""), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\"source_state\": \"changed\""), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("shrank from 67108864 to 33554432 bytes"), std::string::npos) << st.out;
  EXPECT_NE(st.out.find("\"hydration_done\": false"), std::string::npos) << st.out;
  RunResult human = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
  const size_t state_at = human.out.find("State:");
  ASSERT_NE(state_at, std::string::npos) << human.out;
  const std::string state_line =
      human.out.substr(state_at, human.out.find('\n', state_at) - state_at);
  EXPECT_NE(state_line.find("source-changed"), std::string::npos) << human.out;
  EXPECT_EQ(state_line.find("complete"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("Source state: changed:"), std::string::npos) << human.out;
  EXPECT_EQ(human.out.find("(done)"), std::string::npos) << human.out;
  RunResult w = Sh(ClonefsBinary() + " wait --quiet " + Quote(c_.mnt));
  EXPECT_EQ(w.code, 3) << w.out;

  // Reads: hydrated regions hold the original bytes; everything else, the
  // whole tail past the new end in particular, fails with EIO.
  int fd = open(c_.exposed().c_str(), O_RDONLY | O_DIRECT);
  ASSERT_GE(fd, 0) << strerror(errno);
  void* p = nullptr;
  ASSERT_EQ(posix_memalign(&p, 4096, kRegion), 0);
  std::unique_ptr<uint8_t, decltype(&free)> buf(static_cast<uint8_t*>(p), free);
  uint64_t readable = 0;
  for (uint64_t off = 0; off < kSize; off += kRegion) {
    ssize_t n = pread(fd, buf.get(), kRegion, static_cast<off_t>(off));
    if (n == static_cast<ssize_t>(kRegion)) {
      EXPECT_LT(off, kNewSize) << "read past the new end of the source succeeded at " << off;
      EXPECT_EQ(memcmp(buf.get(), original.data() + off, kRegion), 0) << "other data at " << off;
      ++readable;
    } else {
      EXPECT_EQ(n, -1) << off;
      EXPECT_EQ(errno, EIO) << off << ": " << strerror(errno);
    }
  }
  close(fd);
  // A write that needs a hydration fails too.
  fd = open(c_.exposed().c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const char x = 'X';
  bool wrote = pwrite(fd, &x, 1, static_cast<off_t>(kSize - kRegion + 5)) == 1;
  int werr = errno;
  EXPECT_FALSE(wrote);
  if (!wrote) {
    EXPECT_EQ(werr, EIO) << strerror(werr);
  }
  close(fd);

  const std::string log = c_.LogText();
  EXPECT_EQ(Count(log, "changed under the live clone"), 1u) << log;
  EXPECT_NE(log.find("error: source"), std::string::npos) << log;

  RunResult u = c_.Unmount();
  ASSERT_EQ(u.code, 0) << u.out;
  EXPECT_FALSE(c_.IsMounted());
  // Nothing at or past the new end is hydrated; what is, is the original.
  EXPECT_EQ(FirstHydratedFrom(c_.metadata, kNewSize / kRegion),
            static_cast<int64_t>(kSize / kRegion));
  EXPECT_GE(HydratedRegions(c_.metadata), static_cast<int64_t>(readable));
  // The source is as the test left it: the original's first 32 MiB.
  std::vector<uint8_t> now = ReadAll(c_.src);
  ASSERT_EQ(now.size(), kNewSize);
  EXPECT_TRUE(std::equal(now.begin(), now.end(), original.begin()));
}

// A source that grew under the live clone and was put back (truncated to its
// size: same bytes, new mtime) is refused at the next mount only for its
// mtime, and the refusal says how to mount again: the `touch` it names
// works, and the clone resumes with what it held. Before, the refusal only
// said to mount "with its own source", which the user was doing.
TEST_F(SourceChangeMountTest, PutBackSourceIsRefusedWithTheTouchThatResumesIt) {
  constexpr uint64_t kSize = 8 * kMiB;
  WriteRandomFile(c_.src, kSize, 12);
  const std::string sha = Sha256(c_.src);
  RunResult m = c_.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(ShOk("printf KEPT | dd of=" + Quote(c_.exposed()) +
                   " bs=1 seek=3000000 conv=notrunc,fsync status=none"));
  ASSERT_TRUE(ShOk("truncate -s 9M " + Quote(c_.src)));
  RunResult st;
  for (int i = 0; i < 200; ++i) {
    st = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
    if (st.out.find("Source state: changed:") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_NE(st.out.find("restore the source and mount again"), std::string::npos) << st.out;
  ASSERT_EQ(c_.Unmount().code, 0);

  ASSERT_TRUE(ShOk("truncate -s 8M " + Quote(c_.src)));
  ASSERT_EQ(Sha256(c_.src), sha);
  RunResult r = c_.Mount();
  ASSERT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("only the source's modification time differs"), std::string::npos) << r.out;
  const size_t at = r.out.find("touch -m -d @");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string touch = r.out.substr(at, r.out.find(';', at) - at);
  ASSERT_TRUE(ShOk(touch)) << touch;
  r = c_.Mount();
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(Sh("dd if=" + Quote(c_.exposed()) + " bs=1 skip=3000000 count=4 status=none").out,
            "KEPT");
  EXPECT_EQ(c_.Unmount().code, 0);

  // A content change is refused as before, with no touch to offer.
  ASSERT_TRUE(ShOk("printf Z | dd of=" + Quote(c_.src) + " bs=1 seek=0 conv=notrunc status=none"));
  r = c_.Mount();
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.find("touch -m -d"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace clonefs::testing
