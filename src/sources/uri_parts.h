// UriParts: the generic syntax of "SCHEME://[USERINFO@]HOST[:PORT][/PATH][?QUERY][#FRAGMENT]"
// (RFC 3986, hierarchical URIs with an authority only), split without
// interpretation. source_spec.cc gives the parts their meaning per scheme.
//
// THREAD SAFETY: pure functions over values.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  // RedactSecrets(uri).
  std::string redacted;
};

// Whether a query parameter named `key` (as written) carries a credential,
// by its name, case-insensitively: "sig" and "key" exactly, or any name
// containing "signature", "token", "secret", "password", "passwd",
// "credential", "apikey", "api_key", "api-key", "access_key" or "auth"
// (X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token,
// X-Goog-Signature, Azure's sig, access_token, api_key ...).
bool IsSecretQueryKey(std::string_view key);

// The byte ranges [first, second) of `uri` that hold secrets: the password
// of the authority (between the userinfo's first ':' and its last '@'), and
// the value of every query parameter IsSecretQueryKey names. They are what
// is never shown: UriParts::redacted replaces each with "***", and the
// command line overwrites them in its own arguments. Works on any text:
// none without "://". In order, not overlapping, none empty.
std::vector<std::pair<size_t, size_t>> SecretSpans(std::string_view uri);
// `uri` with every SecretSpans range replaced by "***".
std::string RedactSecrets(std::string_view uri);

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
