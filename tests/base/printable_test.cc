#include "base/printable.h"

#include <gtest/gtest.h>

#include <string>

namespace clonefs {
namespace {

TEST(Printable, ControlCharactersAreEscaped) {
  EXPECT_EQ(Printable("a\nb\x1b[31m\x7f"), "a\\x0ab\\x1b[31m\\x7f");
  EXPECT_EQ(Printable("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_TRUE(HasControlCharacter("x\ty"));
  EXPECT_FALSE(HasControlCharacter("x y"));
}

TEST(ShellWord, BareWhenSafeElseSingleQuoted) {
  EXPECT_EQ(ShellWord("/srv/images/disk-1.img"), "/srv/images/disk-1.img");
  EXPECT_EQ(ShellWord("@1700000000.123456789"), "@1700000000.123456789");
  EXPECT_EQ(ShellWord("my disk.img"), "'my disk.img'");
  EXPECT_EQ(ShellWord("it's"), "'it'\\''s'");
  EXPECT_EQ(ShellWord("$HOME"), "'$HOME'");
  EXPECT_EQ(ShellWord(""), "''");
}

}  // namespace
}  // namespace clonefs
