#include "engine/io_error_log.h"

#include <cstring>
#include <string>

#include "base/log.h"

namespace clonefs {

namespace {

const char* KindName(IoKind k) {
  switch (k) {
    case IoKind::kRead: return "read";
    case IoKind::kWrite: return "write";
    case IoKind::kZero: return "zero/punch";
  }
  return "?";
}

}  // namespace

bool IoErrorLog::Loggable(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk:
    case Status::Code::kInvalidArgument:  // the request's own fault
    case Status::Code::kReadOnly:         // the mode; logged when it changed
    case Status::Code::kFailed:
    case Status::Code::kAborted:          // shutdown, test kill points
      return false;
    default:
      return true;
  }
}

void IoErrorLog::Report(IoKind kind, uint64_t off, uint64_t len, const Status& s) {
  if (!Loggable(s)) return;
  const uint64_t now = clock_->NowNanos();
  uint64_t suppressed;
  {
    std::lock_guard<std::mutex> l(mu_);
    PerKind& k = kinds_[static_cast<int>(kind)];
    // (`now` may be older than another thread's last_ns: within the interval.)
    if (k.logged && now < k.last_ns + kIntervalNanos) {
      ++k.suppressed;
      return;
    }
    suppressed = k.suppressed;
    k.logged = true;
    k.last_ns = now;
    k.suppressed = 0;
  }
  const int err = s.ToErrno();
  const char* name = strerrorname_np(err);
  std::string more;
  if (suppressed != 0) {
    more = "; " + std::to_string(suppressed) + " more " + KindName(kind) +
           " error(s) since the last report";
  }
  CLONEFS_LOG_WARN("%s of %llu bytes at offset %llu answered errno %d (%s): %s (check the "
                   "device named and the kernel log)%s",
                   KindName(kind), static_cast<unsigned long long>(len),
                   static_cast<unsigned long long>(off), err, name ? name : "?",
                   s.ToString().c_str(), more.c_str());
}

}  // namespace clonefs
