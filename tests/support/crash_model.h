// Test support: the crash model of TESTING §2, shared by the in-process
// power-loss tests (tests/engine/engine_crash_test.cc) and the daemon-kill
// tests through the kernel (tests/mount/kill_crash_test.cc).
//
// Sectors are self-describing ({magic, sector, version, crc} + filler), so a
// sector's content names the write that produced it. Version 0 is the
// source's content; every write (or zeroing) issued gets a new version.
// Per sector the model keeps the floor (the version made durable by a
// successful fsync, or by a write answered under O_SYNC/O_DSYNC), the last
// completed version, and the candidates issued since the last rebase. After
// a crash each sector must hold its floor or a candidate written after it
// (SPEC §5, crash contract 1 and 3; zeros or garbage are violations, 2).
//
// THREAD SAFETY: CrashModel's methods may be called from any thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <random>
#include <string>
#include <unordered_set>
#include <vector>

#include "support/range_reservations.h"

namespace clonefs::test {

inline constexpr uint64_t kSector = 512;
inline constexpr uint64_t kMagic = 0x636c6f6e65667331ull;  // "clonefs1"

inline uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline uint32_t Crc(const uint8_t* p, size_t n) {  // FNV-1a: enough to detect garbage
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

// The content of `sector` as written by version `v`.
inline void FillSector(uint8_t* p, uint64_t sector, uint64_t v) {
  uint64_t x = Mix(sector * 1000003 + v);
  for (size_t i = 32; i < kSector; i += 8) {
    x = Mix(x);
    std::memcpy(p + i, &x, 8);
  }
  std::memcpy(p, &kMagic, 8);
  std::memcpy(p + 8, &sector, 8);
  std::memcpy(p + 16, &v, 8);
  uint32_t crc = Crc(p + 32, kSector - 32);
  std::memcpy(p + 24, &crc, 4);
  std::memset(p + 28, 0, 4);
}

// Classifies a sector read after a crash: its version if it is a valid
// self-describing sector of `sector`, -1 if all zeros, -2 if garbage.
inline int64_t ParseSector(const uint8_t* p, uint64_t sector) {
  if (std::all_of(p, p + kSector, [](uint8_t b) { return b == 0; })) return -1;
  uint64_t magic, s, v;
  std::memcpy(&magic, p, 8);
  std::memcpy(&s, p + 8, 8);
  std::memcpy(&v, p + 16, 8);
  if (magic != kMagic || s != sector) return -2;
  uint8_t want[kSector];
  FillSector(want, sector, v);
  return std::memcmp(want, p, kSector) == 0 ? static_cast<int64_t>(v) : -2;
}

// What the image must contain, per sector. Version 0 is the source's
// content; every write or zero gets a new version.
class CrashModel {
 public:
  CrashModel(uint64_t sectors, std::vector<bool> source_zero)
      : floor_(sectors, 0),
        current_(sectors, 0),
        cands_(sectors),
        src_zero_(std::move(source_zero)) {}

  uint64_t sectors() const { return floor_.size(); }

  // --- range reservation: one request per sector at a time ---
  bool TryReserve(uint64_t s, uint64_t n) { return reserved_.TryReserve(s, n); }
  void Release(uint64_t s) { reserved_.Release(s); }

  // A write (zero: of zeros) of sectors [s, s+n) is issued: a new version.
  uint64_t Issue(uint64_t s, uint64_t n, bool zero) {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t v = ++next_version_;
    if (zero) zero_versions_.insert(v);
    for (uint64_t i = s; i < s + n; ++i) cands_[i].push_back(v);
    return v;
  }
  void Completed(uint64_t s, uint64_t n, uint64_t v, bool durable) {
    std::lock_guard<std::mutex> l(mu_);
    for (uint64_t i = s; i < s + n; ++i) {
      current_[i] = v;
      if (durable) floor_[i] = std::max(floor_[i], v);
    }
  }
  std::vector<uint64_t> SnapshotCompleted() {
    std::lock_guard<std::mutex> l(mu_);
    return current_;
  }
  void FsyncSucceeded(const std::vector<uint64_t>& snap) {
    std::lock_guard<std::mutex> l(mu_);
    for (uint64_t i = 0; i < snap.size(); ++i) floor_[i] = std::max(floor_[i], snap[i]);
  }
  // The expected content of sector s now (for reads during the workload).
  void Current(uint64_t s, const uint8_t* source, uint8_t* out) {
    uint64_t v;
    bool zero;
    {
      std::lock_guard<std::mutex> l(mu_);
      v = current_[s];
      zero = zero_versions_.count(v) != 0;
    }
    Content(s, v, zero, source, out);
  }

  // Whether `p`, the content of sector s read after a power cut, is one the
  // crash contract allows: the floor or a candidate written after it (the
  // engine may have rolled back to its last commit, so acknowledged writes
  // that were never made durable may be gone). Returns a description of the
  // violation, or "".
  std::string CheckAfterCrash(uint64_t s, const uint8_t* p) {
    std::lock_guard<std::mutex> l(mu_);
    uint64_t chosen;
    return AllowedLocked(s, p, &chosen);
  }

  // Checks the post-crash content of every sector against the contract and
  // makes it the new baseline. Returns a description of the first
  // violation, or "".
  std::string VerifyAndRebase(const std::vector<uint8_t>& image) {
    std::lock_guard<std::mutex> l(mu_);
    for (uint64_t s = 0; s < floor_.size(); ++s) {
      uint64_t chosen;
      std::string bad = AllowedLocked(s, image.data() + s * kSector, &chosen);
      if (!bad.empty()) return bad;
      floor_[s] = current_[s] = chosen;
      cands_[s].clear();
    }
    return "";
  }

  void Content(uint64_t s, uint64_t v, bool zero, const uint8_t* source, uint8_t* out) const {
    if (v == 0) {
      std::memcpy(out, source + s * kSector, kSector);
    } else if (zero) {
      std::memset(out, 0, kSector);
    } else {
      FillSector(out, s, v);
    }
  }
  // The full expected image after a rebase.
  std::vector<uint8_t> Baseline(const uint8_t* source) {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<uint8_t> img(floor_.size() * kSector);
    for (uint64_t s = 0; s < floor_.size(); ++s) {
      Content(s, floor_[s], zero_versions_.count(floor_[s]) != 0, source, img.data() + s * kSector);
    }
    return img;
  }

 private:
  // REQUIRES: mu_. Sets *chosen to the allowed version `p` holds.
  std::string AllowedLocked(uint64_t s, const uint8_t* p, uint64_t* chosen) {
    const int64_t got = ParseSector(p, s);
    std::vector<uint64_t> allowed{floor_[s]};
    for (uint64_t v : cands_[s]) {
      if (v > floor_[s]) allowed.push_back(v);
    }
    for (uint64_t v : allowed) {
      bool zero = v == 0 ? src_zero_[s] : zero_versions_.count(v) != 0;
      if (got == -1 ? zero : (!zero && got >= 0 && static_cast<uint64_t>(got) == v)) {
        *chosen = v;
        return "";
      }
    }
    std::string what = got == -1   ? "zeros"
                       : got == -2 ? "garbage"
                                   : "version " + std::to_string(got);
    std::string a;
    for (uint64_t v : allowed) a += " " + std::to_string(v) + (zero_versions_.count(v) ? "z" : "");
    return "sector " + std::to_string(s) + " (byte " + std::to_string(s * kSector) + ") holds " +
           what + "; allowed:" + a + (src_zero_[s] ? " (source sector is zeros)" : "");
  }

  std::mutex mu_;
  RangeReservations reserved_;
  uint64_t next_version_ = 0;                   // GUARDED_BY(mu_)
  std::unordered_set<uint64_t> zero_versions_;  // GUARDED_BY(mu_)
  std::vector<uint64_t> floor_;                 // GUARDED_BY(mu_): version made durable
  std::vector<uint64_t> current_;               // GUARDED_BY(mu_): last completed version
  std::vector<std::vector<uint64_t>> cands_;    // GUARDED_BY(mu_): versions issued since rebase
  const std::vector<bool> src_zero_;
};

// Source: self-describing version-0 sectors, with some 4 KiB holes.
inline std::vector<uint8_t> SelfDescribingSource(uint64_t size, uint64_t seed) {
  std::vector<uint8_t> v(size, 0);
  std::mt19937_64 rng(seed);
  for (uint64_t b = 0; b < size; b += 4096) {
    if (rng() % 4 == 0) continue;
    for (uint64_t s = b; s < std::min(size, b + 4096); s += kSector)
      FillSector(&v[s], s / kSector, 0);
  }
  return v;
}

}  // namespace clonefs::test
