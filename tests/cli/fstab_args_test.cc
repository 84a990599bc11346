// The mount(8) form (cli/fstab_args.h): `clonefs SOURCE MOUNTPOINT -o
// OPTIONS`, as mount.fuse3 runs it for an fstab line, becomes the
// arguments of `clonefs mount`.
#include "fstab_args.h"

#include <gtest/gtest.h>

#include "mount_args.h"

namespace clonefs::cli {
namespace {

Args Translate(const Args& in) {
  Result<Args> r = FstabToMountArgs(in);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Args{};
}

TEST(FstabArgs, DestAndCloneOptionsBecomeMountArguments) {
  EXPECT_EQ(Translate({"/srv/base.img", "/mnt/c", "-o", "dest=/var/lib/d.img"}),
            (Args{"/srv/base.img", "/var/lib/d.img", "/mnt/c"}));
  EXPECT_EQ(Translate({"https://h/base.img", "/mnt/c", "-o",
                       "rw,dest=/d.img,rate=100M,region_size=1M,no_hydration,allow-other,"
                       "metadata=/var/lib/m"}),
            (Args{"https://h/base.img", "/d.img", "/mnt/c", "--rate=100M", "--region-size=1M",
                  "--no-hydration", "--allow-other", "--metadata=/var/lib/m"}));
  // Several -o, and -oLIST glued as mount.fuse3 may pass it.
  EXPECT_EQ(Translate({"-o", "dest=/d.img", "s.img", "/mnt/c", "-orate=5M"}),
            (Args{"s.img", "/d.img", "/mnt/c", "--rate=5M"}));
}

TEST(FstabArgs, FstabAndSystemdOptionsAreIgnoredAndMountFlagsGoToFuse) {
  EXPECT_EQ(Translate({"s.img", "/mnt/c", "-o",
                       "defaults,nofail,_netdev,x-systemd.automount,x-systemd.requires=a.mount,"
                       "noauto,user,comment=x,dest=/d.img,nodev,nosuid,noatime"}),
            (Args{"s.img", "/d.img", "/mnt/c", "-o", "nodev,nosuid,noatime"}));
}

TEST(FstabArgs, TheResultParsesAsAMount) {
  ParsedMount p = ParseMountArgs(Translate(
      {"s.img", "/mnt/c", "-o", "dest=/d.img,rate=2M,hydration_threshold=8,allow_other,nofail"}));
  ASSERT_TRUE(p.problems.empty()) << p.problems[0];
  EXPECT_EQ(p.options.source, "s.img");
  EXPECT_EQ(p.options.dest, "/d.img");
  EXPECT_EQ(p.options.mountpoint, "/mnt/c");
  EXPECT_TRUE(p.options.allow_other);
  // An option clonefs mount does not know is refused by its parser.
  EXPECT_THROW(ParseMountArgs(Translate({"s.img", "/mnt/c", "-o", "dest=/d.img,bogus=1"})),
               std::exception);
}

// What `clonefs mount` says about an -o option, parsed as the mount(8)
// form's arguments ("" when it accepts them).
std::string MountParseError(const Args& fstab_form) {
  try {
    ParsedMount p = ParseMountArgs(Translate(fstab_form));
    return p.problems.empty() ? "" : p.problems[0];
  } catch (const std::exception& e) {
    return e.what();
  }
}

TEST(FstabArgs, AValueOnAFlagOrAMissingValueIsRefusedByName) {
  // allow_other=1 once became "--allow-other 1": a fourth path, refused as
  // "too many positional options" without naming the option.
  std::string e = MountParseError({"s.img", "/mnt/c", "-o", "dest=/d.img,allow_other=1"});
  EXPECT_NE(e.find("--allow-other"), std::string::npos) << e;
  e = MountParseError({"s.img", "/mnt/c", "-o", "dest=/d.img,no_hydration=yes"});
  EXPECT_NE(e.find("--no-hydration"), std::string::npos) << e;
  // rate without a value once took SOURCE as the rate ("--rate 's.img' is
  // not a rate", then "MOUNTPOINT is missing"), last in the list or before
  // a mount flag.
  for (const char* list : {"dest=/d.img,rate", "dest=/d.img,rate,nodev", "rate,dest=/d.img"}) {
    e = MountParseError({"s.img", "/mnt/c", "-o", list});
    EXPECT_NE(e.find("argument for option '--rate' is missing"), std::string::npos)
        << list << ": " << e;
  }
  ParsedMount p = ParseMountArgs(Translate({"s.img", "/mnt/c", "-o", "dest=/d.img,rate=1M,ro"}));
  ASSERT_TRUE(p.problems.empty()) << p.problems[0];
  EXPECT_EQ(p.options.source, "s.img");
  EXPECT_EQ(p.options.dest, "/d.img");
  EXPECT_EQ(p.options.mountpoint, "/mnt/c");
  EXPECT_EQ(p.options.given.rate_bytes_per_s, 1024u * 1024);
}

// What only a command line can use: -o help printed the help and exited 0
// (mount(8) reported the mount done, nothing mounted); -o foreground left
// mount(8) waiting until the unmount.
TEST(FstabArgs, HelpAndForegroundAreRefused) {
  for (const char* o : {"help", "version", "foreground"}) {
    Result<Args> r = FstabToMountArgs({"s.img", "/mnt/c", "-o", std::string("dest=/d.img,") + o});
    ASSERT_FALSE(r.ok()) << o;
    EXPECT_NE(r.status().message().find(std::string("-o ") + o + " has no place in the mount(8)"),
              std::string::npos)
        << r.status().message();
  }
}

TEST(FstabArgs, MistakesSayWhatIsMissing) {
  Result<Args> r = FstabToMountArgs({"s.img", "/mnt/c", "-o", "rate=1M"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no dest= option"), std::string::npos);
  r = FstabToMountArgs({"s.img", "-o", "dest=/d.img"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("SOURCE MOUNTPOINT"), std::string::npos);
  EXPECT_FALSE(FstabToMountArgs({"s.img", "/mnt/c", "x", "-o", "dest=/d"}).ok());
  EXPECT_FALSE(FstabToMountArgs({"s.img", "/mnt/c", "-o", "dest="}).ok());
  EXPECT_FALSE(FstabToMountArgs({"s.img", "/mnt/c", "-o", "dest=/d,,rate=1"}).ok());
  EXPECT_FALSE(FstabToMountArgs({"s.img", "/mnt/c", "-o"}).ok());
  // Two destinations (an fstab line edited, or -o given twice) used to take
  // the last one silently: a new, empty clone where the user's was meant.
  r = FstabToMountArgs({"/s.img", "/mnt/c", "-o", "dest=/vm1.img", "-o", "dest=/vm2.img"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("dest= is given twice (dest=/vm1.img and dest=/vm2.img)"),
            std::string::npos)
      << r.status().message();
  EXPECT_TRUE(FstabToMountArgs({"/s.img", "/mnt/c", "-o", "dest=/vm1.img,dest=/vm1.img"}).ok());
}

// A relative path in the options was resolved against the directory mount
// ran in: an fstab line with dest=vm1.img, tried at a shell in /root, made
// /root/vm1.img; at boot (run from /) it made a new, empty clone /vm1.img
// and served the pristine source. Such paths are refused, naming the option.
TEST(FstabArgs, RelativePathsInTheOptionsAreRefused) {
  for (const char* list : {"dest=vm1.img", "dest=./vm1.img", "dest=/d.img,metadata=md",
                           "dest=/d.img,record_profile=boot.profile",
                           "dest=/d.img,profile=../boot.profile", "dest=/d.img,log-file=log"}) {
    SCOPED_TRACE(list);
    Result<Args> r = FstabToMountArgs({"/s.img", "/mnt/c", "-o", list});
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("is a relative path"), std::string::npos)
        << r.status().message();
    EXPECT_NE(r.status().message().find("give the absolute path"), std::string::npos);
  }
  Result<Args> r = FstabToMountArgs({"/s.img", "/mnt/c", "-o", "dest=vm1.img"});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("dest=vm1.img is a relative path", 0), 0u)
      << r.status().message();
  // Absolute paths, and an empty value (which removes a stored profile), pass.
  EXPECT_TRUE(FstabToMountArgs({"/s.img", "/mnt/c", "-o",
                                "dest=/d.img,metadata=/md,profile=,record_profile=/p,log_file=/l"})
                  .ok());
}

}  // namespace
}  // namespace clonefs::cli
