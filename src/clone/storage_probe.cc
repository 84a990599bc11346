#include "clone/storage_probe.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

namespace clonefs::clone {
namespace {

// Deep enough for loop-on-dm-on-partition stacks; bounds a cycle.
constexpr int kMaxDepth = 16;

std::string DevKey(dev_t d) {
  return "blk:" + std::to_string(major(d)) + ":" + std::to_string(minor(d));
}

std::string FileKey(dev_t d, ino_t ino) {
  return "file:" + std::to_string(major(d)) + ":" + std::to_string(minor(d)) + ":" +
         std::to_string(ino);
}

std::string SysDir(dev_t d) {
  return "/sys/dev/block/" + std::to_string(major(d)) + ":" + std::to_string(minor(d));
}

// First line of a sysfs attribute, trimmed; "" if absent or empty.
std::string ReadAttr(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  while (!line.empty() && (line.back() == ' ' || line.back() == '\n' || line.back() == '\t')) {
    line.pop_back();
  }
  return line;
}

bool ParseDev(const std::string& text, dev_t* out) {
  unsigned maj = 0, min = 0;
  if (sscanf(text.c_str(), "%u:%u", &maj, &min) != 2) return false;
  *out = makedev(maj, min);
  return true;
}

// The whole disk of a partition, or 0 if `d` is not a partition.
dev_t ParentDisk(dev_t d) {
  const std::string dir = SysDir(d);
  if (access((dir + "/partition").c_str(), F_OK) != 0) return 0;
  dev_t parent = 0;
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(dir, ec);
  if (ec || !ParseDev(ReadAttr(real.parent_path().string() + "/dev"), &parent)) return 0;
  return parent;
}

std::vector<dev_t> Slaves(dev_t d) {
  std::vector<dev_t> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(SysDir(d) + "/slaves", ec), end; !ec && it != end;
       it.increment(ec)) {
    dev_t s = 0;
    if (ParseDev(ReadAttr(it->path().string() + "/dev"), &s)) out.push_back(s);
  }
  return out;
}

// The backing file of loop device `d`; false if `d` is not a bound loop
// device or cannot be asked.
bool GetLoopBacking(dev_t d, LoopBackingFile* out) {
  const std::string dir = SysDir(d);
  if (access((dir + "/loop").c_str(), F_OK) != 0) return false;
  std::error_code ec;
  const std::string name = std::filesystem::canonical(dir, ec).filename().string();
  if (ec || name.empty()) return false;
  out->path = ReadAttr(dir + "/loop/backing_file");
  out->loop = d;
  const std::string node = "/dev/" + name;
  struct stat st;
  if (stat(node.c_str(), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == d) {
    const int fd = open(node.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
      struct loop_info64 info = {};
      const int rc = ioctl(fd, LOOP_GET_STATUS64, &info);
      close(fd);
      if (rc == 0) {
        out->dev = static_cast<dev_t>(info.lo_device);
        out->ino = static_cast<ino_t>(info.lo_inode);
        return true;
      }
    }
  }
  // No node to ask: fall back to the path the driver reports.
  if (out->path.empty() || stat(out->path.c_str(), &st) != 0) return false;
  out->dev = st.st_dev;
  out->ino = st.st_ino;
  return true;
}

void AddDeviceChain(dev_t d, int depth, StorageKeys* keys);

void AddFileChain(dev_t dev, ino_t ino, int depth, StorageKeys* keys) {
  keys->insert(FileKey(dev, ino));
  AddDeviceChain(dev, depth + 1, keys);
}

// `d` and everything it is built from.
void AddDeviceChain(dev_t d, int depth, StorageKeys* keys) {
  if (depth > kMaxDepth || !keys->insert(DevKey(d)).second) return;
  if (dev_t p = ParentDisk(d)) AddDeviceChain(p, depth + 1, keys);
  for (dev_t s : Slaves(d)) AddDeviceChain(s, depth + 1, keys);
  LoopBackingFile lb;
  if (GetLoopBacking(d, &lb)) AddFileChain(lb.dev, lb.ino, depth + 1, keys);
}

Result<struct stat> Stat(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return Status::FromErrno(errno, "stat " + path);
  return st;
}

std::string DiskId(dev_t d) {
  const std::string dir = SysDir(d);
  static const char* const kAttrs[][2] = {{"dm/uuid", "dm-uuid"}, {"md/uuid", "md-uuid"},
                                          {"wwid", "wwid"},       {"device/wwid", "wwid"},
                                          {"serial", "serial"},   {"device/serial", "serial"}};
  for (const auto& a : kAttrs) {
    std::string v = ReadAttr(dir + "/" + a[0]);
    if (!v.empty()) return std::string(a[1]) + ":" + v;
  }
  return "";
}

}  // namespace

int64_t BirthTimeNs(const std::string& path) {
  struct statx stx;
  if (statx(AT_FDCWD, path.c_str(), 0, STATX_BTIME, &stx) != 0) return 0;
  if ((stx.stx_mask & STATX_BTIME) == 0) return 0;
  return int64_t{stx.stx_btime.tv_sec} * 1000000000 + stx.stx_btime.tv_nsec;
}

std::optional<uint32_t> InodeGeneration(const std::string& path, ino_t ino) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return std::nullopt;
  struct stat st;
  // The kernel writes an int, whatever the ioctl number says (a long).
  unsigned int gen = 0;
  const bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == ino &&
                  ioctl(fd, FS_IOC_GETVERSION, &gen) == 0;
  close(fd);
  if (!ok) return std::nullopt;
  return static_cast<uint32_t>(gen);
}

bool MtimeIsUnstable(const std::string& path) {
  struct statfs sfs;
  if (statfs(path.c_str(), &sfs) != 0) return false;
  return static_cast<uint64_t>(sfs.f_type) == FUSE_SUPER_MAGIC;
}

std::string BlockDeviceId(dev_t rdev) {
  LoopBackingFile lb;
  if (GetLoopBacking(rdev, &lb)) {
    int64_t btime = 0;
    struct stat st;
    if (!lb.path.empty() && stat(lb.path.c_str(), &st) == 0 && st.st_dev == lb.dev &&
        st.st_ino == lb.ino) {
      btime = BirthTimeNs(lb.path);
    }
    return "loop:backing=" + std::to_string(major(lb.dev)) + ":" + std::to_string(minor(lb.dev)) +
           ":" + std::to_string(lb.ino) + ":" + std::to_string(btime);
  }
  if (dev_t parent = ParentDisk(rdev)) {
    const std::string disk = BlockDeviceId(parent);
    if (disk.empty()) return "";
    const std::string dir = SysDir(rdev);
    return disk + ":part=" + ReadAttr(dir + "/partition") + ":start=" + ReadAttr(dir + "/start");
  }
  return DiskId(rdev);
}

std::string LoopBackingPath(dev_t rdev) {
  return ReadAttr(SysDir(rdev) + "/loop/backing_file");
}

bool LoopBackingOf(dev_t rdev, LoopBackingFile* out, bool* partition) {
  *partition = false;
  if (GetLoopBacking(rdev, out)) return true;
  const dev_t whole = ParentDisk(rdev);
  if (whole == 0 || !GetLoopBacking(whole, out)) return false;
  *partition = true;
  return true;
}

std::vector<std::string> LoopDevicesOver(dev_t dev, ino_t ino, dev_t except) {
  std::vector<std::string> out;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/sys/block", ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, 4, "loop") != 0) continue;
    if (access((it->path() / "loop").c_str(), F_OK) != 0) continue;  // not bound
    dev_t d = 0;
    if (!ParseDev(ReadAttr(it->path().string() + "/dev"), &d) || d == except) continue;
    LoopBackingFile lb;
    if (GetLoopBacking(d, &lb) && lb.dev == dev && lb.ino == ino) out.push_back("/dev/" + name);
  }
  std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;  // loop2 before loop10
  });
  return out;
}

uint64_t BlockDeviceSize(dev_t rdev) {
  const std::string text = ReadAttr(SysDir(rdev) + "/size");
  char* end = nullptr;
  const unsigned long long sectors = strtoull(text.c_str(), &end, 10);
  return text.empty() || *end != '\0' ? 0 : static_cast<uint64_t>(sectors) * 512;
}

Result<StorageKeys> OwnStorage(const std::string& path) {
  CLONEFS_ASSIGN_OR_RETURN(struct stat st, Stat(path));
  StorageKeys keys;
  if (!S_ISBLK(st.st_mode)) {
    keys.insert(FileKey(st.st_dev, st.st_ino));
    return keys;
  }
  keys.insert(DevKey(st.st_rdev));
  LoopBackingFile lb;
  if (GetLoopBacking(st.st_rdev, &lb)) keys.insert(FileKey(lb.dev, lb.ino));
  return keys;
}

Result<StorageKeys> UnderlyingStorage(const std::string& path) {
  CLONEFS_ASSIGN_OR_RETURN(struct stat st, Stat(path));
  StorageKeys keys;
  if (!S_ISBLK(st.st_mode)) {
    AddDeviceChain(st.st_dev, 0, &keys);
    return keys;
  }
  // What the device is built from, not the device itself.
  if (dev_t p = ParentDisk(st.st_rdev)) AddDeviceChain(p, 1, &keys);
  for (dev_t s : Slaves(st.st_rdev)) AddDeviceChain(s, 1, &keys);
  LoopBackingFile lb;
  if (GetLoopBacking(st.st_rdev, &lb)) AddDeviceChain(lb.dev, 1, &keys);
  return keys;
}

}  // namespace clonefs::clone
