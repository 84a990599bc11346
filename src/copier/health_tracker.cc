#include "copier/health_tracker.h"

#include <cerrno>
#include <cstring>

#include "base/clock.h"
#include "base/log.h"

namespace clonefs {
namespace {

std::string What(const char* op, uint64_t off, int err) {
  return std::string(op) + " at offset " + std::to_string(off) + ": " + std::strerror(err);
}

}  // namespace

bool HealthTracker::Recordable(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk:
    case Status::Code::kInvalidArgument:  // the request's own fault
    case Status::Code::kReadOnly:         // the mode refusing
    case Status::Code::kFailed:
    case Status::Code::kAborted:          // shutdown, test kill points
      return false;
    default:
      return s.ToErrno() != EINTR;  // a reader gave up (FUSE interrupt)
  }
}

void HealthTracker::Record(ErrorKind kind, std::string what, int err) {
  // REQUIRES: mu_ held.
  LastError& e = last_;
  e.kind = kind;
  e.what = std::move(what);
  e.err = err;
  e.unix_ns = WallNowNanos();
  e.count = ++counts_[static_cast<int>(kind)];
}

void HealthTracker::DestFailed(const char* op, uint64_t off, const Status& s) {
  if (!Recordable(s)) return;
  const int err = s.ToErrno();
  const bool full = err == ENOSPC || err == EDQUOT;
  const DestCondition now = full ? DestCondition::kFull : DestCondition::kIoError;
  DestCondition before;
  std::string what = What(op, off, err);
  {
    std::lock_guard<std::mutex> l(mu_);
    Record(full ? ErrorKind::kDestFull : ErrorKind::kDestIo, what, err);
    dest_errors_.fetch_add(1, std::memory_order_acq_rel);
    before = dest();
    if (before == now) return;
    if (before == DestCondition::kOk) errors_at_change_ = DestErrors() - 1;
    dest_.store(static_cast<int>(now), std::memory_order_relaxed);
  }
  const char* name = strerrorname_np(err);
  if (full) {
    CLONEFS_LOG_WARN("destination %s is full (%s, errno %d %s: %s): copies are retried with "
                     "backoff and writes that need space fail with ENOSPC until space is freed "
                     "on its file system",
                     dest_name_.c_str(), what.c_str(), err, name ? name : "?",
                     s.ToString().c_str());
  } else {
    CLONEFS_LOG_ERROR("destination %s fails (%s, errno %d %s: %s): copies are retried with "
                      "backoff; check the device and the kernel log",
                      dest_name_.c_str(), what.c_str(), err, name ? name : "?",
                      s.ToString().c_str());
  }
}

void HealthTracker::DestHydrated(uint64_t errors_at_start) {
  if (dest() == DestCondition::kOk || DestErrors() != errors_at_start) return;
  DestCondition before;
  uint64_t errors;
  {
    std::lock_guard<std::mutex> l(mu_);
    before = dest();
    if (before == DestCondition::kOk || DestErrors() != errors_at_start) return;
    dest_.store(static_cast<int>(DestCondition::kOk), std::memory_order_relaxed);
    errors = DestErrors() - errors_at_change_;
  }
  CLONEFS_LOG_INFO("destination %s takes writes again (%s): a copy succeeded after %llu failed "
                   "dest operation(s)",
                   dest_name_.c_str(),
                   before == DestCondition::kFull ? "dest has space again" : "dest I/O recovered",
                   static_cast<unsigned long long>(errors));
}

void HealthTracker::SourceFailed(const char* op, uint64_t off, const Status& s) {
  if (!Recordable(s)) return;
  const int err = s.ToErrno();
  std::lock_guard<std::mutex> l(mu_);
  Record(ErrorKind::kSource, What(op, off, err), err);
}

void HealthTracker::MetadataFailed(const std::string& what, const Status& s) {
  if (!Recordable(s)) return;
  std::lock_guard<std::mutex> l(mu_);
  Record(ErrorKind::kMetadata, what + ": " + s.ToString(), s.ToErrno());
}

LastError HealthTracker::last_error() const {
  std::lock_guard<std::mutex> l(mu_);
  return last_;
}

}  // namespace clonefs
