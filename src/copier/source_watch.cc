#include "copier/source_watch.h"

#include <cerrno>

#include "base/log.h"

namespace clonefs {

Status SourceWatch::Check() {
  if (changed()) return Refusal();
  Status s = source_->CheckUnchanged();
  if (s.ok()) return s;
  if (!s.IsMismatch()) return s;  // could not look; nothing is known to have changed
  Record(s);
  return Refusal();
}

Status SourceWatch::AfterReadError(const Status& read_error) {
  if (read_error.sys_errno() == ETIMEDOUT || read_error.sys_errno() == EINTR) {
    return changed() ? Refusal() : read_error;
  }
  Status s = Check();
  return changed() ? s : read_error;
}

std::string SourceWatch::reason() const { return latch_.reason(); }

Status SourceWatch::Refusal() const {
  return Status::IoError("the source changed under the clone (" + reason() +
                             "); nothing more is copied from it and only hydrated regions "
                             "can be read: restore the source as it was and mount again, or "
                             "start a new clone",
                         EIO);
}

void SourceWatch::Record(const Status& change) {
  if (!latch_.Set(change.message())) return;  // someone else recorded it first
  CLONEFS_LOG_ERROR("source %s changed under the live clone: %s. Background copying has "
                    "stopped and nothing more is hydrated from it; reads of regions not yet "
                    "hydrated fail with EIO, hydrated regions keep working. Restore the source "
                    "as it was and mount again, or unmount and start a new clone.",
                    source_->Name().c_str(), change.message().c_str());
}

}  // namespace clonefs
