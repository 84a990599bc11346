// Unit tests: the "did you mean" of unknown commands.
#include <gtest/gtest.h>

#include "suggest.h"

namespace clonefs::cli {
namespace {

const std::vector<std::string> kNames = {"mount", "unmount", "profile", "status",
                                         "message", "wait", "info", "check"};

TEST(ClosestWord, SuggestsTheNearestCommand) {
  EXPECT_EQ(ClosestWord("umount", kNames), "unmount");  // mount(8)'s spelling
  EXPECT_EQ(ClosestWord("stat", kNames), "status");
  EXPECT_EQ(ClosestWord("mesage", kNames), "message");
  EXPECT_EQ(ClosestWord("chekc", kNames), "check");
  EXPECT_EQ(ClosestWord("mout", kNames), "mount");  // "mount" and "unmount" tie less
}

TEST(ClosestWord, SaysNothingWhenNothingIsClose) {
  EXPECT_EQ(ClosestWord("hydrate", kNames), "");
  EXPECT_EQ(ClosestWord("", kNames), "");
  EXPECT_EQ(ClosestWord("x", kNames), "");     // 1 char: every short word would match
  EXPECT_EQ(ClosestWord("ls", kNames), "");
  EXPECT_EQ(ClosestWord("mount", {}), "");
}

}  // namespace
}  // namespace clonefs::cli
