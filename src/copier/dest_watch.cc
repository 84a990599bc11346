#include "copier/dest_watch.h"

#include <cerrno>

#include "base/log.h"

namespace clonefs {

Status DestWatch::Check() {
  if (changed()) return Refusal();
  Status s = dest_->CheckUnchanged();
  if (!s.IsMismatch()) return Status::OK();  // unchanged, or it could not look
  if (CutGrowthBack()) return Status::OK();
  if (latch_.Set(s.message())) {
    CLONEFS_LOG_ERROR(
        "dest %s changed under the live clone: %s. Another program truncated or "
        "resized it; what was hydrated past its end is gone. Nothing more is read "
        "from or written to dest: every request fails with EIO and copying has "
        "stopped. Unmount, then restore dest from a backup, or start a new clone.",
        dest_->Name().c_str(), s.message().c_str());
  }
  return Refusal();
}

DestWatch::Bypass DestWatch::LatchBypass(std::string change, const std::string& what) {
  if (!latch_.Set(change)) return {std::move(change), false};
  CLONEFS_LOG_ERROR(
      "dest %s, while the clone is live: %s. Nothing more is read from or written to dest: "
      "every request fails with EIO and copying has stopped. Use the exposed file under the "
      "mountpoint, never dest, while mounted. Unmount, then restore dest from a backup, or start "
      "a new clone.",
      change.c_str(), what.c_str());
  return {std::move(change), true};
}

DestWatch::Bypass DestWatch::Written(const std::string& who) {
  return LatchBypass(dest_->Name() + " was written by another program, " + who,
                     "dest is the clone's alone while mounted, and what is hydrated there can no "
                     "longer be told from what that program wrote");
}

DestWatch::Bypass DestWatch::Bypassed(const std::string& how) {
  return LatchBypass(dest_->Name() + " " + how,
                     "writes through it bypass the clone and cannot be seen, so what is hydrated "
                     "in dest can no longer be trusted (detach it first)");
}

bool DestWatch::CutGrowthBack() {
  if (!allow_cut_.load()) return false;
  Result<uint64_t> cut = dest_->CutGrowth();
  if (!cut.ok()) {
    CLONEFS_LOG_WARN("dest %s grew past the image's end and could not be cut back: %s",
                     dest_->Name().c_str(), cut.status().ToString().c_str());
    return false;
  }
  if (*cut == 0) return false;  // it did not grow: shrank, or changed otherwise
  const uint64_t n = cuts_.fetch_add(1) + 1;
  cut_bytes_.fetch_add(*cut);
  CLONEFS_LOG_WARN(
      "a write through a passed-through open went past the image's end: dest %s grew by "
      "%llu bytes and was cut back to the image's size (%llu times so far); the image's "
      "size is fixed, and a write past its end gets EFBIG through the daemon",
      dest_->Name().c_str(), static_cast<unsigned long long>(*cut),
      static_cast<unsigned long long>(n));
  return dest_->CheckUnchanged().ok();
}

Status DestWatch::AfterError(const Status& error) {
  if (error.ok()) return error;
  Status s = Check();
  return changed() ? s : error;
}

Status DestWatch::Refusal() const {
  return Status::IoError("dest changed under the clone (" + reason() +
                             "); nothing more is read from or written to it: unmount, then "
                             "restore dest, or start a new clone",
                         EIO);
}

}  // namespace clonefs
