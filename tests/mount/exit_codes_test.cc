// Exit codes, checked against the real `clonefs` command: for every command,
// the codes its --help lists (printed from the command's table, base/
// exit_code_table.h) are exactly those docs/cli.md and docs/control.md list,
// and the command really returns each of them. A command that gains an exit
// code must therefore list it in its table (a static_assert watches the last
// one), document it, and add its trigger here.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "mount/harness.h"

namespace clonefs::testing {
namespace {

namespace fs = std::filesystem;
using Codes = std::map<std::string, std::set<int>>;  // command -> exit codes

std::string Clonefs() { return ClonefsBinary(); }

// The command names `clonefs --help` lists.
std::vector<std::string> Commands() {
  RunResult r = Sh(Clonefs() + " --help");
  EXPECT_EQ(r.code, 0) << r.out;
  std::vector<std::string> out;
  std::istringstream in(r.out.substr(r.out.find("Commands:\n") + 10));
  std::string line;
  std::smatch m;
  while (std::getline(in, line) && std::regex_match(line, m, std::regex("  ([a-z]+) +.*"))) {
    out.push_back(m[1]);
  }
  return out;
}

// The codes under "Exit codes:" in `clonefs CMD --help`.
std::set<int> HelpCodes(const std::string& cmd) {
  RunResult r = Sh(Clonefs() + " " + cmd + " --help");
  EXPECT_EQ(r.code, 0) << cmd << ": " << r.out;
  std::set<int> codes;
  const size_t at = r.out.find("\nExit codes:\n");
  EXPECT_NE(at, std::string::npos) << "clonefs " << cmd << " --help lists no exit codes";
  if (at == std::string::npos) return codes;
  std::istringstream in(r.out.substr(at + 13));
  std::string line;
  std::smatch m;
  while (std::getline(in, line) && std::regex_match(line, m, std::regex("  ([0-9]+)  .+"))) {
    EXPECT_TRUE(codes.insert(std::stoi(m[1])).second) << cmd << " lists " << m[1] << " twice";
  }
  return codes;
}

// The rows of every "| command | code | meaning |" table in a markdown file
// (an empty command cell continues the row above).
void AddDocCodes(const std::string& path, Codes* out) {
  std::ifstream f(path);
  ASSERT_TRUE(f) << path;
  std::string line, command;
  bool in_table = false;
  std::smatch m;
  while (std::getline(f, line)) {
    if (line == "| command | code | meaning |") {
      in_table = true;
      command.clear();
      continue;
    }
    if (!in_table || line.rfind("|---", 0) == 0) continue;
    if (!std::regex_match(line, m, std::regex(R"(\| *(`([a-z]+)`)? *\| *([0-9]+) *\|.*)"))) {
      in_table = false;
      continue;
    }
    if (m[2].matched) command = m[2];
    ASSERT_FALSE(command.empty()) << path << ": " << line;
    EXPECT_TRUE((*out)[command].insert(std::stoi(m[3])).second)
        << path << " documents " << command << " " << m[3] << " twice";
  }
}

TEST(ExitCodesTest, HelpAndDocsListTheSameCodes) {
  Codes help, docs;
  for (const std::string& c : Commands()) help[c] = HelpCodes(c);
  ASSERT_GE(help.size(), 8u);
  AddDocCodes(std::string(CLONEFS_SOURCE_DIR) + "/docs/cli.md", &docs);
  AddDocCodes(std::string(CLONEFS_SOURCE_DIR) + "/docs/control.md", &docs);
  EXPECT_EQ(help, docs);
  // The top-level help promises only what every command returns.
  RunResult top = Sh(Clonefs() + " --help");
  EXPECT_NE(top.out.find("0 success, 1 failure, 2 bad command line"), std::string::npos);
  // wait --help's option text names the timeout's real code.
  RunResult w = Sh(Clonefs() + " wait --help");
  EXPECT_NE(w.out.find("give up after SECONDS (exit 5)"), std::string::npos) << w.out;
}

class ExitCodesMountTest : public ::testing::Test {
 protected:
  void SetUp() override { CLONEFS_REQUIRE_MOUNTABLE(); }

  // Runs `args` (after "clonefs "), records that `cmd` returned `want`.
  void Expect(const std::string& cmd, int want, const std::string& args) {
    RunResult r = Sh(Clonefs() + " " + cmd + " " + args);
    EXPECT_EQ(r.code, want) << "clonefs " << cmd << " " << args << "\n" << r.out;
    if (r.code == want) seen_[cmd].insert(want);
  }
  void Seen(const std::string& cmd, int code) { seen_[cmd].insert(code); }

  Codes seen_;
};

TEST_F(ExitCodesMountTest, EveryDocumentedCodeIsReturnedByTheRealCommand) {
  CloneDir c;
  WriteRandomFile(c.src, 8 << 20, 5);
  const std::string plain = c.dir() / "plain", nothing = c.dir() / "nothing";
  const std::string profile = c.dir() / "boot.profile", other = c.dir() / "other.img";
  ASSERT_EQ(mkdir(plain.c_str(), 0755), 0);
  WriteRandomFile(other, 8 << 20, 6);
  const std::string mnt = Quote(c.mnt), dst = Quote(c.dst);

  // Bad command lines, and commands pointed at nothing.
  for (const std::string& cmd : Commands()) Expect(cmd, 2, "--no-such-option");
  Expect("mount", 1, Quote(nothing) + " " + dst + " " + mnt);
  Expect("unmount", 1, Quote(plain));
  Expect("status", 1, Quote(plain));
  Expect("message", 1, Quote(plain) + " enable_hydration");
  Expect("wait", 1, Quote(plain));
  Expect("info", 1, "--metadata " + Quote(nothing));
  Expect("check", 3, "--metadata " + Quote(nothing));
  Expect("profile", 1, "show " + Quote(nothing));
  Expect("profile", 0, "show --help");
  Expect("profile", 2, "show --no-such-option");
  Expect("profile", 1, "show -- " + Quote(nothing));

  // A mounted clone that does not hydrate.
  RunResult m = c.Mount("--no-hydration --record-profile " + Quote(profile));
  ASSERT_EQ(m.code, 0) << m.out;
  Seen("mount", 0);
  Expect("status", 0, mnt);
  Expect("message", 0, mnt + " rate 1M");
  Expect("wait", 5, "--timeout 0.3 --quiet " + mnt);
  Expect("wait", 6, "--stall-timeout 0.3 --quiet " + mnt);
  Expect("info", 4, dst);
  Expect("check", 4, dst);
  {
    const int fd = open(c.exposed().c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    char b[4096];
    ASSERT_EQ(pread(fd, b, sizeof b, 0), static_cast<ssize_t>(sizeof b));
    Expect("unmount", 3, mnt);
    close(fd);
  }
  // The daemon killed while `wait` waits.
  const int pid = c.DaemonPid();
  ASSERT_GT(pid, 0);
  // Killed once `wait` has printed its first progress line (it has had an
  // answer: a daemon that never answered is another exit code).
  const std::string out = c.dir() / "wait.out";
  RunResult gone = Sh(Clonefs() + " wait " + mnt + " >" + Quote(out) +
                      " 2>&1 & w=$!; for i in $(seq 300); do [ -s " + Quote(out) +
                      " ] && break; sleep 0.1; done; kill -9 " + std::to_string(pid) +
                      "; wait $w; rc=$?; cat " + Quote(out) + "; exit $rc");
  EXPECT_EQ(gone.code, 4) << gone.out;
  if (gone.code == 4) Seen("wait", 4);

  // Resumed (the stale mount is replaced) and hydrated to the end.
  m = c.Mount("--hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  Expect("wait", 0, "--quiet " + mnt);
  Expect("unmount", 0, mnt);
  Expect("profile", 0, "show " + Quote(profile));
  Expect("info", 0, dst);
  Expect("check", 0, dst);
  Expect("check", 6, dst + " --source " + Quote(other));
  int garbled = 0;
  for (const auto& e : fs::directory_iterator(c.metadata)) {
    const std::string name = e.path().filename();
    if (name == "CURRENT" || name.rfind("MANIFEST-", 0) == 0 || e.path().extension() == ".sst" ||
        e.path().extension() == ".log") {
      if (name == "clonefs.log") continue;
      std::ofstream(e.path(), std::ios::in | std::ios::out | std::ios::binary)
          << std::string(std::max<uintmax_t>(e.file_size(), 64), '\xA5');
      ++garbled;
    }
  }
  ASSERT_GT(garbled, 0);
  Expect("check", 5, dst);

  // A source that changes under a live clone: it cannot complete.
  CloneDir d;
  WriteRandomFile(d.src, 64 << 20, 7);
  m = d.Mount("--rate 4M");
  ASSERT_EQ(m.code, 0) << m.out;
  ASSERT_TRUE(ShOk("truncate -s 32M " + Quote(d.src)));
  Expect("wait", 3, "--quiet " + Quote(d.mnt));

  // A dest truncated under a live clone cannot complete either: the same
  // code, and wait --help says so on its line.
  CloneDir e;
  WriteRandomFile(e.src, 64 << 20, 8);
  m = e.Mount("--no-hydration");
  ASSERT_EQ(m.code, 0) << m.out;
  // (truncate(2) by path: a live clone's daemon refuses other programs'
  // opens of its dest, so `truncate`, which opens it, would be refused.)
  ASSERT_EQ(truncate(e.dst.c_str(), 32 << 20), 0) << strerror(errno);
  Expect("wait", 3, "--quiet " + Quote(e.mnt));
  RunResult wait_help = Sh(Clonefs() + " wait --help");
  std::smatch line3;
  ASSERT_TRUE(std::regex_search(wait_help.out, line3, std::regex("\n  3  ([^\n]*)")))
      << wait_help.out;
  EXPECT_NE(line3[1].str().find("dest changed"), std::string::npos) << line3[1];

  Codes documented;
  for (const std::string& cmd : Commands()) documented[cmd] = HelpCodes(cmd);
  EXPECT_EQ(seen_, documented) << "every documented code needs a trigger here, and nothing else";
}

}  // namespace
}  // namespace clonefs::testing
