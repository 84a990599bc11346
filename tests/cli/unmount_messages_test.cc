#include "fuse/unmount_messages.h"

#include <gtest/gtest.h>

namespace clonefs::fuse {
namespace {

bool Has(const std::string& s, const std::string& what) {
  return s.find(what) != std::string::npos;
}

TEST(UnmountMessages, ForceHintOnlyPromisesServingWhenTheDaemonLives) {
  const std::string live = InUseMessage("/mnt/c", "/mnt/c/d.img", {"/dev/loop3"}, true);
  EXPECT_TRUE(Has(live, "losetup -d /dev/loop3")) << live;
  EXPECT_TRUE(Has(live, "keeps serving its users")) << live;
  const std::string dead = InUseMessage("/mnt/c", "/mnt/c/d.img", {}, false);
  EXPECT_FALSE(Has(dead, "keeps serving")) << dead;
  EXPECT_TRUE(Has(dead, "Its daemon has died")) << dead;
  EXPECT_TRUE(Has(dead, "clonefs unmount --force")) << dead;
  EXPECT_TRUE(Has(dead, "losetup -j /mnt/c/d.img")) << dead;
}

TEST(UnmountMessages, AnotherUsersMountNamesItsOwner) {
  EXPECT_EQ(UnmountOwnerProblem("/mnt/a", 1000, 1000), "");
  EXPECT_EQ(UnmountOwnerProblem("/mnt/a", 1000, 0), "");  // root may
  EXPECT_EQ(UnmountOwnerProblem("/mnt/a", std::nullopt, 1001), "");
  const std::string m = UnmountOwnerProblem("/mnt/a", 1000, 1001);
  EXPECT_TRUE(Has(m, "/mnt/a is mounted by uid 1000; only that user or root can unmount it")) << m;
  EXPECT_FALSE(Has(m, "mtab")) << m;
}

constexpr uint64_t kNow = 1'795'000'100'000'000'000ull;  // 2026-11-18
constexpr uint64_t kSecond = 1'000'000'000ull;

StoppingDaemon Daemon() {
  StoppingDaemon d;
  d.source = "nbd+unix:///?socket=/run/s.sock";
  d.source_is_remote = true;
  d.source_state = "connected";
  d.source_timeout_ms = 30'000;
  d.hydrating_regions = 16;
  d.health = "ok";
  return d;
}

// The daemon waits for reads from a source that went silent: the message
// says so, how long it will wait, that nothing is lost and what shortens it
// -- not that the final commit is slow.
TEST(UnmountMessages, ADaemonWaitingForASilentSourceSaysSo) {
  StoppingDaemon d = Daemon();
  d.oldest_request_unix_ns = kNow - 7 * kSecond;  // connected, but silent for 7 s
  const std::string m =
      StillStoppingMessage("/mnt/c", 42, 5, "/var/c.clonefs/clonefs.log", d, "", kNow);
  EXPECT_TRUE(Has(m, "unmounted /mnt/c, but daemon 42 has not exited after 5 s")) << m;
  EXPECT_TRUE(Has(m,
                  "waiting for reads from the source nbd+unix:///?socket=/run/s.sock, which "
                  "has not answered for 7 s"))
      << m;
  EXPECT_TRUE(Has(m, "source timeout (30 s, about 23 s from now)")) << m;
  EXPECT_TRUE(Has(m, "Nothing is lost")) << m;
  EXPECT_TRUE(Has(m, "get the source answering again")) << m;
  EXPECT_TRUE(Has(m, "cannot be mounted again")) << m;
  EXPECT_TRUE(Has(m, "/var/c.clonefs/clonefs.log")) << m;
  EXPECT_FALSE(Has(m, "has not finished its final commit")) << m;

  // Reconnecting (or stalled): the state and its last error are named.
  d.oldest_request_unix_ns = 0;
  d.source_state = "reconnecting";
  d.source_since_unix_ns = kNow - 40 * kSecond;
  d.source_last_error = "connection refused";
  const std::string r = StillStoppingMessage("/mnt/c", 42, 600, "", d, "", kNow);
  EXPECT_TRUE(Has(r, "which has not answered for 40 s (reconnecting: connection refused)")) << r;
  EXPECT_TRUE(Has(r, "source timeout (30 s)")) << r;
  EXPECT_FALSE(Has(r, "from now")) << r;
}

// A file source's reads have no deadline in the copier: the message does
// not promise one, and says how to end the wait if the storage never
// answers.
TEST(UnmountMessages, AFileSourceOnStalledStorageIsNotPromisedATimeout) {
  StoppingDaemon d = Daemon();
  d.source = "/nfs/images/vm.img";
  d.source_is_remote = false;
  d.source_state = "stalled";
  d.source_since_unix_ns = kNow - 50 * kSecond;
  d.oldest_request_unix_ns = kNow - 80 * kSecond;
  const std::string m = StillStoppingMessage("/mnt/c", 42, 600, "/l.log", d, "", kNow);
  EXPECT_TRUE(Has(m,
                  "waiting for reads from the source /nfs/images/vm.img, which has not "
                  "answered for 80 s (stalled)"))
      << m;
  EXPECT_TRUE(Has(m, "those reads end when the storage of the source")) << m;
  EXPECT_TRUE(Has(m, "kill -9 42")) << m;
  EXPECT_FALSE(Has(m, "source timeout")) << m;
}

// A source that answers: the daemon is finishing its work and final commit.
TEST(UnmountMessages, ADaemonWithAnAnsweringSourceIsFinishingItsCommit) {
  StoppingDaemon d = Daemon();
  d.oldest_request_unix_ns = kNow - kSecond / 2;  // an ordinary round trip
  d.health = "degraded: dest I/O error";
  const std::string m = StillStoppingMessage("/mnt/c", 42, 5, "", d, "", kNow);
  EXPECT_TRUE(Has(m,
                  "its source is answering, so it is still finishing 16 hydrations in flight "
                  "and then its final commit"))
      << m;
  EXPECT_TRUE(Has(m, "its health: degraded: dest I/O error")) << m;
  EXPECT_FALSE(Has(m, "waiting for reads")) << m;
}

// A daemon that cannot be asked: what it may be waiting for, and the log.
TEST(UnmountMessages, ADaemonThatCannotBeAskedGetsTheLikelyCauses) {
  const std::string m =
      StillStoppingMessage("/mnt/c", 42, 5, "/l.log", std::nullopt, "connection refused", kNow);
  EXPECT_TRUE(Has(m, "it could not be asked why (connection refused)")) << m;
  EXPECT_TRUE(Has(m, "reads from its source that are still in flight")) << m;
  EXPECT_TRUE(Has(m, "--source-timeout")) << m;
  EXPECT_TRUE(Has(m, "/l.log")) << m;
}

}  // namespace
}  // namespace clonefs::fuse
