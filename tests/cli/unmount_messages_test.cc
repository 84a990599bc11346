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

}  // namespace
}  // namespace clonefs::fuse
