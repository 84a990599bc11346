// UriParts: the generic syntax of "SCHEME://[USERINFO@]HOST[:PORT][/PATH][?QUERY][#FRAGMENT]"
// (RFC 3986, hierarchical URIs with an authority only), split without
// interpretation. source_spec.cc gives the parts their meaning per scheme.
//
// THREAD SAFETY: pure functions over values.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"

namespace clonefs {

struct UriParts {
  std::string scheme;  // lower-cased
  bool has_userinfo = false;
  std::string user;  // percent-decoded
  bool has_password = false;
  std::string password;  // percent-decoded
  std::string host;      // as written; an IPv6 literal keeps its brackets
  std::string port;      // digits only, or "" if absent
  std::string path;      // raw (not decoded): "" or starting with '/'
  std::string query;     // raw, without the '?'
  std::string fragment;  // raw, without the '#'
  // `uri` with the password (if any) replaced by "***".
  std::string redacted;
};

// True if `arg` starts with "SCHEME://" where SCHEME is a letter followed by
// letters, digits, '+', '-' or '.'.
bool LooksLikeUri(std::string_view arg);

// Splits `uri`. REQUIRES: LooksLikeUri(uri). Errors: InvalidArgument for a
// bad percent-escape in the user or password, a port that is not a number
// in 1..65535, or an unclosed IPv6 bracket. No message holds the password.
Result<UriParts> SplitUri(const std::string& uri);

// Decodes %XX escapes. Errors: InvalidArgument for a truncated or non-hex
// escape.
Result<std::string> PercentDecode(std::string_view s);

// `s` with every byte but letters, digits, '-', '.', '_', '~' and '/'
// written as %XX (upper-case hex): safe as a query value or a path.
std::string PercentEncodePath(std::string_view s);

// The value of `key` in a query "k1=v1&k2=v2" (raw, not decoded), and
// whether it was present.
bool QueryValue(std::string_view query, std::string_view key, std::string* value);

}  // namespace clonefs
