#include "unmount_args.h"

#include <gtest/gtest.h>

#include <boost/program_options/errors.hpp>

namespace clonefs::cli {
namespace {

TEST(UnmountArgs, Parses) {
  ParsedUnmount p = ParseUnmountArgs({"/mnt/c"});
  EXPECT_TRUE(p.problems.empty());
  EXPECT_EQ(p.options.mountpoint, "/mnt/c");
  EXPECT_FALSE(p.options.force);
  p = ParseUnmountArgs({"--force", "--timeout", "5", "/mnt/c"});
  EXPECT_TRUE(p.options.force);
  EXPECT_EQ(p.options.wait_seconds, 5u);
}

TEST(UnmountArgs, Problems) {
  EXPECT_EQ(ParseUnmountArgs({}).problems.size(), 1u);
  EXPECT_EQ(ParseUnmountArgs({"--timeout", "soon"}).problems.size(), 2u);
  EXPECT_THROW(ParseUnmountArgs({"/a", "/b"}), boost::program_options::error);
  EXPECT_THROW(ParseUnmountArgs({"--lazy", "/a"}), boost::program_options::error);
  EXPECT_TRUE(ParseUnmountArgs({"-h"}).help);
}

}  // namespace
}  // namespace clonefs::cli
