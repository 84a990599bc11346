// The log sinks (base/log.h): the size-capped file rotated once to PATH.1,
// messages held until the file is open, reopening, and the one-sink helpers.
#include "base/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace clonefs {
namespace {

class LogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/clonefs-log-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    SetLogLevel(LogLevel::kDebug);
  }
  void TearDown() override {
    SetLogToStderr();
    SetLogLevel(LogLevel::kInfo);
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  std::string Path(const std::string& n) const { return dir_ + "/" + n; }
  static std::string Slurp(const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static std::vector<std::string> Lines(const std::string& p) {
    std::vector<std::string> out;
    std::ifstream f(p);
    for (std::string l; std::getline(f, l);) out.push_back(l);
    return out;
  }
  static uint64_t Size(const std::string& p) {
    std::error_code ec;
    auto s = std::filesystem::file_size(p, ec);
    return ec ? 0 : s;
  }
  std::string dir_;
};

TEST_F(LogTest, FileLinesCarryTimeLevelAndMessage) {
  ASSERT_TRUE(SetLogToFile(Path("a.log")).ok());
  EXPECT_EQ(LogFilePath(), Path("a.log"));
  CLONEFS_LOG_WARN("copy of region %d failed", 7);
  CLONEFS_LOG_DEBUG("details");
  SetLogLevel(LogLevel::kInfo);
  CLONEFS_LOG_DEBUG("dropped by level");
  std::vector<std::string> lines = Lines(Path("a.log"));
  ASSERT_EQ(lines.size(), 2u) << Slurp(Path("a.log"));
  // "YYYY-MM-DD HH:MM:SS clonefs: warning: ..."
  EXPECT_EQ(lines[0].substr(19), " clonefs: warning: copy of region 7 failed");
  EXPECT_EQ(lines[0][4], '-');
  EXPECT_EQ(lines[1].substr(19), " clonefs: debug: details");
}

TEST_F(LogTest, RotatesOnceAtTheCap) {
  constexpr uint64_t kCap = 4096;
  ASSERT_TRUE(SetLogToFile(Path("r.log"), kCap).ok());
  for (int i = 0; i < 400; i++) CLONEFS_LOG_INFO("message number %04d with some padding", i);
  const uint64_t now = Size(Path("r.log")), old = Size(Path("r.log.1"));
  EXPECT_GT(now, 0u);
  EXPECT_LE(now, kCap);
  EXPECT_GT(old, kCap / 2);
  EXPECT_LE(old, kCap);
  EXPECT_FALSE(std::filesystem::exists(Path("r.log.2")));
  // The newest message is in the current file, the one just before the
  // current file's first line ends PATH.1: nothing between them was lost.
  std::vector<std::string> cur = Lines(Path("r.log")), prev = Lines(Path("r.log.1"));
  ASSERT_FALSE(cur.empty());
  ASSERT_FALSE(prev.empty());
  EXPECT_NE(cur.back().find("message number 0399"), std::string::npos) << cur.back();
  const int first_cur = std::stoi(cur.front().substr(cur.front().find("number ") + 7, 4));
  const int last_prev = std::stoi(prev.back().substr(prev.back().find("number ") + 7, 4));
  EXPECT_EQ(last_prev + 1, first_cur);
}

TEST_F(LogTest, AnExistingFileCountsTowardsTheCap) {
  {
    std::ofstream f(Path("e.log"));
    f << std::string(3000, 'x') << "\n";
  }
  ASSERT_TRUE(SetLogToFile(Path("e.log"), 3040).ok());
  CLONEFS_LOG_INFO("this line does not fit beside the old content");
  EXPECT_EQ(Size(Path("e.log.1")), 3001u);
  EXPECT_NE(Slurp(Path("e.log")).find("does not fit"), std::string::npos);
}

TEST_F(LogTest, MessagesAreHeldUntilTheFileOpens) {
  ConfigureLog(LogSinks{false, "", /*hold_for_file=*/true});
  CLONEFS_LOG_INFO("before the metadata directory exists");
  CLONEFS_LOG_ERROR("a refusal");
  EXPECT_EQ(LogFilePath(), "");
  ASSERT_TRUE(OpenLogFile(Path("h.log")).ok());
  CLONEFS_LOG_INFO("after");
  std::vector<std::string> lines = Lines(Path("h.log"));
  ASSERT_EQ(lines.size(), 3u) << Slurp(Path("h.log"));
  EXPECT_NE(lines[0].find("info: before the metadata directory exists"), std::string::npos);
  EXPECT_NE(lines[1].find("error: a refusal"), std::string::npos);
  EXPECT_NE(lines[2].find("info: after"), std::string::npos);
  // Held messages are written once: a second file gets only new ones.
  ASSERT_TRUE(OpenLogFile(Path("h2.log")).ok());
  CLONEFS_LOG_INFO("second");
  EXPECT_EQ(Lines(Path("h2.log")).size(), 1u);
}

TEST_F(LogTest, HoldingIsBoundedAndSaysWhatItDropped) {
  ConfigureLog(LogSinks{false, "", true});
  const std::string big(1000, 'b');
  const int n = static_cast<int>(kLogHoldBytes / 1000) + 50;
  for (int i = 0; i < n; i++) CLONEFS_LOG_INFO("%s", big.c_str());
  ASSERT_TRUE(OpenLogFile(Path("b.log"), 64ull << 20).ok());
  const std::string text = Slurp(Path("b.log"));
  EXPECT_LE(text.size(), kLogHoldBytes + 500);
  EXPECT_NE(text.find("earlier messages were dropped"), std::string::npos);
}

TEST_F(LogTest, ConfiguringWithoutHoldDiscardsHeldMessages) {
  ConfigureLog(LogSinks{false, "", true});
  CLONEFS_LOG_INFO("stale");
  ConfigureLog(LogSinks{});
  ASSERT_TRUE(OpenLogFile(Path("d.log")).ok());
  CLONEFS_LOG_INFO("fresh");
  const std::string text = Slurp(Path("d.log"));
  EXPECT_EQ(text.find("stale"), std::string::npos) << text;
  EXPECT_NE(text.find("fresh"), std::string::npos) << text;
}

TEST_F(LogTest, ReopenStartsANewFileAfterAnOutsideRename) {
  ASSERT_TRUE(SetLogToFile(Path("o.log")).ok());
  CLONEFS_LOG_INFO("one");
  ASSERT_EQ(rename(Path("o.log").c_str(), Path("o.log.old").c_str()), 0);
  CLONEFS_LOG_INFO("two");  // still the renamed file
  ASSERT_TRUE(ReopenLogFile().ok());
  CLONEFS_LOG_INFO("three");
  EXPECT_EQ(Lines(Path("o.log.old")).size(), 2u);
  std::vector<std::string> lines = Lines(Path("o.log"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("three"), std::string::npos);
}

TEST_F(LogTest, AFileThatCannotBeOpenedLeavesTheSinksAlone) {
  ASSERT_TRUE(SetLogToFile(Path("k.log")).ok());
  Status s = SetLogToFile(Path("missing-dir/x.log"));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.ToString().find("missing-dir/x.log"), std::string::npos) << s.ToString();
  EXPECT_EQ(LogFilePath(), Path("k.log"));
  CLONEFS_LOG_INFO("kept");
  EXPECT_NE(Slurp(Path("k.log")).find("kept"), std::string::npos);
  EXPECT_FALSE(OpenLogFile(Path("missing-dir/y.log")).ok());
  EXPECT_EQ(LogFilePath(), Path("k.log"));
}

// A file that refuses writes (ENOSPC: here /dev/full behind a symlink, as a
// full metadata file system) loses nothing: the lines are held, the trouble
// is reported, and they are written in order once the file takes writes,
// with a line saying they were late. Before, each was silently dropped.
TEST_F(LogTest, LinesAFullFileRefusesAreHeldAndWrittenLate) {
  const std::string path = Path("full.log");
  ASSERT_EQ(symlink("/dev/full", path.c_str()), 0);
  ASSERT_TRUE(SetLogToFile(path).ok());
  EXPECT_EQ(LogFileTrouble(), "");
  for (int i = 0; i < 5; i++) CLONEFS_LOG_INFO("held %d", i);
  const std::string trouble = LogFileTrouble();
  EXPECT_NE(trouble.find("cannot be written since "), std::string::npos) << trouble;
  EXPECT_NE(trouble.find("(No space left on device); 5 messages held"), std::string::npos)
      << trouble;
  // Space again: the next file (a reopen, as after SIGHUP) gets them first.
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_TRUE(ReopenLogFile().ok());
  CLONEFS_LOG_INFO("after");
  EXPECT_EQ(LogFileTrouble(), "");
  std::vector<std::string> lines = Lines(path);
  ASSERT_EQ(lines.size(), 7u) << Slurp(path);
  for (int i = 0; i < 5; i++) {
    EXPECT_NE(lines[i].find("info: held " + std::to_string(i)), std::string::npos) << lines[i];
  }
  EXPECT_NE(lines[5].find("warning: the log file could not be written from "), std::string::npos);
  EXPECT_NE(lines[5].find("(No space left on device): the 5 messages before this one were held"),
            std::string::npos)
      << lines[5];
  EXPECT_NE(lines[6].find("info: after"), std::string::npos);
}

// Held lines are bounded; what is dropped beyond the bound is counted.
TEST_F(LogTest, LinesHeldForAFullFileAreBounded) {
  const std::string path = Path("full.log");
  ASSERT_EQ(symlink("/dev/full", path.c_str()), 0);
  ASSERT_TRUE(SetLogToFile(path, 64ull << 20).ok());
  const std::string big(1000, 'b');
  const int n = static_cast<int>(kLogHoldBytes / 1000) + 50;
  for (int i = 0; i < n; i++) CLONEFS_LOG_INFO("%s", big.c_str());
  EXPECT_NE(LogFileTrouble().find(" dropped"), std::string::npos) << LogFileTrouble();
  ASSERT_EQ(unlink(path.c_str()), 0);
  ASSERT_TRUE(ReopenLogFile().ok());
  EXPECT_EQ(LogFileTrouble(), "");
  const std::string text = Slurp(path);
  EXPECT_LE(text.size(), kLogHoldBytes + 500);
  EXPECT_NE(text.find("more were dropped"), std::string::npos);
}

TEST_F(LogTest, ConcurrentWritersNeverInterleaveAcrossRotations) {
  ASSERT_TRUE(SetLogToFile(Path("c.log"), 16 * 1024).ok());
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([t] {
      for (int i = 0; i < 500; i++) CLONEFS_LOG_INFO("thread %d line %d end", t, i);
    });
  }
  for (auto& t : ts) t.join();
  size_t total = 0;
  for (const char* n : {"c.log", "c.log.1"}) {
    for (const std::string& l : Lines(Path(n))) {
      ++total;
      EXPECT_NE(l.find(" clonefs: info: thread "), std::string::npos) << l;
      EXPECT_EQ(l.substr(l.size() - 4), " end") << l;
    }
    EXPECT_LE(Size(Path(n)), 16u * 1024);
  }
  EXPECT_GT(total, 100u);
}

// Under systemd, stderr is the journal's stream (JOURNAL_STREAM names its
// device and inode): lines carry the "<N>" priority prefix journald reads.
// Anything else on stderr (a terminal, a redirect) gets plain lines.
TEST_F(LogTest, StderrLinesCarryPriorityPrefixesOnlyWhenStderrIsTheJournal) {
  const std::string path = Path("journal");
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  fflush(stderr);
  int saved = dup(STDERR_FILENO);
  ASSERT_GE(saved, 0);
  ASSERT_EQ(dup2(fd, STDERR_FILENO), STDERR_FILENO);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  const std::string stream =
      std::to_string(static_cast<unsigned long long>(st.st_dev)) + ":" +
      std::to_string(static_cast<unsigned long long>(st.st_ino));

  setenv("JOURNAL_STREAM", stream.c_str(), 1);
  SetLogToStderr();
  CLONEFS_LOG_ERROR("e1");
  CLONEFS_LOG_WARN("w1");
  CLONEFS_LOG_INFO("i1");
  CLONEFS_LOG_DEBUG("d1");
  setenv("JOURNAL_STREAM", "1:2", 1);  // another stream: stderr was redirected
  SetLogToStderr();
  CLONEFS_LOG_WARN("w2");
  unsetenv("JOURNAL_STREAM");
  SetLogToStderr();
  CLONEFS_LOG_WARN("w3");
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);
  close(fd);
  EXPECT_EQ(Lines(path), (std::vector<std::string>{
                             "<3>clonefs: error: e1", "<4>clonefs: warning: w1",
                             "<6>clonefs: info: i1", "<7>clonefs: debug: d1",
                             "clonefs: warning: w2", "clonefs: warning: w3"}));
}

}  // namespace
}  // namespace clonefs
