#include "copier/dest_watch.h"

#include <cerrno>

#include "base/log.h"

namespace clonefs {

Status DestWatch::Check() {
  if (changed()) return Refusal();
  Status s = dest_->CheckUnchanged();
  if (!s.IsMismatch()) return Status::OK();  // unchanged, or it could not look
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
