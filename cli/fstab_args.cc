#include "fstab_args.h"

#include <algorithm>
#include <array>
#include <string_view>

namespace clonefs::cli {
namespace {

// Read by mount(8), systemd or fstab only: nothing for clonefs to do.
bool IgnoredOption(std::string_view key) {
  static constexpr std::array<std::string_view, 11> kIgnored = {
      "defaults", "auto", "noauto", "user", "users", "nouser",
      "owner",    "group", "_netdev", "nofail", "rw"};
  return std::find(kIgnored.begin(), kIgnored.end(), key) != kIgnored.end() ||
         key.substr(0, 2) == "x-" || key == "comment";
}

// The generic options of a mount, which FUSE applies to the clone's mount.
bool MountFlag(std::string_view key) {
  static constexpr std::array<std::string_view, 14> kFlags = {
      "ro",      "dev",   "nodev",  "suid",     "nosuid",    "exec",  "noexec",
      "atime",   "noatime", "diratime", "nodiratime", "relatime", "sync", "dirsync"};
  return std::find(kFlags.begin(), kFlags.end(), key) != kFlags.end() || key == "async" ||
         key == "lazytime" || key == "nolazytime" || key == "strictatime";
}

std::vector<std::string> Split(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t comma = list.find(',', start);
    out.push_back(list.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// A relative path in the options would be taken from whatever directory
// mount(8) runs in: the user's at a shell, / at boot. The same fstab line
// would then name two files (for dest=, a new, empty clone at boot).
Status RequireAbsolute(const std::string& key, const std::string& value) {
  if (value.empty() || value.front() == '/') return Status::OK();
  return Status::InvalidArgument(
      key + "=" + value +
      " is a relative path: in the mount(8) and fstab form it would be taken from whatever "
      "directory mount runs in (/ at boot), so the same line would name different files; give "
      "the absolute path, e.g. " +
      key + "=/var/lib/clonefs/" + value);
}

bool PathOption(const std::string& key) {
  return key == "metadata" || key == "profile" || key == "record-profile" || key == "log-file";
}

}  // namespace

Result<Args> FstabToMountArgs(const Args& args) {
  std::vector<std::string> paths, options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-o") {
      if (i + 1 == args.size()) return Status::InvalidArgument("-o needs a list of options");
      for (std::string& o : Split(args[++i])) options.push_back(std::move(o));
    } else if (a.rfind("-o", 0) == 0) {
      for (std::string& o : Split(a.substr(2))) options.push_back(std::move(o));
    } else {
      paths.push_back(a);
    }
  }
  if (paths.size() != 2) {
    return Status::InvalidArgument(
        "the mount(8) form takes SOURCE MOUNTPOINT -o dest=DEST[,OPTIONS], got " +
        std::to_string(paths.size()) + " arguments besides -o");
  }
  std::string dest;
  // The paths first: an option left without its value (rate) then meets the
  // end of the line or another option, and is refused by name, instead of
  // taking a path as its value.
  Args out = {paths[0], "", paths[1]};
  std::vector<std::string> fuse;
  for (const std::string& o : options) {
    if (o.empty()) return Status::InvalidArgument("an empty option in the -o list");
    const size_t eq = o.find('=');
    std::string key = o.substr(0, eq);
    if (IgnoredOption(key)) continue;
    if (MountFlag(key) && eq == std::string::npos) {
      fuse.push_back(o);
      continue;
    }
    // What makes sense on a command line only: mount(8) would report a
    // mount that printed the help as done, with nothing mounted, or wait
    // until the unmount for a foreground one.
    if (key == "help" || key == "version" || key == "foreground" || key == "f") {
      return Status::InvalidArgument(
          "-o " + key + " has no place in the mount(8) or fstab form" +
          (key == "help" || key == "version"
               ? ": run clonefs mount --help (or clonefs --version) instead"
               : ": mount(8) would wait until the clone is unmounted; use clonefs mount "
                 "--foreground, or a systemd unit (docs/integration.md)"));
    }
    if (key == "dest") {
      if (eq == std::string::npos || eq + 1 == o.size()) {
        return Status::InvalidArgument("dest= needs the clone's destination: dest=DEST");
      }
      if (!dest.empty() && dest != o.substr(eq + 1)) {
        return Status::InvalidArgument("dest= is given twice (dest=" + dest + " and " + o +
                                       "): give the clone's destination once");
      }
      dest = o.substr(eq + 1);
      CLONEFS_RETURN_IF_ERROR(RequireAbsolute(key, dest));
      continue;
    }
    std::replace(key.begin(), key.end(), '_', '-');
    if (PathOption(key) && eq != std::string::npos) {
      CLONEFS_RETURN_IF_ERROR(RequireAbsolute(o.substr(0, eq), o.substr(eq + 1)));
    }
    // One argument, --KEY=VALUE: a value given to a flag (allow_other=1) is
    // then refused by name instead of becoming a stray path.
    out.push_back("--" + key + (eq == std::string::npos ? "" : o.substr(eq)));
  }
  if (dest.empty()) {
    return Status::InvalidArgument(
        "no dest= option: the mount(8) form needs the clone's destination, e.g. -o "
        "dest=/var/lib/vm/disk.img (fstab: SOURCE MOUNTPOINT fuse.clonefs dest=DEST 0 0)");
  }
  if (!fuse.empty()) {
    std::string list;
    for (const std::string& f : fuse) list += (list.empty() ? "" : ",") + f;
    out.push_back("-o");
    out.push_back(list);
  }
  out[1] = dest;
  return out;
}

}  // namespace clonefs::cli
