#include "base/status.h"

#include <cerrno>
#include <cstring>

namespace clonefs {

Status Status::FromErrno(int err, std::string_view what) {
  Code c = Code::kIoError;
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      c = Code::kNoSpace;
      break;
    case ENOENT:
      c = Code::kNotFound;
      break;
    case EACCES:
    case EPERM:
    case EROFS:
      c = Code::kPermission;
      break;
    case EBUSY:
    case EAGAIN:
      c = Code::kBusy;
      break;
    case EINVAL:
      c = Code::kInvalidArgument;
      break;
    case EOPNOTSUPP:
      c = Code::kNotSupported;
      break;
    default:
      break;
  }
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return Status(c, msg, err);
}

int Status::ToErrno() const noexcept {
  if (ok()) return 0;
  if (errno_ != 0) return errno_;
  switch (code_) {
    case Code::kNoSpace:
      return ENOSPC;
    case Code::kInvalidArgument:
      return EINVAL;
    case Code::kNotFound:
      return ENOENT;
    case Code::kBusy:
      return EBUSY;
    case Code::kNotSupported:
      return EOPNOTSUPP;
    case Code::kPermission:
      return EACCES;
    default:
      return EIO;
  }
}

const char* Status::CodeName(Code c) noexcept {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kIoError: return "I/O error";
    case Code::kNoSpace: return "no space";
    case Code::kInvalidArgument: return "invalid argument";
    case Code::kNotFound: return "not found";
    case Code::kCorruption: return "corruption";
    case Code::kMismatch: return "mismatch";
    case Code::kBusy: return "busy";
    case Code::kReadOnly: return "read-only";
    case Code::kFailed: return "failed";
    case Code::kNotSupported: return "not supported";
    case Code::kPermission: return "permission denied";
    case Code::kAborted: return "aborted";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s = CodeName(code_);
  if (!msg_.empty()) {
    s += ": ";
    s += msg_;
  }
  return s;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return *this;
  std::string m(prefix);
  if (!msg_.empty()) {
    m += ": ";
    m += msg_;
  }
  return Status(code_, m, errno_);
}

}  // namespace clonefs
