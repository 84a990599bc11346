#include "mount_args.h"

#include <gtest/gtest.h>

#include <boost/program_options/errors.hpp>
#include <regex>

#include "fuse/mount_options.h"

namespace clonefs::cli {
namespace {

bool Mentions(const std::vector<std::string>& problems, const std::string& what) {
  for (const auto& p : problems) {
    if (p.find(what) != std::string::npos) return true;
  }
  return false;
}

TEST(MountArgs, DefaultsComeFromTheStructs) {
  ParsedMount p = ParseMountArgs({"src.img", "dst.img", "/mnt/c"});
  ASSERT_TRUE(p.problems.empty()) << p.problems[0];
  const fuse::MountOptions d;
  EXPECT_EQ(p.options.source, "src.img");
  EXPECT_EQ(p.options.dest, "dst.img");
  EXPECT_EQ(p.options.mountpoint, "/mnt/c");
  EXPECT_EQ(p.options.region_size, d.region_size);
  EXPECT_EQ(p.options.knobs.hydration_threshold, d.knobs.hydration_threshold);
  EXPECT_EQ(p.options.knobs.hydration_batch_size, d.knobs.hydration_batch_size);
  EXPECT_EQ(p.options.knobs.rate_bytes_per_s, 0u);
  EXPECT_TRUE(p.options.knobs.hydration_enabled);
  EXPECT_TRUE(p.options.discard_passdown);
  EXPECT_TRUE(p.options.direct_io);
  EXPECT_FALSE(p.options.foreground);
  EXPECT_FALSE(p.options.allow_other);
  EXPECT_EQ(p.options.threads, d.threads);
  EXPECT_EQ(p.options.source_timeout_ms, 30000u);
}

TEST(MountArgs, EveryOptionReachesTheStruct) {
  ParsedMount p = ParseMountArgs({"--region-size",
                                  "1M",
                                  "--metadata",
                                  "/var/md",
                                  "--name",
                                  "disk.raw",
                                  "--no-hydration",
                                  "--no-discard-passdown",
                                  "--hydration-threshold",
                                  "8",
                                  "--hydration-batch-size",
                                  "4",
                                  "--rate",
                                  "50M",
                                  "--allow-other",
                                  "-o",
                                  "ro",
                                  "-o",
                                  "noatime,nodev",
                                  "--foreground",
                                  "--log-level",
                                  "debug",
                                  "--log-file",
                                  "/var/log/c.log",
                                  "--on-complete",
                                  "echo done",
                                  "--threads",
                                  "16",
                                  "--source-timeout",
                                  "2.5s",
                                  "--buffered",
                                  "a",
                                  "b",
                                  "c"});
  ASSERT_TRUE(p.problems.empty()) << p.problems[0];
  const auto& o = p.options;
  EXPECT_EQ(o.region_size, 1u << 20);
  EXPECT_EQ(o.metadata_dir, "/var/md");
  EXPECT_EQ(o.name, "disk.raw");
  EXPECT_FALSE(o.knobs.hydration_enabled);
  EXPECT_FALSE(o.discard_passdown);
  EXPECT_EQ(o.knobs.hydration_threshold, 8u);
  EXPECT_EQ(o.knobs.hydration_batch_size, 4u);
  EXPECT_EQ(o.knobs.rate_bytes_per_s, 50u << 20);
  EXPECT_TRUE(o.allow_other);
  EXPECT_EQ(o.fuse_options, (std::vector<std::string>{"ro,noatime,nodev"}));
  EXPECT_TRUE(o.foreground);
  EXPECT_EQ(o.log_level, LogLevel::kDebug);
  EXPECT_EQ(o.log_file, "/var/log/c.log");
  EXPECT_EQ(o.on_complete, "echo done");
  EXPECT_EQ(o.threads, 16u);
  EXPECT_EQ(o.source_timeout_ms, 2500u);
  EXPECT_EQ(o.given.source_timeout_ms, 2500u);
  EXPECT_FALSE(o.direct_io);
}

TEST(MountArgs, ReportsEveryProblemAtOnce) {
  ParsedMount p = ParseMountArgs({"--region-size", "5000", "--rate", "fast", "--threads", "0",
                                  "--hydration-threshold", "x", "--log-level", "loud", "--name",
                                  "a/b", "--source-timeout", "0", "only-source"});
  EXPECT_TRUE(Mentions(p.problems, "region size 5000 is not a power of two"));
  EXPECT_TRUE(Mentions(p.problems, "--rate 'fast'"));
  EXPECT_TRUE(Mentions(p.problems, "--threads 0"));
  EXPECT_TRUE(Mentions(ParseMountArgs({"--fuse-transport", "fast", "a", "b", "c"}).problems,
                       "--fuse-transport fast is not a transport; use auto, uring or dev"));
  EXPECT_TRUE(Mentions(p.problems, "--hydration-threshold 'x'"));
  EXPECT_TRUE(Mentions(p.problems, "--log-level 'loud'"));
  EXPECT_TRUE(Mentions(p.problems, "--name 'a/b'"));
  EXPECT_TRUE(Mentions(p.problems, "DEST is missing"));
  EXPECT_TRUE(Mentions(p.problems, "MOUNTPOINT is missing"));
  EXPECT_TRUE(Mentions(p.problems, "--source-timeout '0'"));
  EXPECT_EQ(p.problems.size(), 9u);
}

TEST(MountArgs, MaxReadIsRefusedInAnyCommaList) {
  auto p = ParseMountArgs({"-o", "noatime,max_read=65536", "a", "b", "c"});
  ASSERT_EQ(p.problems.size(), 1u);
  EXPECT_TRUE(Mentions(p.problems, "-o max_read=65536 is not supported"));
  EXPECT_TRUE(ParseMountArgs({"-o", "noatime,nodev", "a", "b", "c"}).problems.empty());
}

TEST(MountArgs, RegionSizeRange) {
  EXPECT_TRUE(
      Mentions(ParseMountArgs({"--region-size", "2K", "a", "b", "c"}).problems, "out of range"));
  EXPECT_TRUE(
      Mentions(ParseMountArgs({"--region-size", "2G", "a", "b", "c"}).problems, "out of range"));
  EXPECT_TRUE(ParseMountArgs({"--region-size", "4K", "a", "b", "c"}).problems.empty());
  EXPECT_TRUE(ParseMountArgs({"--region-size", "1G", "a", "b", "c"}).problems.empty());
}

TEST(MountArgs, MalformedCommandLinesThrow) {
  EXPECT_THROW(ParseMountArgs({"--no-such-option", "a", "b", "c"}), boost::program_options::error);
  EXPECT_THROW(ParseMountArgs({"a", "b", "c", "d"}), boost::program_options::error);
  EXPECT_THROW(ParseMountArgs({"a", "b", "c", "--rate"}), boost::program_options::error);
}

TEST(MountArgs, HelpDocumentsEveryOption) {
  EXPECT_TRUE(ParseMountArgs({"--help"}).help);
  const std::string u = MountUsage();
  for (const char* opt :
       {"--region-size", "--metadata", "--name", "--no-hydration", "--no-discard-passdown",
        "--hydration-threshold", "--hydration-batch-size", "--rate", "--allow-other", "-o",
        "--foreground", "--log-level", "--log-file", "--on-complete", "--threads", "--buffered",
        "--hydration ", "--discard-passdown ", "--direct-io", "--no-allow-other",
        "--no-passthrough", "--passthrough ", "--reset-settings", "--on-complete '' removes", "-o '' removes",
        "SOURCE DEST MOUNTPOINT"}) {
    EXPECT_NE(u.find(opt), std::string::npos) << opt;
  }
}

// --log-file's help names the log the daemon keeps without it: the file in
// the metadata directory (docs/cli.md, "Where the log goes"), not only
// syslog or stderr.
TEST(MountArgs, HelpNamesTheDefaultLogFile) {
  std::string u = MountUsage();
  // Unwrap boost's columns: one line of text per option.
  u = std::regex_replace(u, std::regex(" *\\n {20,}"), " ");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(u, m, std::regex("--log-file FILE +([^\\n]*)"))) << u;
  EXPECT_NE(m[1].str().find("default: METADATA/clonefs.log"), std::string::npos) << m[1];
}

// The options given are what the clone stores (SPEC §5): each one in
// `given`, nothing that was not given.
TEST(MountArgs, GivenOptionsAreRecordedForStoring) {
  ParsedMount p = ParseMountArgs({"a", "b", "c"});
  ASSERT_TRUE(p.problems.empty()) << p.problems[0];
  EXPECT_TRUE(p.options.given.empty());
  EXPECT_FALSE(p.options.region_size_given);
  EXPECT_FALSE(p.options.reset_settings);

  p = ParseMountArgs({"--rate",
                      "1M",
                      "--region-size",
                      "128K",
                      "--on-complete",
                      "touch F",
                      "--name",
                      "x.img",
                      "--no-discard-passdown",
                      "--buffered",
                      "--allow-other",
                      "--no-passthrough",
                      "-o",
                      "ro",
                      "--threads",
                      "8",
                      "--hydration-threshold",
                      "3",
                      "--hydration-batch-size",
                      "2",
                      "--no-hydration",
                      "--log-level",
                      "debug",
                      "--foreground",
                      "--fuse-transport",
                      "dev",
                      "a",
                      "b",
                      "c"});
  ASSERT_TRUE(p.problems.empty()) << p.problems[0];
  const clone::Settings& g = p.options.given;
  EXPECT_EQ(g.fuse_transport, "dev");
  EXPECT_EQ(p.options.fuse_transport, "dev");
  EXPECT_EQ(g.rate_bytes_per_s, 1u << 20);
  EXPECT_EQ(g.on_complete, "touch F");
  EXPECT_EQ(g.name, "x.img");
  EXPECT_EQ(g.discard_passdown, false);
  EXPECT_EQ(g.direct_io, false);
  EXPECT_EQ(g.allow_other, true);
  EXPECT_EQ(g.passthrough, false);
  EXPECT_FALSE(p.options.passthrough);
  EXPECT_EQ(g.fuse_options, "ro");
  EXPECT_EQ(g.threads, 8u);
  EXPECT_EQ(g.hydration_threshold, 3u);
  EXPECT_EQ(g.hydration_batch_size, 2u);
  EXPECT_EQ(g.hydration_enabled, false);
  EXPECT_TRUE(g.unknown.empty());
  EXPECT_TRUE(p.options.region_size_given);
  EXPECT_EQ(p.options.region_size, 128u << 10);

  // The ways back, and clearing.
  p = ParseMountArgs({"--hydration", "--discard-passdown", "--direct-io", "--no-allow-other",
                      "--passthrough", "--on-complete", "", "-o", "", "--reset-settings", "a",
                      "b", "c"});
  ASSERT_TRUE(p.problems.empty()) << p.problems[0];
  EXPECT_EQ(p.options.given.hydration_enabled, true);
  EXPECT_EQ(p.options.given.discard_passdown, true);
  EXPECT_EQ(p.options.given.direct_io, true);
  EXPECT_EQ(p.options.given.allow_other, false);
  EXPECT_EQ(p.options.given.passthrough, true);
  EXPECT_EQ(p.options.given.on_complete, "");
  EXPECT_EQ(p.options.given.fuse_options, "");
  EXPECT_TRUE(p.options.fuse_options.empty());
  EXPECT_TRUE(p.options.reset_settings);

  // Both of a pair is a contradiction.
  p = ParseMountArgs({"--hydration", "--no-hydration", "--buffered", "--direct-io",
                      "--passthrough", "--no-passthrough", "a", "b", "c"});
  EXPECT_TRUE(Mentions(p.problems, "--hydration and --no-hydration contradict each other"));
  EXPECT_TRUE(Mentions(p.problems, "--passthrough and --no-passthrough contradict each other"));
  EXPECT_TRUE(Mentions(p.problems, "--direct-io and --buffered contradict each other"));
}

TEST(MountDefaults, PathsBecomeAbsoluteAndNamesDefault) {
  fuse::MountOptions o;
  o.source = "/images/./base.img";
  o.dest = "/var/lib/clones/../vm/disk.img";
  o.mountpoint = "/mnt/clone/";
  fuse::MountOptions r = fuse::ResolveMountDefaults(o);
  EXPECT_EQ(r.source, "/images/base.img");
  EXPECT_EQ(r.dest, "/var/lib/vm/disk.img");
  EXPECT_EQ(r.mountpoint, "/mnt/clone");
  EXPECT_EQ(r.metadata_dir, "/var/lib/vm/disk.img.clonefs");
  EXPECT_EQ(r.name, "disk.img");
  o.metadata_dir = "/md";
  o.name = "x.raw";
  r = fuse::ResolveMountDefaults(o);
  EXPECT_EQ(r.metadata_dir, "/md");
  EXPECT_EQ(r.name, "x.raw");
}

// Each bad name has its own reason, and a name is never printed raw.
TEST(MountArgs, NamesAreValidatedWithSpecificMessages) {
  auto problems = [](const std::string& name) {
    return ParseMountArgs({"--name", name, "s.img", "d.img", "/mnt/c"}).problems;
  };
  EXPECT_TRUE(Mentions(problems(""), "--name is empty"));
  EXPECT_TRUE(Mentions(problems(".."), "names a directory"));
  EXPECT_TRUE(Mentions(problems("a/b"), "contains '/'"));
  const std::vector<std::string> long_name = problems(std::string(300, 'x'));
  EXPECT_TRUE(Mentions(long_name, "300 bytes long; a file name is at most 255 bytes"));
  EXPECT_FALSE(Mentions(long_name, "path component"));
  const std::vector<std::string> ctl = problems("a\033[31mb\n");
  ASSERT_EQ(ctl.size(), 1u);
  EXPECT_TRUE(Mentions(ctl, "'a\\x1b[31mb\\x0a' contains a control character"));
  EXPECT_EQ(ctl[0].find('\033'), std::string::npos);
  EXPECT_TRUE(problems(std::string(255, 'x')).empty());
  EXPECT_TRUE(problems("disk \xc3\xa9.img").empty());  // UTF-8 is fine
  // The default name, DEST's basename, is held to the same rules.
  const auto from_dest = ParseMountArgs({"s.img", "/d/x\ty.img", "/mnt/c"}).problems;
  EXPECT_TRUE(Mentions(from_dest, "the file name taken from DEST 'x\\x09y.img' contains a "
                                  "control character"));
}

// --rate and the rate message read sizes with the one parser: MB is MiB,
// "/s" is allowed, and a refusal says why.
TEST(MountArgs, RateUsesTheSharedParser) {
  EXPECT_EQ(ParseMountArgs({"--rate", "5MB", "s", "d", "/m"}).options.knobs.rate_bytes_per_s,
            5u << 20);
  EXPECT_EQ(ParseMountArgs({"--rate", "5M/s", "s", "d", "/m"}).options.knobs.rate_bytes_per_s,
            5u << 20);
  auto p = ParseMountArgs({"--rate", "5X", "--region-size", "1.5M", "s", "d", "/m"});
  EXPECT_TRUE(Mentions(p.problems, "--rate '5X' has an unknown unit 'X'"));
  EXPECT_TRUE(Mentions(p.problems, "--region-size '1.5M'"));
  EXPECT_TRUE(Mentions(ParseMountArgs({"--region-size", "64K/s", "s", "d", "/m"}).problems,
                       "--region-size '64K/s' has an unknown unit"));
}

TEST(MountDefaults, SourceUrisAreKeptAsGiven) {
  fuse::MountOptions o;
  o.dest = "/d.img";
  o.mountpoint = "/mnt";
  for (const char* uri : {"nbd://127.0.0.1:10809/disk", "nbd+unix:///disk?socket=/run/n.sock",
                          "https://example.com/images/base.img", "ssh://u@h/srv/x.img"}) {
    o.source = uri;
    EXPECT_TRUE(fuse::IsSourceUri(uri)) << uri;
    EXPECT_EQ(fuse::ResolveMountDefaults(o).source, uri);
  }
  for (const char* path : {"base.img", "/a://b", "./x://y", "://x", "a b://c"}) {
    EXPECT_FALSE(fuse::IsSourceUri(path)) << path;
  }
}

}  // namespace
}  // namespace clonefs::cli
