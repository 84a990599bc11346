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

std::string SourceWatch::reason() const {
  if (!changed()) return {};
  std::lock_guard<std::mutex> l(mu_);
  return reason_;
}

Status SourceWatch::Refusal() const {
  return Status::IoError("the source changed under the clone (" + reason() +
                             "); nothing more is copied from it and only hydrated regions "
                             "can be read: restore the source as it was and mount again, or "
                             "start a new clone",
                         EIO);
}

void SourceWatch::Record(const Status& change) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (changed()) return;  // someone else recorded it first
    reason_ = change.message();
    changed_.store(true, std::memory_order_release);
  }
  CLONEFS_LOG_ERROR("source %s changed under the live clone: %s. Background copying has "
                    "stopped and nothing more is hydrated from it; reads of regions not yet "
                    "hydrated fail with EIO, hydrated regions keep working. Restore the source "
                    "as it was and mount again, or unmount and start a new clone.",
                    source_->Name().c_str(), change.message().c_str());
}

}  // namespace clonefs
