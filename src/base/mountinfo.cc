#include "base/mountinfo.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace clonefs {
namespace {

bool IsOctal(char c) { return c >= '0' && c <= '7'; }

std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && IsOctal(s[i + 1]) && IsOctal(s[i + 2]) &&
        IsOctal(s[i + 3])) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// Fields separated by runs of spaces (mountinfo escapes spaces inside fields).
std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> f;
  size_t pos = 0;
  while (pos < line.size()) {
    while (pos < line.size() && line[pos] == ' ') pos++;
    if (pos >= line.size()) break;
    size_t e = line.find(' ', pos);
    if (e == std::string_view::npos) e = line.size();
    f.push_back(line.substr(pos, e - pos));
    pos = e;
  }
  return f;
}

}  // namespace

Result<MountInfoLine> ParseMountInfoLine(std::string_view line) {
  std::vector<std::string_view> f = Fields(line);
  size_t dash = 0;
  for (size_t i = 6; i < f.size(); i++) {
    if (f[i] == "-") {
      dash = i;
      break;
    }
  }
  if (dash == 0 || dash + 2 >= f.size()) {
    return Status::InvalidArgument("malformed mountinfo line: " + std::string(line));
  }
  MountInfoLine e;
  e.mount_point = Unescape(f[4]);
  e.fstype = Unescape(f[dash + 1]);
  e.source = Unescape(f[dash + 2]);
  if (dash + 3 < f.size()) e.super_options = Unescape(f[dash + 3]);
  return e;
}

std::vector<MountInfoLine> ParseMountInfo(std::string_view text) {
  std::vector<MountInfoLine> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string_view::npos) e = text.size();
    if (e > pos) {
      Result<MountInfoLine> m = ParseMountInfoLine(text.substr(pos, e - pos));
      if (m.ok()) out.push_back(std::move(*m));
    }
    pos = e + 1;
  }
  return out;
}

std::optional<uint32_t> FuseUserId(std::string_view opts) {
  size_t pos = 0;
  while (pos <= opts.size()) {
    size_t comma = opts.find(',', pos);
    if (comma == std::string_view::npos) comma = opts.size();
    const std::string_view o = opts.substr(pos, comma - pos);
    if (o.substr(0, 8) == "user_id=" && o.size() > 8 && o.size() <= 18) {
      uint64_t v = 0;
      bool digits = true;
      for (char c : o.substr(8)) {
        if (c < '0' || c > '9') digits = false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
      }
      if (digits && v <= UINT32_MAX) return static_cast<uint32_t>(v);
    }
    pos = comma + 1;
  }
  return std::nullopt;
}

Result<std::string> ReadSelfMountInfo() {
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return Status::IoError("cannot read /proc/self/mountinfo");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<std::string> CanonicalBesideMount(const std::string& path) {
  std::string p = path;
  for (int links = 0;; ++links) {
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    const size_t slash = p.rfind('/');
    const std::string parent =
        slash == std::string::npos ? "." : (slash == 0 ? "/" : p.substr(0, slash));
    const std::string base = slash == std::string::npos ? p : p.substr(slash + 1);
    char buf[PATH_MAX];
    if (realpath(parent.c_str(), buf) == nullptr) return Status::FromErrno(errno, parent);
    const std::string dir = buf;
    const std::string out = (dir == "/" ? "" : dir) + "/" + base;
    char target[PATH_MAX];
    const ssize_t n = readlink(out.c_str(), target, sizeof(target) - 1);
    if (n <= 0) return out;  // not a link: the mount point itself
    if (links == 40) return Status::FromErrno(ELOOP, path);
    const std::string t(target, static_cast<size_t>(n));
    p = t[0] == '/' ? t : dir + "/" + t;
  }
}

}  // namespace clonefs
