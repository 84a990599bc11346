#include "sources/http_validator.h"

#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <mutex>

namespace clonefs {
namespace {

// curl_global_init is not thread-safe in every libcurl; once per process.
void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};

// The value of header `name` in the last response (after redirects), "" if
// it has none.
std::string LastHeader(CURL* h, const char* name) {
  struct curl_header* hdr = nullptr;
  if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hdr) != CURLHE_OK || hdr == nullptr) {
    return "";
  }
  return hdr->value;
}

// CURLOPT_XFERINFOFUNCTION: non-zero aborts the transfer.
int Cancelled(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(cancel)->load(std::memory_order_relaxed) ? 1 : 0;
}

bool IsStrongEtag(const std::string& tag) {
  // entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE: a strong one is quoted,
  // with no quote inside.
  return tag.size() >= 2 && tag.front() == '"' && tag.back() == '"' &&
         tag.find('"', 1) == tag.size() - 1;
}

}  // namespace

std::string HttpValidator::Precondition() const {
  if (!etag.empty()) return "If-Match: " + etag;
  if (!last_modified.empty()) return "If-Unmodified-Since: " + last_modified;
  return "";
}

int64_t HttpValidator::LastModifiedNs() const {
  if (last_modified.empty()) return 0;
  const time_t t = curl_getdate(last_modified.c_str(), nullptr);
  return t > 0 ? static_cast<int64_t>(t) * 1'000'000'000 : 0;
}

std::string HttpValidator::Describe() const {
  if (!etag.empty()) return "ETag " + etag;
  if (!last_modified.empty()) return "Last-Modified " + last_modified;
  return "none";
}

HttpValidator ValidatorFromHeaders(const std::string& etag, const std::string& last_modified) {
  HttpValidator v;
  if (IsStrongEtag(etag)) v.etag = etag;
  v.last_modified = last_modified;
  return v;
}

Result<HttpValidator> FetchHttpValidator(const SourceSpec& spec, uint64_t timeout_ns,
                                         const std::atomic<bool>* cancel) {
  if (spec.kind != SourceSpec::Kind::kHttp) {
    return Status::InvalidArgument("'" + spec.display + "' is not an http(s):// source");
  }
  GlobalInit();
  // Declared before the handle: libcurl may write an error while cleaning up.
  char err[CURL_ERROR_SIZE] = "";
  std::unique_ptr<CURL, EasyDeleter> h(curl_easy_init());
  if (!h) return Status::IoError("cannot ask " + spec.display + ": curl_easy_init failed");
  const long timeout_ms = static_cast<long>(std::max<uint64_t>(timeout_ns / 1'000'000, 1));
  CURL* c = h.get();
  // The URL as given, credentials included (libcurl decodes them as nbdkit
  // gets them: user= and the password on its pipe).
  curl_easy_setopt(c, CURLOPT_URL, spec.uri.c_str());
  curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 20L);  // a loop ends before the timeout
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a threaded daemon
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
  if (cancel != nullptr) {
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Cancelled);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel));
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  }
  const CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    return Status::Aborted("asking " + spec.display + " for its version was cancelled");
  }
  if (rc != CURLE_OK) {
    // No answer in time is ETIMEDOUT, for the caller to tell it apart from
    // a server that answered with an error.
    return Status::IoError("cannot ask " + spec.display + " for its version (HEAD): " +
                               (err[0] != '\0' ? std::string(err) : curl_easy_strerror(rc)),
                           rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : 0);
  }
  return ValidatorFromHeaders(LastHeader(c, "ETag"), LastHeader(c, "Last-Modified"));
}

std::string ValidatorChange(const HttpValidator& was, const HttpValidator& now) {
  if (!was.etag.empty()) {
    if (now.etag == was.etag) return "";
    if (now.etag.empty()) {
      return "the web server no longer gives the ETag " + was.etag +
             " for it (none now): it cannot be told to be the same file";
    }
    return "the web server now gives ETag " + now.etag + " for it, not " + was.etag +
           ": the file under the URL was replaced";
  }
  if (was.last_modified.empty() || now.last_modified == was.last_modified) return "";
  if (now.last_modified.empty()) {
    return "the web server no longer gives its Last-Modified date (" + was.last_modified +
           "): it cannot be told to be the same file";
  }
  return "the web server now says it was last modified " + now.last_modified + ", not " +
         was.last_modified + ": the file under the URL was replaced";
}

}  // namespace clonefs
