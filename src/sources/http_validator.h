// HttpValidator: what a web server says identifies the version of the file
// it serves under a URL (RFC 9110 §8.8): a strong ETag, or else its
// Last-Modified date. OpenNbdSource learns it once, at open, with a HEAD
// request of its own (libcurl), and every request nbdkit's curl plugin
// sends then carries it as a precondition (`If-Match: ETAG`, else
// `If-Unmodified-Since: DATE`). A file replaced under the URL while the
// clone is live is then refused by the server (412 Precondition Failed)
// instead of being read: no byte of the new file reaches dest, even between
// two identity re-checks (SPEC §7a). The re-check asks again (FetchHttpValidator)
// and names the change (ValidatorChange).
//
// A weak ETag (W/"...") cannot be used with If-Match (RFC 9110 §13.1.1
// compares strongly), so it counts as none. A server that sends neither is
// read as before, guarded by the periodic fingerprint re-check only.
//
// THREAD SAFETY: FetchHttpValidator may be called from any thread (each
// call uses a libcurl handle of its own); the rest are pure functions.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "base/result.h"
#include "sources/source_spec.h"

namespace clonefs {

struct HttpValidator {
  std::string etag;           // a strong entity tag with its quotes; "" if none
  std::string last_modified;  // an HTTP-date as the server sent it; "" if none

  bool empty() const { return etag.empty() && last_modified.empty(); }
  // last_modified in ns since the epoch (whole seconds: an HTTP-date has
  // no finer ones); 0 if there is none or it does not parse.
  int64_t LastModifiedNs() const;
  // The header that makes the server refuse a request for another version
  // ("If-Match: ETAG", else "If-Unmodified-Since: DATE"); "" if empty().
  std::string Precondition() const;
  // For people: "ETag \"abc\"", "Last-Modified Mon, 30 Nov 2026 ...", or
  // "none".
  std::string Describe() const;
};

// The validator the server gives now for `spec`'s URL (kHttp only): a HEAD
// request with the URL's user and password, redirects followed (between
// http and https only, as nbdkit's are), within `timeout_ns`. Errors:
// InvalidArgument for another kind; IoError naming the URL (display form)
// and what failed (curl's message, or the HTTP status), with errno
// ETIMEDOUT if no answer came within `timeout_ns`; Aborted soon (within
// about a second: libcurl's progress callback) after `*cancel` becomes true.
Result<HttpValidator> FetchHttpValidator(const SourceSpec& spec, uint64_t timeout_ns,
                                         const std::atomic<bool>* cancel = nullptr);

// The validator from a response's header values, as FetchHttpValidator
// reads them (a weak or malformed ETag is dropped). Exposed for tests.
HttpValidator ValidatorFromHeaders(const std::string& etag, const std::string& last_modified);

// What changed between the validator learned at open and one fetched now,
// as a clause for a message ("the web server now gives ETag \"b\" for it,
// not \"a\": the file under the URL was replaced"); "" if `now` still
// matches `was` (the field `was` used: its ETag, or else its date).
std::string ValidatorChange(const HttpValidator& was, const HttpValidator& now);

}  // namespace clonefs
