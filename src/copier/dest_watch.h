// DestWatch: is dest still the size it was when the clone opened it, and
// has no other program written it?
// (SPEC §7a: a dest truncated under a live clone is never served as if its
// hydrated regions were there.)
//
// While mounted, dest is the clone's alone (DestLock), so a size other than
// the one it had at open means another program truncated or extended it.
// What was hydrated past a truncation is gone, and any write past the new
// end -- the copier's or a user's -- would extend the file with a hole that
// reads as zeros where hydrated data was. So once a change is seen (a
// Device::CheckUnchanged answer of Mismatch) the state is sticky for the
// life of the engine: nothing more is read from or written to dest, every
// request fails with EIO naming the change, copying stops, and status and
// the log (once, at error level) say why and what to do.
//
// GROWTH THROUGH PASSTHROUGH: once a complete clone passes opens with write
// access through to dest (FUSE passthrough), the kernel writes dest itself
// and a write past the image's end (`echo x >> FILE`) extends dest, where
// the daemon would have answered EFBIG. After AllowGrowthCut, a dest that
// grew is cut back to the image's size (Device::CutGrowth: only bytes past
// the image's end go, which no one can read through the clone) and logged
// as a warning, instead of failing every request. A dest that shrank is
// still a change, as is growth before AllowGrowthCut.
//
// OTHER WRITERS: writes by other programs that keep dest's size (`mkfs`,
// `dd` on dest instead of the exposed file) are reported by the engine's
// ForeignWriteWatch (devices/foreign_write_watch.h) through Written, and a
// loop device attached to dest (whose writes that watch cannot see) by the
// engine's periodic look (EngineOptions::dest_bypass) through Bypassed:
// the same sticky change.
//
// Who checks: the engine after a failed dest read or write (a truncated
// file gives short reads); the Hydrator before each copy's write; the
// background copier periodically, also when idle or complete; the engine
// before a commit that fsync asked for. A write that extends the file again
// between two checks can hide a truncation from the size check; reads of
// the lost range found before that are refused.
//
// THREAD SAFETY: all methods may be called from any thread (the state is a
// ChangeLatch).
// LIFECYCLE: borrows dest; it must outlive this.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "base/status.h"
#include "copier/change_latch.h"
#include "devices/device.h"

namespace clonefs {

class DestWatch {
 public:
  explicit DestWatch(Device* dest) : dest_(dest) {}

  // Re-examines dest. OK if unchanged; Refusal() if it changed (now or
  // before). A check that itself fails (fstat failing) is not a change: OK.
  Status Check();
  // For a failed dest operation: Refusal() if dest changed (the likely
  // cause of a short read), else `error` unchanged.
  Status AfterError(const Status& error);

  // From now on, growth is cut back instead of latched (GROWTH THROUGH
  // PASSTHROUGH). Idempotent.
  void AllowGrowthCut() { allow_cut_.store(true); }
  // Times growth was cut back, and the bytes cut in all.
  uint64_t growth_cuts() const { return cuts_.load(); }
  uint64_t growth_cut_bytes() const { return cut_bytes_.load(); }

  // What Written and Bypassed saw: `change` ("<dest> was written by another
  // program, pid 4242 (mkfs.ext4)"), and whether it was dest's first change
  // of any kind (then it is reason(), and was logged).
  struct Bypass {
    std::string change;
    bool first = false;
  };
  // Another program wrote dest (ForeignWriteWatch; `who` as DescribeWriter
  // says): a change, as a new size is.
  Bypass Written(const std::string& who);
  // dest can be written without the clone seeing it (`how`: "is the backing
  // file of loop device /dev/loop0"; writes through a loop device make no
  // events): a change too.
  Bypass Bypassed(const std::string& how);

  bool changed() const { return latch_.set(); }
  // What changed ("<dest> shrank from A to B bytes"); empty while unchanged.
  std::string reason() const { return latch_.reason(); }
  // The error for every request once dest changed: IoError(EIO) naming the
  // change and what to do.
  Status Refusal() const;

 private:
  // Cuts growth back if allowed; true if dest now has its size again.
  bool CutGrowthBack();
  // Written and Bypassed: records `change`, unless a change was recorded,
  // and logs it with `what` it means.
  Bypass LatchBypass(std::string change, const std::string& what);

  Device* const dest_;
  ChangeLatch latch_;
  std::atomic<bool> allow_cut_{false};
  std::atomic<uint64_t> cuts_{0};
  std::atomic<uint64_t> cut_bytes_{0};
};

}  // namespace clonefs
