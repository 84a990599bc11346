#include "unmount_args.h"

#include <gtest/gtest.h>

#include <boost/program_options/errors.hpp>
#include <regex>

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

// The usage line printed after a bad command line names every option
// --help lists (but --help itself).
TEST(UnmountArgs, ShortUsageNamesEveryOption) {
  const std::string help = UnmountUsage(), usage = UnmountShortUsage();
  std::regex option("\n  (-[a-z] \\[ )?(--[a-z-]+)");
  int options = 0;
  for (auto it = std::sregex_iterator(help.begin(), help.end(), option);
       it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[2];
    if (name == "--help") continue;
    ++options;
    EXPECT_NE(usage.find("[" + name), std::string::npos) << name << " missing from: " << usage;
  }
  EXPECT_EQ(options, 2) << help;
}

}  // namespace
}  // namespace clonefs::cli
