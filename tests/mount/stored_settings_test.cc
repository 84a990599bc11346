// Stored settings through the real `clonefs` command (SPEC §5 "settings"):
// a clone mounted again with only SOURCE DEST MOUNTPOINT runs as it was set
// up, `message` changes survive a remount, an option given again overrides
// and is stored, and the stored --on-complete runs after a resume. Access
// profiles (SPEC §10) recorded by one clone and replayed by the next, and
// refused for another source; copy_on_read / read_hints messages.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "mount/harness.h"

namespace clonefs::testing {
namespace {

constexpr uint64_t kSourceSize = 16ull << 20;

class StoredSettingsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CLONEFS_REQUIRE_MOUNTABLE();
    WriteRandomFile(c_.src, kSourceSize, 31);
    src_sha_ = Sha256(c_.src);
    flag_ = c_.dir() / "on-complete-ran";
  }
  void TearDown() override {
    if (!src_sha_.empty()) {
      EXPECT_EQ(Sha256(c_.src), src_sha_) << "the source was modified";
    }
  }
  // `clonefs mount [extra] SRC DST MNT`: no option of the harness's own.
  RunResult MountWith(const std::string& extra) {
    return Sh(ClonefsBinary() + " mount " + extra + " " + Quote(c_.src) + " " + Quote(c_.dst) +
              " " + Quote(c_.mnt));
  }
  std::string StatusText() {
    RunResult r = Sh(ClonefsBinary() + " status " + Quote(c_.mnt));
    EXPECT_EQ(r.code, 0) << r.out;
    return r.out;
  }
  // One O_DIRECT read of the clone (what it asks is what clonefs sees): `bs`
  // bytes at block `skip` of that size.
  bool ReadClone(const std::string& bs, int skip) {
    return ShOk("dd if=" + Quote(c_.mnt + "/dst.img") + " of=/dev/null bs=" + bs +
                " skip=" + std::to_string(skip) + " count=1 iflag=direct status=none");
  }
  // `profile show` of a profile holding the reads of 1 MiB at 8 MiB, then of
  // 256 KiB at 2 MiB, in that order.
  void ExpectTheTwoReadsRecorded(const std::string& prof) {
    RunResult show = Sh(ClonefsBinary() + " profile show " + Quote(prof));
    ASSERT_EQ(show.code, 0) << show.out;
    EXPECT_TRUE(Has(show.out, "Regions:      20 (1.25 MiB) in 2 runs")) << show.out;
    EXPECT_TRUE(Has(show.out, "1  128 +16  [8388608, 9437184)")) << show.out;
    EXPECT_TRUE(Has(show.out, "2  32 +4  [2097152, 2359296)")) << show.out;
  }
  // Records the profile of one 1 MiB read at 8 MiB into `prof`, with a
  // first mount of the clone, then unmounts it.
  void RecordOneRead(const std::string& prof) {
    RunResult m = MountWith("--no-hydration --record-profile " + Quote(prof));
    ASSERT_EQ(m.code, 0) << m.out;
    ASSERT_TRUE(ReadClone("1M", 8));
    ASSERT_EQ(c_.Unmount().code, 0);
  }
  // `clonefs mount [extra] SRC DST2 MNT2`: a second clone of the source.
  RunResult MountSecond(const std::string& extra) {
    if (!ShOk("mkdir -p " + Quote(mnt2_))) return {};
    return Sh(ClonefsBinary() + " mount " + extra + " " + Quote(c_.src) + " " + Quote(dst2_) + " " +
              Quote(mnt2_));
  }
  int UnmountSecond() { return Sh(ClonefsBinary() + " unmount " + Quote(mnt2_)).code; }
  bool WaitForFlag(int seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      if (access(flag_.c_str(), F_OK) == 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  static bool Has(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
  }

  CloneDir c_;
  std::string src_sha_, flag_;
  const std::string dst2_ = c_.dir() / "second.img", mnt2_ = c_.dir() / "mnt2";
};

TEST_F(StoredSettingsTest, ResumedCloneRunsWithItsStoredSettings) {
  RunResult m = MountWith("--rate 1M --region-size 128K --on-complete " +
                          Quote("touch " + flag_) +
                          " --name x.img --no-discard-passdown");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(access((c_.mnt + "/x.img").c_str(), F_OK), 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  ASSERT_NE(access(flag_.c_str(), F_OK), 0) << "hydration finished during the first mount";

  // Nothing but SOURCE DEST MOUNTPOINT.
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "resuming with the settings stored with this clone")) << m.out;
  EXPECT_TRUE(Has(m.out, "mounted " + c_.mnt + "/x.img")) << m.out;
  std::string st = StatusText();
  EXPECT_TRUE(Has(st, "File:         " + c_.mnt + "/x.img")) << st;
  EXPECT_TRUE(Has(st, "rate 1.00 MiB/s")) << st;
  EXPECT_TRUE(Has(st, "discard passdown off")) << st;
  EXPECT_TRUE(Has(st, "/128 hydrated")) << st;
  EXPECT_TRUE(Has(st, "region size 128.00 KiB")) << st;
  EXPECT_TRUE(Has(st, "--on-complete " + Quote("touch " + flag_))) << st;

  // A message is stored: the next mount keeps the last rate.
  RunResult msg = Sh(ClonefsBinary() + " message " + Quote(c_.mnt) + " rate 2M");
  ASSERT_EQ(msg.code, 0) << msg.out;
  EXPECT_FALSE(Has(msg.out, "not stored")) << msg.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  RunResult info = Sh(ClonefsBinary() + " info " + Quote(c_.dst));
  ASSERT_EQ(info.code, 0) << info.out;
  EXPECT_TRUE(Has(info.out, "Settings:     --rate 2M --no-discard-passdown --name x.img")) << info.out;
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  st = StatusText();
  EXPECT_TRUE(Has(st, "rate 2.00 MiB/s")) << st;
  EXPECT_TRUE(Has(st, "discard passdown off")) << st;
  ASSERT_EQ(c_.Unmount().code, 0);

  // An option given again overrides and is stored; the rest stays.
  m = MountWith("--rate 3M --discard-passdown");
  ASSERT_EQ(m.code, 0) << m.out;
  st = StatusText();
  EXPECT_TRUE(Has(st, "rate 3.00 MiB/s")) << st;
  EXPECT_TRUE(Has(st, "discard passdown on")) << st;
  ASSERT_EQ(access((c_.mnt + "/x.img").c_str(), F_OK), 0);
  ASSERT_EQ(c_.Unmount().code, 0);
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  st = StatusText();
  EXPECT_TRUE(Has(st, "rate 3.00 MiB/s")) << st;
  EXPECT_TRUE(Has(st, "discard passdown on")) << st;

  // Completion after a resume runs the stored --on-complete.
  msg = Sh(ClonefsBinary() + " message " + Quote(c_.mnt) + " rate 0");
  ASSERT_EQ(msg.code, 0) << msg.out;
  EXPECT_TRUE(WaitForFlag(60)) << c_.LogText();
  ASSERT_EQ(c_.Unmount().code, 0);
}

TEST_F(StoredSettingsTest, ProfileRecordedByOneCloneIsReplayedByTheNextOnlyForItsSource) {
  const std::string prof = c_.dir() / "boot.profile";
  RunResult m = MountWith("--no-hydration --copy-on-read --record-profile " + Quote(prof));
  ASSERT_EQ(m.code, 0) << m.out;
  // Reads of 1 MiB at 8 MiB, then 256 KiB at 2 MiB (O_DIRECT: what they ask is what clonefs sees).
  ASSERT_TRUE(ReadClone("1M", 8));
  ASSERT_TRUE(ReadClone("256K", 8));
  std::string st = StatusText();
  EXPECT_TRUE(Has(st, "copy-on-read on")) << st;
  EXPECT_TRUE(Has(st, "copy-on-read 20")) << st;  // hydrated by the reads themselves
  EXPECT_TRUE(Has(st, "Recording:    profile " + prof + " (20 regions so far")) << st;
  RunResult msg = Sh(ClonefsBinary() + " message " + Quote(c_.mnt) + " copy_on_read off");
  ASSERT_EQ(msg.code, 0) << msg.out;
  EXPECT_TRUE(Has(StatusText(), "copy-on-read off"));
  msg = Sh(ClonefsBinary() + " message " + Quote(c_.mnt) + " read_hints maybe");
  EXPECT_NE(msg.code, 0) << msg.out;
  EXPECT_TRUE(Has(msg.out, "'maybe' is neither on nor off")) << msg.out;
  ASSERT_EQ(c_.Unmount().code, 0);

  ExpectTheTwoReadsRecorded(prof);

  // A second clone of the same source replays it first.
  const std::string dst2 = c_.dir() / "second.img", mnt2 = c_.dir() / "mnt2";
  ASSERT_TRUE(ShOk("mkdir -p " + Quote(mnt2)));
  m = Sh(ClonefsBinary() + " mount --rate 4M --profile " + Quote(prof) + " " + Quote(c_.src) +
         " " + Quote(dst2) + " " + Quote(mnt2));
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "hydrating the 20 regions of profile " + prof + " first")) << m.out;
  bool replayed = false;
  for (int i = 0; i < 100 && !replayed; ++i) {
    RunResult s2 = Sh(ClonefsBinary() + " status " + Quote(mnt2));
    replayed = Has(s2.out, "profile 100% (20/20 regions)") && Has(s2.out, "profile 20,");
    if (!replayed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(replayed) << Sh(ClonefsBinary() + " status " + Quote(mnt2)).out;
  EXPECT_EQ(Sh(ClonefsBinary() + " unmount " + Quote(mnt2)).code, 0);

  // A clone with 1 MiB regions replays the same bytes: regions 8 and 2. The
  // mount's note counts them in its own regions, as status does (it said
  // "the 20 regions" where status then showed 2/2).
  const std::string dst4 = c_.dir() / "fourth.img";
  m = Sh(ClonefsBinary() + " mount --region-size 1M --profile " + Quote(prof) + " " +
         Quote(c_.src) + " " + Quote(dst4) + " " + Quote(mnt2));
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "hydrating the 2 regions of profile " + prof +
                             " first (recorded as 20 regions of 65536 bytes)"))
      << m.out;
  replayed = false;
  for (int i = 0; i < 100 && !replayed; ++i) {
    replayed =
        Has(Sh(ClonefsBinary() + " status " + Quote(mnt2)).out, "profile 100% (2/2 regions)");
    if (!replayed) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(replayed) << Sh(ClonefsBinary() + " status " + Quote(mnt2)).out;
  EXPECT_EQ(Sh(ClonefsBinary() + " unmount " + Quote(mnt2)).code, 0);

  // Another source: refused, nothing created.
  const std::string other = c_.dir() / "other.img", dst3 = c_.dir() / "third.img";
  WriteRandomFile(other, kSourceSize, 99);
  m = Sh(ClonefsBinary() + " mount --profile " + Quote(prof) + " " + Quote(other) + " " +
         Quote(dst3) + " " + Quote(mnt2));
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_TRUE(Has(m.out, "does not belong to this source")) << m.out;
  EXPECT_NE(access(dst3.c_str(), F_OK), 0) << "a refused mount left its dest behind";
  EXPECT_NE(Sh("mountpoint -q " + Quote(mnt2)).code, 0) << "a refused mount left a mount";
  // Not a profile at all.
  ASSERT_TRUE(ShOk("echo hello > " + Quote(other + ".profile")));
  m = Sh(ClonefsBinary() + " mount --profile " + Quote(other + ".profile") + " " + Quote(other) +
         " " + Quote(dst3) + " " + Quote(mnt2));
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_TRUE(Has(m.out, "not a clonefs profile")) << m.out;
  EXPECT_NE(access(dst3.c_str(), F_OK), 0) << "a refused mount left its dest behind";
  EXPECT_NE(Sh("mountpoint -q " + Quote(mnt2)).code, 0) << "a refused mount left a mount";
  RunResult show = Sh(ClonefsBinary() + " profile show " + Quote(other + ".profile"));
  EXPECT_EQ(show.code, 1) << show.out;
}

// A stored --profile whose file was removed since: the clone still mounts
// (a profile only orders hydration), says so, and replays nothing; the
// profile stays stored. Before, every remount was refused until
// --profile ''. Given on the command line, a missing profile is refused.
TEST_F(StoredSettingsTest, AStoredProfileRemovedSinceDoesNotKeepTheCloneFromMounting) {
  const std::string prof = c_.dir() / "boot.profile";
  ASSERT_NO_FATAL_FAILURE(RecordOneRead(prof));
  RunResult m = MountSecond("--no-hydration --profile " + Quote(prof));
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_EQ(UnmountSecond(), 0);
  ASSERT_EQ(unlink(prof.c_str()), 0);

  m = MountSecond("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(
      Has(m.out, "the stored profile " + prof + " does not exist any more: mounting without it"))
      << m.out;
  RunResult st = Sh(ClonefsBinary() + " status --json " + Quote(mnt2_));
  EXPECT_EQ(st.code, 0) << st.out;
  EXPECT_TRUE(Has(st.out, "\"profile\": null,")) << "nothing replayed\n" << st.out;
  EXPECT_EQ(UnmountSecond(), 0);
  RunResult info = Sh(ClonefsBinary() + " info " + Quote(dst2_));
  EXPECT_TRUE(Has(info.out, prof)) << "the profile stays stored\n" << info.out;

  m = MountSecond("--profile " + Quote(prof));
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_TRUE(Has(m.out, "cannot open profile " + prof)) << m.out;
  EXPECT_NE(Sh("mountpoint -q " + Quote(mnt2_)).code, 0) << "a refused mount left a mount";
}

// A stored --profile whose file now holds another source's profile (it was
// recorded again from a new version of the image), or is damaged: the clone
// still mounts without it, saying why and how to forget it. Before, every
// mount was refused, with the advice "mount without --profile", which the
// failing mount already was. Given on the command line, both are refused.
TEST_F(StoredSettingsTest, AStoredProfileThatNoLongerFitsDoesNotKeepTheCloneFromMounting) {
  const std::string prof = c_.dir() / "boot.profile";
  ASSERT_NO_FATAL_FAILURE(RecordOneRead(prof));
  RunResult m = MountSecond("--no-hydration --profile " + Quote(prof));
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_EQ(UnmountSecond(), 0);

  // Another source's profile (4 MiB, recorded by a third clone) under that name.
  const std::string other = c_.dir() / "other.img", dst3 = c_.dir() / "third.img";
  WriteRandomFile(other, 4ull << 20, 77);
  m = Sh(ClonefsBinary() + " mount --no-hydration --record-profile " + Quote(prof) + " " +
         Quote(other) + " " + Quote(dst3) + " " + Quote(mnt2_));
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(ShOk("dd if=" + Quote(mnt2_ + "/third.img") +
                   " of=/dev/null bs=64K count=1 iflag=direct status=none"));
  EXPECT_EQ(UnmountSecond(), 0);

  m = MountSecond("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "the stored profile " + prof +
                             " does not belong to this source any more (it was recorded from a "
                             "source of 4194304 bytes, this clone's source has 16777216): "
                             "mounting without it"))
      << m.out;
  EXPECT_TRUE(Has(m.out, "--profile '' to forget it")) << m.out;
  EXPECT_EQ(UnmountSecond(), 0);

  ASSERT_TRUE(ShOk("echo hello > " + Quote(prof)));
  m = MountSecond("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "the stored profile " + prof + " cannot be replayed (" + prof +
                             ": not a clonefs profile"))
      << m.out;
  EXPECT_EQ(UnmountSecond(), 0);

  m = MountSecond("--profile " + Quote(prof));
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_TRUE(Has(m.out, "not a clonefs profile")) << m.out;
  EXPECT_NE(Sh("mountpoint -q " + Quote(mnt2_)).code, 0) << "a refused mount left a mount";
}

// A new recording into a file that exists (another clone's profile) says,
// at mount, that it will replace it; before, the file was overwritten at
// unmount without a word. A clone continuing its own recording says that
// instead.
TEST_F(StoredSettingsTest, ARecordingIntoAnExistingFileSaysItReplacesIt) {
  const std::string prof = c_.dir() / "boot.profile";
  ASSERT_NO_FATAL_FAILURE(RecordOneRead(prof));
  RunResult m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "continuing the access profile recorded in " + prof)) << m.out;
  EXPECT_FALSE(Has(m.out, "replaces it at unmount")) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  m = MountSecond("--no-hydration --record-profile " + Quote(prof));
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(
      m.out, "--record-profile " + prof + " exists: this clone's recording replaces it at unmount"))
      << m.out;
  EXPECT_EQ(UnmountSecond(), 0);
}

// A clone mounted again keeps recording into its stored --record-profile:
// the file written at the second unmount still holds the first mount's
// touches, first, and the second mount's after them (it used to hold only
// the second mount's, the first mount's boot order lost).
TEST_F(StoredSettingsTest, ResumedRecordingKeepsTheEarlierMountsTouches) {
  const std::string prof = c_.dir() / "boot.profile";
  ASSERT_NO_FATAL_FAILURE(RecordOneRead(prof));

  RunResult m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "continuing the access profile recorded in " + prof)) << m.out;
  ASSERT_TRUE(ReadClone("256K", 8));
  // The first mount's regions read again: they keep their earlier place.
  ASSERT_TRUE(ReadClone("1M", 8));
  std::string st = StatusText();
  EXPECT_TRUE(Has(st, "Recording:    profile " + prof + " (20 regions so far")) << st;
  ASSERT_EQ(c_.Unmount().code, 0);

  ExpectTheTwoReadsRecorded(prof);

  // A file that is no profile at all is not replaced: the mount is refused
  // and the file kept.
  ASSERT_TRUE(ShOk("echo hello > " + Quote(prof)));
  m = MountWith("");
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_TRUE(Has(m.out, "--record-profile " + prof + " exists and is not an access profile"))
      << m.out;
  EXPECT_EQ(Sh("cat " + Quote(prof)).out, "hello\n");
  // A profile the recording cannot continue (cut short) is said so and
  // replaced by a new recording.
  ASSERT_TRUE(ShOk("printf 'clonefs-profile 1\\nsource-size 5' > " + Quote(prof)));
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_TRUE(Has(m.out, "starting a new recording in " + prof)) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  RunResult show = Sh(ClonefsBinary() + " profile show " + Quote(prof));
  EXPECT_EQ(show.code, 0) << show.out;
}

// Reads of a clone that completed while recording still reach the recorder:
// passthrough (the kernel reading dest itself, Linux 6.9+) stays off while a
// profile is recorded. With it, an open made after completion was passed
// through and the profile written at unmount missed every read it made.
TEST_F(StoredSettingsTest, RecordingSeesReadsOfACompleteClone) {
  const std::string prof = c_.dir() / "boot.profile";
  RunResult m = MountWith("--record-profile " + Quote(prof));
  ASSERT_EQ(m.code, 0) << m.out;
  RunResult w = Sh(ClonefsBinary() + " wait " + Quote(c_.mnt));
  ASSERT_EQ(w.code, 0) << w.out;
  ASSERT_TRUE(ShOk("dd if=" + Quote(c_.mnt + "/dst.img") +
                   " of=/dev/null bs=1M skip=8 count=1 status=none"));
  std::string st = StatusText();
  EXPECT_TRUE(Has(st, "Recording:    profile " + prof + " (16 regions so far")) << st;
  EXPECT_FALSE(Has(st, "Passthrough:  active")) << st;
  ASSERT_EQ(c_.Unmount().code, 0);
  RunResult show = Sh(ClonefsBinary() + " profile show " + Quote(prof));
  ASSERT_EQ(show.code, 0) << show.out;
  EXPECT_TRUE(Has(show.out, "1  128 +16  [8388608, 9437184)")) << show.out;
}

// A recording that could not be written at unmount is refused at mount: it
// used to be accepted, the workload ran, and the profile was lost at unmount
// with one line in the log (unmount itself succeeded and said nothing).
TEST_F(StoredSettingsTest, RecordingIntoAPlaceItCannotBeWrittenIsRefused) {
  const std::string prof = c_.dir() / "no-such-dir/boot.profile";
  RunResult m = MountWith("--record-profile " + Quote(prof));
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_TRUE(Has(m.out, "No such file or directory")) << m.out;
  EXPECT_TRUE(Has(m.out, "--record-profile ''")) << m.out;
  EXPECT_NE(access(c_.dst.c_str(), F_OK), 0) << "a refused mount left its dest behind";
  EXPECT_NE(Sh("mountpoint -q " + Quote(c_.mnt)).code, 0) << "a refused mount left a mount";
  // A directory is no file to write either.
  m = MountWith("--record-profile " + Quote(c_.dir().path()));
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_TRUE(Has(m.out, "is a directory")) << m.out;
  // A resumed clone whose recording's directory went away says so too.
  const std::string dir = c_.dir() / "profiles";
  ASSERT_TRUE(ShOk("mkdir " + Quote(dir)));
  m = MountWith("--no-hydration --record-profile " + Quote(dir + "/boot.profile"));
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  ASSERT_TRUE(ShOk("rm -r " + Quote(dir)));
  m = MountWith("");
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_TRUE(Has(m.out, "--record-profile ''")) << m.out;
  m = MountWith("--record-profile ''");
  EXPECT_EQ(m.code, 0) << m.out;
}

// The recording replaces its file at unmount (a rename over it). Named as
// the source, it used to replace the source image with a profile (SPEC §7a:
// the source is never written, whatever path leads to it); named as the
// dest or as a file of the metadata directory, the clone's data or its
// metadata store. Each is now refused at mount, naming the file, and
// nothing is replaced.
TEST_F(StoredSettingsTest, RecordingIntoTheClonesOwnFilesIsRefused) {
  const auto refused = [&](const std::string& prof, const std::string& what) {
    RunResult m = MountWith("--no-hydration --record-profile " + Quote(prof));
    EXPECT_EQ(m.code, 1) << m.out;
    EXPECT_TRUE(Has(m.out, "--record-profile " + prof + " " + what)) << m.out;
    EXPECT_TRUE(Has(m.out, "--record-profile ''")) << m.out;
    EXPECT_NE(Sh("mountpoint -q " + Quote(c_.mnt)).code, 0) << "a refused mount left a mount";
    if (m.code == 0) (void)c_.Unmount();
  };
  // A new clone: nothing it would have created is left.
  refused(c_.src, "is this clone's source " + c_.src);
  EXPECT_NE(access(c_.dst.c_str(), F_OK), 0) << "a refused mount left its dest behind";
  refused(c_.dst, "is this clone's dest " + c_.dst);
  EXPECT_NE(access(c_.dst.c_str(), F_OK), 0) << "a refused mount left its dest behind";

  // An existing clone, holding a write of the user's.
  RunResult m = MountWith("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(ShOk("printf user-data | dd of=" + Quote(c_.exposed()) +
                   " bs=4096 seek=5 conv=notrunc,fsync status=none"));
  ASSERT_EQ(c_.Unmount().code, 0);
  const std::string dst_sha = Sha256(c_.dst);
  const std::string current = c_.metadata + "/CURRENT";
  refused(c_.dst, "is this clone's dest " + c_.dst);
  // The same files under other names: a hard link to the source.
  const std::string link = c_.dir() / "source-link.img";
  ASSERT_TRUE(ShOk("ln " + Quote(c_.src) + " " + Quote(link)));
  refused(link, "is this clone's source " + c_.src);
  refused(current, "lies inside the metadata directory " + c_.metadata);
  // Any file that is no profile: a typo must not cost the user a file.
  const std::string notes = c_.dir() / "notes.txt";
  ASSERT_TRUE(ShOk("echo my notes > " + Quote(notes)));
  refused(notes, "exists and is not an access profile");
  EXPECT_EQ(Sh("cat " + Quote(notes)).out, "my notes\n");
  EXPECT_EQ(Sha256(c_.dst), dst_sha) << "the dest was replaced";
  EXPECT_TRUE(Has(Sh("cat " + Quote(current)).out, "MANIFEST-"))
      << "the metadata store was changed";
  // The clone still mounts, with no recording stored, and holds the write.
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  EXPECT_FALSE(Has(m.out, "record-profile")) << m.out;
  RunResult r =
      Sh("dd if=" + Quote(c_.exposed()) + " bs=4096 skip=5 count=1 status=none | head -c 9");
  EXPECT_EQ(r.out, "user-data");
  ASSERT_EQ(c_.Unmount().code, 0);
}

// A recording whose directory went away while the clone was mounted cannot
// be written at unmount. `clonefs unmount` used to print "final commit done"
// and nothing else (one warning in the log): the workload's recording was
// lost without the user being told. It now says so (the unmount itself
// succeeded: exit 0).
TEST_F(StoredSettingsTest, ARecordingLostAtUnmountIsSaidByUnmount) {
  const std::string dir = c_.dir() / "profiles";
  ASSERT_TRUE(ShOk("mkdir " + Quote(dir)));
  RunResult m = MountWith("--no-hydration --record-profile " + Quote(dir + "/boot.profile"));
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(ReadClone("1M", 8));
  ASSERT_TRUE(ShOk("rm -r " + Quote(dir)));
  RunResult u = c_.Unmount();
  EXPECT_EQ(u.code, 0) << u.out;
  EXPECT_TRUE(Has(u.out, "final commit done")) << u.out;
  EXPECT_TRUE(Has(u.out, "warning: the access profile recorded by this mount")) << u.out;
  EXPECT_TRUE(Has(u.out, "No such file or directory")) << u.out;
  EXPECT_NE(access((c_.metadata + "/daemon.info").c_str(), F_OK), 0)
      << "the daemon's record was left behind";
  // A recording that was written says nothing more.
  ASSERT_TRUE(ShOk("mkdir " + Quote(dir)));
  m = MountWith("");
  ASSERT_EQ(m.code, 0) << m.out;
  u = c_.Unmount();
  EXPECT_EQ(u.code, 0) << u.out;
  EXPECT_FALSE(Has(u.out, "warning")) << u.out;
  EXPECT_EQ(Sh(ClonefsBinary() + " profile show " + Quote(dir + "/boot.profile")).code, 0);
}

TEST_F(StoredSettingsTest, ExplicitOtherRegionSizeIsRefusedWithoutNewCloneAdvice) {
  RunResult m = MountWith("--region-size 128K --no-hydration --on-complete " +
                          Quote("touch " + flag_));
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_EQ(c_.Unmount().code, 0);

  RunResult r = MountWith("--region-size 64K");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(Has(r.out, "region size: metadata has 131072, requested 65536")) << r.out;
  EXPECT_TRUE(Has(r.out, "without --region-size")) << r.out;
  EXPECT_FALSE(Has(r.out, "new clone")) << r.out;
  EXPECT_FALSE(Has(r.out, "new directory")) << r.out;
  EXPECT_EQ(c_.DaemonPid(), 0);

  // The way back on, and clearing the stored command: hydration completes
  // and no command runs.
  m = MountWith("--hydration --on-complete ''");
  ASSERT_EQ(m.code, 0) << m.out;
  std::string st = StatusText();
  EXPECT_TRUE(Has(st, "region size 128.00 KiB")) << st;
  EXPECT_TRUE(Has(st, "hydration enabled")) << st;
  EXPECT_TRUE(Has(st, "--hydration --on-complete ''")) << st;
  RunResult w = Sh(ClonefsBinary() + " wait " + Quote(c_.mnt));
  EXPECT_EQ(w.code, 0) << w.out;
  ASSERT_EQ(c_.Unmount().code, 0);
  EXPECT_NE(access(flag_.c_str(), F_OK), 0) << "a cleared --on-complete ran";
}

}  // namespace
}  // namespace clonefs::testing
