// Result<T>: a value or a non-OK Status.
//
// Use for functions that produce something and can fail:
//   Result<uint64_t> r = dev.Size();
//   if (!r.ok()) return r.status();
//   uint64_t size = *r;
//
// REQUIRES: value()/operator* only when ok(). Constructing a Result from an OK
// Status is a programming error (checked by assert).
//
// THREAD SAFETY: a value type, like Status.
#pragma once

#include <cassert>
#include <optional>
#include <utility>

#include "base/status.h"

namespace clonefs {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    assert(!status_.ok() && "Result built from an OK Status has no value");
  }

  bool ok() const noexcept { return value_.has_value(); }
  const Status& status() const noexcept { return status_; }

  T& value() & { assert(ok()); return *value_; }
  const T& value() const& { assert(ok()); return *value_; }
  T&& value() && { assert(ok()); return std::move(*value_); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

// Evaluates `rexpr` (a Result<T>); returns its Status unless OK, otherwise
// moves the value into `lhs` (a declaration or an lvalue).
#define CLONEFS_ASSIGN_OR_RETURN(lhs, rexpr)                              \
  CLONEFS_ASSIGN_OR_RETURN_IMPL_(CLONEFS_CONCAT_(_clonefs_r, __LINE__), lhs, rexpr)
#define CLONEFS_CONCAT_INNER_(a, b) a##b
#define CLONEFS_CONCAT_(a, b) CLONEFS_CONCAT_INNER_(a, b)
#define CLONEFS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                   \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

}  // namespace clonefs
