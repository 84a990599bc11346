// A SOURCE argument (ParseSource, RedactSource; `clonefs mount SOURCE ...`,
// and the source recorded with a clone): a path, or an NBD, HTTP(S) or SSH
// URI that may carry a password.
// Checks: a URI's password never shows -- the input's password (if it has
// one) is replaced by a token no other part holds, and neither
// RedactSource, a parsed source's display, the nbdkit command line nor any
// error message may hold that token; a parsed source's display is
// RedactSource's; an argument that is not a URI is a file, shown as given.
#include <string>

#include "fuzz_check.h"
#include "sources/source_spec.h"
#include "sources/uri_parts.h"

namespace clonefs::fuzz {
namespace {

// Letters and digits: never percent-encoded, so it cannot hide as %XX.
const std::string kToken = "Zq9xPasswordTokenZq9x";

// [begin, end) of the password in a URI's authority (after "://", up to
// the first '/', '?' or '#'; the userinfo ends at its last '@' and the
// password starts after its first ':'), or false if there is none.
bool PasswordSpan(const std::string& arg, size_t* begin, size_t* end) {
  const size_t scheme_end = arg.find("://");
  if (scheme_end == std::string::npos) return false;
  const size_t from = scheme_end + 3;
  size_t stop = arg.find_first_of("/?#", from);
  if (stop == std::string::npos) stop = arg.size();
  const size_t at = arg.rfind('@', stop == 0 ? 0 : stop - 1);
  if (at == std::string::npos || at < from) return false;
  const size_t colon = arg.find(':', from);
  if (colon == std::string::npos || colon >= at) return false;
  *begin = colon + 1;
  *end = at;
  return true;
}

}  // namespace

void FuzzOne(std::string_view input) {
  std::string arg(input);
  if (arg.find("Zq9x") != std::string::npos) return;  // the token must be unique
  size_t begin = 0, end = 0;
  const bool secret = PasswordSpan(arg, &begin, &end);
  if (secret) arg.replace(begin, end - begin, kToken);
  const Result<SourceSpec> spec = ParseSource(arg);
  const std::string shown = RedactSource(arg);
  if (spec.ok()) FUZZ_CHECK(spec->display == shown);
  if (!LooksLikeUri(arg)) {
    FUZZ_CHECK(shown == arg);
    if (spec.ok()) FUZZ_CHECK(spec->kind == SourceSpec::Kind::kFile);
    return;
  }
  if (!secret) return;
  FUZZ_CHECK(shown.find(kToken) == std::string::npos);
  if (!spec.ok()) {
    FUZZ_CHECK(spec.status().message().find(kToken) == std::string::npos);
    return;
  }
  for (const std::string& a : spec->nbdkit_argv) FUZZ_CHECK(a.find(kToken) == std::string::npos);
}

}  // namespace clonefs::fuzz
