// What the kernel says about the storage behind a path: birth time, file
// system kind, and for block devices what they are made of (partitions,
// device-mapper/md slaves, loop backing files) and what names the disk.
// Read from statx, statfs, sysfs (/sys/dev/block/MAJ:MIN) and the loop
// driver's LOOP_GET_STATUS64; never writes anything.
//
// THREAD SAFETY: stateless functions.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"

namespace clonefs::clone {

// Birth time of `path` in ns since the epoch, or 0 where the file system
// does not record it (statx without STATX_BTIME).
int64_t BirthTimeNs(const std::string& path);

// Inode generation of the regular file at `path` (FS_IOC_GETVERSION: ext2/3/4,
// XFS, f2fs, ...), or nullopt where the file system has none (ENOTTY,
// EOPNOTSUPP: tmpfs, btrfs, FUSE...), the file cannot be opened, or it is no
// longer inode `ino` (replaced meanwhile). Opens the file read-only for the
// ioctl; never reads or writes it.
std::optional<uint32_t> InodeGeneration(const std::string& path, ino_t ino);

// True if `path` lives on a file system whose mtimes may be invented by its
// server (FUSE: nbdfuse, for one, sets them to its own mount time), so an
// mtime change there says nothing about the content.
bool MtimeIsUnstable(const std::string& path);

// A name for the storage behind block device `rdev` that survives the
// device being renumbered and changes when the number is reused for
// another disk: "loop:backing=MAJ:MIN:INO:BTIME" for a loop device,
// "wwid:...", "serial:...", "dm-uuid:...", "md-uuid:..." from sysfs, with
// ":part=N" for a partition of such a disk; "" when the kernel offers
// nothing (then only the device number and size identify it).
std::string BlockDeviceId(dev_t rdev);

// The backing file a loop device reports (sysfs loop/backing_file; may end
// in " (deleted)"), or "" if `rdev` is not a bound loop device.
std::string LoopBackingPath(dev_t rdev);

// The file a loop device is bound to: its device and inode as the loop
// driver holds them (LOOP_GET_STATUS64), and the path it reports (sysfs
// loop/backing_file: possibly stale, seen from another mount namespace, or
// ending in " (deleted)").
struct LoopBackingFile {
  dev_t dev = 0;
  ino_t ino = 0;
  std::string path;
  dev_t loop = 0;  // the (whole) loop device bound to it
};

// The backing file of block device `rdev` if it is a bound loop device or a
// partition of one (then `*partition` is set, and the file is the whole
// loop device's); false otherwise.
bool LoopBackingOf(dev_t rdev, LoopBackingFile* out, bool* partition);

// Every bound loop device whose backing file is the inode `ino` on device
// `dev`, as "/dev/loopN", by number, except the device numbered `except`
// (0: none). Partitions of those devices are not listed (their whole
// device is).
std::vector<std::string> LoopDevicesOver(dev_t dev, ino_t ino, dev_t except = 0);

// Size in bytes of block device `rdev` (sysfs "size" in 512-byte sectors),
// or 0 if unknown.
uint64_t BlockDeviceSize(dev_t rdev);

// Keys naming storage objects: "blk:MAJ:MIN" for a block device,
// "file:MAJ:MIN:INO" for a file (the device and inode it lives on).
using StorageKeys = std::set<std::string>;

// The objects that ARE the content of `path`: its file key for a regular
// file; for a block device its own key plus, for a loop device, its backing
// file's key. Errors: the stat error (NotFound, Permission, ...).
Result<StorageKeys> OwnStorage(const std::string& path);

// Everything the content of `path` is stored on: the block device holding a
// regular file's file system, or a block device's whole disk (for a
// partition) and slaves (device-mapper, md), recursively, with loop devices
// expanded into their backing files and, in turn, what those live on.
// Errors: as OwnStorage.
Result<StorageKeys> UnderlyingStorage(const std::string& path);

}  // namespace clonefs::clone
