// The control channel's wire format (docs/control.md, "Protocol").
//
// One request per connection. The client sends one line (words separated by
// spaces, ending in '\n', at most kMaxRequestBytes including the newline).
// The server answers with
//   a status line:  "ok" or "error <first line of the error text>"
//   payload lines:  the result (ok) or the rest of the error text (error);
//                   a line that starts with '.' is sent with one more '.'
//   a terminator:   a line holding a single "."
// and closes the connection.
//
// THREAD SAFETY: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace clonefs::control {

inline constexpr size_t kMaxRequestBytes = 4096;
inline constexpr size_t kMaxResponseBytes = 1 << 20;

struct Response {
  bool ok = false;
  // ok: the payload (each line ends in '\n'); error: the error text.
  std::string text;
};

// Splits a request line (without its '\n') into words. Errors:
// InvalidArgument if it is empty, longer than kMaxRequestBytes - 1, or holds
// a control character other than space and tab.
Result<std::vector<std::string>> SplitRequest(std::string_view line);

// Joins words into a request line ending in '\n'. Errors: InvalidArgument if
// a word is empty or holds whitespace or control characters (it would not
// survive SplitRequest), or the line is too long.
Result<std::string> EncodeRequest(const std::vector<std::string>& words);

std::string EncodeResponse(const Response& r);

// Decodes a complete response as read until EOF. Errors: InvalidArgument if
// the status line is malformed or the terminator is missing (a truncated
// response).
Result<Response> DecodeResponse(std::string_view wire);

}  // namespace clonefs::control
