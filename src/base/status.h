// Status: the one error currency inside clonefs.
//
// A Status is either OK or carries a Code, an optional errno captured at the
// edge where the error entered (the POSIX device layer), and a human-readable
// message that says what went wrong and, where it can, what to do.
//
// errno appears only at the edges: Status::FromErrno() is used by the device
// layer when a system call fails, and ToErrno() by the FUSE handlers when they
// answer a request. Everything in between passes Status values.
//
// THREAD SAFETY: a Status is a value; distinct objects may be used from
// distinct threads freely. An OK Status never allocates.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace clonefs {

class [[nodiscard]] Status {
 public:
  enum class Code : int {
    kOk = 0,
    kIoError,          // an I/O operation failed (EIO and friends)
    kNoSpace,          // destination or metadata filesystem is full (ENOSPC)
    kInvalidArgument,  // caller passed something out of range or malformed
    kNotFound,         // a file, directory or key that should exist does not
    kCorruption,       // persistent data failed validation
    kMismatch,         // metadata belongs to another clone / different files
    kBusy,             // resource held by someone else (lock, mount)
    kReadOnly,         // refused because the clone is in read-only mode
    kFailed,           // the clone is in fail mode: every I/O fails
    kNotSupported,     // the operation is not supported by this object
    kPermission,       // permission denied
    kAborted,          // operation abandoned (shutdown, cancellation)
  };

  Status() noexcept = default;

  static Status OK() noexcept { return Status(); }
  static Status IoError(std::string_view msg, int err = 0) { return {Code::kIoError, msg, err}; }
  static Status NoSpace(std::string_view msg) { return {Code::kNoSpace, msg, 0}; }
  static Status InvalidArgument(std::string_view msg) { return {Code::kInvalidArgument, msg, 0}; }
  static Status NotFound(std::string_view msg) { return {Code::kNotFound, msg, 0}; }
  static Status Corruption(std::string_view msg) { return {Code::kCorruption, msg, 0}; }
  static Status Mismatch(std::string_view msg) { return {Code::kMismatch, msg, 0}; }
  static Status Busy(std::string_view msg) { return {Code::kBusy, msg, 0}; }
  static Status ReadOnly(std::string_view msg) { return {Code::kReadOnly, msg, 0}; }
  static Status Failed(std::string_view msg) { return {Code::kFailed, msg, 0}; }
  static Status NotSupported(std::string_view msg) { return {Code::kNotSupported, msg, 0}; }
  static Status Permission(std::string_view msg) { return {Code::kPermission, msg, 0}; }
  static Status Aborted(std::string_view msg) { return {Code::kAborted, msg, 0}; }

  // Builds a Status from a failed system call. `what` names the operation and
  // object ("pread /path/src.img at 4096"). The code is derived from `err`
  // (ENOSPC -> kNoSpace, ENOENT -> kNotFound, EACCES/EPERM -> kPermission,
  // EBUSY/EAGAIN/EWOULDBLOCK -> kBusy, EINVAL -> kInvalidArgument,
  // EOPNOTSUPP -> kNotSupported, everything else -> kIoError) and `err` is kept
  // so ToErrno() can hand it back unchanged.
  static Status FromErrno(int err, std::string_view what);

  bool ok() const noexcept { return code_ == Code::kOk; }
  Code code() const noexcept { return code_; }
  // The errno captured by FromErrno/IoError, or 0.
  int sys_errno() const noexcept { return errno_; }
  const std::string& message() const noexcept { return msg_; }

  bool IsIoError() const noexcept { return code_ == Code::kIoError; }
  bool IsNoSpace() const noexcept { return code_ == Code::kNoSpace; }
  bool IsInvalidArgument() const noexcept { return code_ == Code::kInvalidArgument; }
  bool IsNotFound() const noexcept { return code_ == Code::kNotFound; }
  bool IsCorruption() const noexcept { return code_ == Code::kCorruption; }
  bool IsMismatch() const noexcept { return code_ == Code::kMismatch; }
  bool IsBusy() const noexcept { return code_ == Code::kBusy; }
  bool IsReadOnly() const noexcept { return code_ == Code::kReadOnly; }
  bool IsFailed() const noexcept { return code_ == Code::kFailed; }
  bool IsNotSupported() const noexcept { return code_ == Code::kNotSupported; }

  // The errno a FUSE handler should answer with. OK -> 0. A captured errno is
  // returned as is; otherwise: kNoSpace -> ENOSPC, kInvalidArgument -> EINVAL,
  // kNotFound -> ENOENT, kBusy -> EBUSY, kNotSupported -> EOPNOTSUPP,
  // kPermission -> EACCES; kReadOnly, kFailed, kIoError, kCorruption,
  // kMismatch and kAborted -> EIO.
  int ToErrno() const noexcept;

  // "OK" or "<code name>: <message>".
  std::string ToString() const;
  static const char* CodeName(Code c) noexcept;

  // Returns a copy whose message is "<prefix>: <message>"; OK stays OK.
  Status WithContext(std::string_view prefix) const;

 private:
  Status(Code c, std::string_view msg, int err) : code_(c), errno_(err), msg_(msg) {}

  Code code_ = Code::kOk;
  int errno_ = 0;
  std::string msg_;
};

// Evaluates `expr` (a Status); returns it from the enclosing function unless OK.
#define CLONEFS_RETURN_IF_ERROR(expr)          \
  do {                                         \
    ::clonefs::Status _clonefs_s = (expr);     \
    if (!_clonefs_s.ok()) return _clonefs_s;   \
  } while (0)

}  // namespace clonefs
