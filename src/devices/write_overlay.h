// Internal to the device layer: the unsynced writes and zeros that a volatile
// FaultDevice keeps aside from its base ("durable") device.
//
// STRUCTURE: an ordered log of pending operations, replayed in order on
// flush (so a punch reaches the base as a punch), plus, for every 512-byte
// sector a pending operation touched, the sector's content after each of
// those operations, oldest first. Reads overlay the newest version on the
// base's content; a crash that keeps a random subset picks, per sector, the
// durable content or one of its versions. Memory: roughly 600 bytes per
// pending sector version (an all-zero version is shared), which suits tests,
// not production.
//
// THREAD SAFETY: none; FaultDevice serializes every call.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "devices/device.h"

namespace clonefs {

class WriteOverlay {
 public:
  static constexpr uint64_t kSector = 512;

  // `base` is not owned and must outlive this.
  explicit WriteOverlay(Device* base) : base_(base) {}

  // Record a pending write, or a pending zero (content reads as zeros).
  // Reads the base for partly covered sectors seen for the first time; a
  // failure there records nothing. REQUIRES: the range is inside the base.
  Status AddWrite(uint64_t off, const uint8_t* data, uint64_t len);
  Status AddZero(uint64_t off, uint64_t len, ZeroMode mode);

  // `buf` holds the base's bytes [off, off+len); overlays pending content.
  void Apply(uint64_t off, uint8_t* buf, uint64_t len) const;

  // Replays the log onto the base, in order, and then forgets everything.
  // On an error, the operations already replayed leave the log (the base
  // holds them now) and the rest stay pending.
  Status ReplayOntoBase();

  // For every pending sector, independently: leave the base's (durable)
  // content, or write the content after the first k of the pending
  // operations that touched it (k >= 1, chosen uniformly with "durable").
  // Then forgets everything. Never writes anything else.
  Status ApplyRandomSubset(uint64_t seed);

  void Clear();
  bool empty() const { return log_.empty(); }
  // Sum of the lengths of the pending operations.
  uint64_t pending_bytes() const { return pending_bytes_; }

 private:
  struct Op {
    uint64_t off;
    uint64_t len;
    bool zero;  // true: Zero(off, len, mode); false: Write(off, data)
    ZeroMode mode;
    std::string data;
  };
  using Version = std::shared_ptr<const std::string>;

  // Appends a version for every sector of [off, off+len); data == nullptr
  // means zeros.
  Status AddVersions(uint64_t off, const uint8_t* data, uint64_t len);
  uint64_t SectorLength(uint64_t sector) const;

  Device* const base_;
  std::deque<Op> log_;
  std::map<uint64_t, std::vector<Version>> sectors_;  // sector number -> versions
  uint64_t pending_bytes_ = 0;
};

}  // namespace clonefs
