#include "sources/source_spec.h"

#include <libnbd.h>

#include <filesystem>

#include "sources/uri_parts.h"

namespace clonefs {
namespace {

constexpr const char* kSupported =
    "supported sources are a file or block device path, nbd://HOST[:PORT]/EXPORT, "
    "nbds://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?socket=PATH, "
    "nbds+unix:///EXPORT?socket=PATH, http://URL, https://URL and "
    "ssh://[USER@]HOST[:PORT]/PATH";

constexpr const char* kNbdForms =
    "expected nbd://HOST[:PORT]/EXPORT, nbds://HOST[:PORT]/EXPORT, "
    "nbd+unix:///EXPORT?socket=PATH or nbds+unix:///EXPORT?socket=PATH";

Status Malformed(const std::string& display, const std::string& what, const char* expected) {
  return Status::InvalidArgument("malformed source URI '" + display + "': " + what + "; " +
                                 expected);
}

bool LibnbdSupportsTls() {
  nbd_handle* h = nbd_create();
  if (h == nullptr) return false;
  bool tls = nbd_supports_tls(h) > 0;
  nbd_close(h);
  return tls;
}

// The nbdkit command line every spawned plugin shares: read-only, one
// connection on stdin/stdout, gone when clonefs goes. The retry filter
// reopens the plugin (a new HTTP or SSH session) when a request fails,
// so a web server or sshd that restarts, or a dropped TCP session, costs
// a retry inside nbdkit instead of an error to clonefs; OpenNbdSource
// bounds its retries by the source timeout.
std::vector<std::string> NbdkitPrefix(const char* plugin) {
  return {"nbdkit", "-r", "-s", "--exit-with-parent", "--filter=retry", plugin};
}

std::string PasswordArg() { return "password=-" + std::to_string(kNbdkitPasswordFd); }

// `uri` without its userinfo when that holds a password (the user and the
// password are then given to nbdkit apart).
std::string UrlWithoutPassword(const std::string& uri, const UriParts& p) {
  if (!p.has_password) return uri;
  const size_t begin = uri.find("://") + 3;
  const size_t end = uri.find_first_of("/?#", begin);
  const size_t at = uri.rfind('@', end == std::string::npos ? std::string::npos : end - 1);
  if (at == std::string::npos || at < begin) return uri;
  return uri.substr(0, begin) + uri.substr(at + 1);
}

Result<SourceSpec> ParseNbd(SourceSpec spec, const UriParts& p) {
  const bool unix_socket = p.scheme == "nbd+unix" || p.scheme == "nbds+unix";
  const bool tls = p.scheme == "nbds" || p.scheme == "nbds+unix";
  std::string socket;
  const bool has_socket = QueryValue(p.query, "socket", &socket);
  if (unix_socket) {
    if (!p.host.empty() || !p.port.empty()) {
      return Malformed(spec.display, "a Unix-socket URI has no host or port", kNbdForms);
    }
    if (!has_socket || socket.empty()) {
      return Malformed(spec.display, "missing ?socket=PATH", kNbdForms);
    }
  } else {
    if (p.host.empty() || p.host == "[]") {
      return Malformed(spec.display, "missing host", kNbdForms);
    }
    if (has_socket) {
      return Malformed(spec.display, "socket= belongs to nbd+unix:// URIs only", kNbdForms);
    }
  }
  if (!p.fragment.empty()) {
    return Malformed(spec.display, "unexpected '#" + p.fragment + "'", kNbdForms);
  }
  // libnbd knows the schemes in lower case only.
  spec.uri = p.scheme + spec.uri.substr(spec.uri.find("://"));
  if (!p.path.empty()) {
    Result<std::string> name = PercentDecode(std::string_view(p.path).substr(1));
    if (!name.ok()) return Malformed(spec.display, name.status().message(), kNbdForms);
    spec.export_name = *name;
  }
  if (tls && !LibnbdSupportsTls()) {
    return Status::NotSupported("cannot use '" + spec.display +
                                "': this libnbd was built without TLS");
  }
  return spec;
}

Result<SourceSpec> ParseHttp(SourceSpec spec, const UriParts& p) {
  if (p.host.empty() || p.host == "[]") {
    return Malformed(spec.display, "missing host", "expected http[s]://HOST[:PORT]/PATH");
  }
  spec.nbdkit_argv = NbdkitPrefix("curl");
  spec.nbdkit_argv.push_back("url=" + UrlWithoutPassword(spec.uri, p));
  if (p.has_password) {
    // curl sends the URL's user with this password, as it would from the URL.
    spec.nbdkit_argv.push_back("user=" + p.user);
    spec.nbdkit_argv.push_back(PasswordArg());
    spec.nbdkit_password = p.password;
  }
  // Redirects may switch between http and https, never to another protocol.
  spec.nbdkit_argv.push_back("protocols=http,https");
  return spec;
}

Result<SourceSpec> ParseSsh(SourceSpec spec, const UriParts& p) {
  constexpr const char* kForm = "expected ssh://[USER@]HOST[:PORT]/PATH";
  if (p.host.empty() || p.host == "[]") return Malformed(spec.display, "missing host", kForm);
  if (p.path.size() <= 1) return Malformed(spec.display, "missing path", kForm);
  if (!p.query.empty() || !p.fragment.empty()) {
    return Malformed(spec.display, "unexpected query or fragment", kForm);
  }
  Result<std::string> path = PercentDecode(p.path);
  if (!path.ok()) return Malformed(spec.display, path.status().message(), kForm);
  std::string remote = *path;
  if (remote.rfind("/~/", 0) == 0) remote = remote.substr(3);  // relative to home
  if (remote.empty()) return Malformed(spec.display, "missing path", kForm);
  std::string host = p.host;
  if (host.front() == '[') host = host.substr(1, host.size() - 2);
  spec.nbdkit_argv = NbdkitPrefix("ssh");
  spec.nbdkit_argv.push_back("host=" + host);
  spec.nbdkit_argv.push_back("path=" + remote);
  if (!p.user.empty()) spec.nbdkit_argv.push_back("user=" + p.user);
  if (!p.port.empty()) spec.nbdkit_argv.push_back("port=" + p.port);
  if (p.has_password) {
    spec.nbdkit_argv.push_back(PasswordArg());
    spec.nbdkit_password = p.password;
  }
  return spec;
}

}  // namespace

const char* SourceKindName(SourceSpec::Kind kind) {
  switch (kind) {
    case SourceSpec::Kind::kFile:
      return "file";
    case SourceSpec::Kind::kNbd:
      return "nbd";
    case SourceSpec::Kind::kHttp:
      return "http";
    case SourceSpec::Kind::kSsh:
      return "ssh";
  }
  return "unknown";
}

Result<SourceSpec> ParseSource(const std::string& arg) {
  SourceSpec spec;
  spec.uri = arg;
  spec.display = arg;
  if (arg.empty())
    return Status::InvalidArgument("the source is an empty string; " + std::string(kSupported));
  if (!LooksLikeUri(arg)) return spec;  // a path

  Result<UriParts> parts = SplitUri(arg);
  if (!parts.ok()) {
    return Status::InvalidArgument("malformed source URI: " + parts.status().message());
  }
  const UriParts& p = *parts;
  spec.display = p.redacted;
  if (p.scheme == "nbd" || p.scheme == "nbds" || p.scheme == "nbd+unix" ||
      p.scheme == "nbds+unix") {
    spec.kind = SourceSpec::Kind::kNbd;
    return ParseNbd(std::move(spec), p);
  }
  if (p.scheme == "http" || p.scheme == "https") {
    spec.kind = SourceSpec::Kind::kHttp;
    return ParseHttp(std::move(spec), p);
  }
  if (p.scheme == "ssh") {
    spec.kind = SourceSpec::Kind::kSsh;
    return ParseSsh(std::move(spec), p);
  }
  return Status::InvalidArgument("unsupported source URI scheme '" + p.scheme + "://' in '" +
                                 spec.display + "'; " + kSupported);
}

std::string WithAbsoluteQueryPaths(const std::string& arg, const std::string& cwd) {
  if (!LooksLikeUri(arg)) return arg;
  Result<UriParts> p = SplitUri(arg);
  if (!p.ok() || (p->scheme != "nbd" && p->scheme != "nbds" && p->scheme != "nbd+unix" &&
                  p->scheme != "nbds+unix")) {
    return arg;
  }
  const size_t q = arg.find_first_of("?#", arg.find("://") + 3);
  if (q == std::string::npos || arg[q] != '?') return arg;
  std::string query;
  bool changed = false;
  std::string_view rest(p->query);
  while (true) {
    const size_t amp = rest.find('&');
    std::string item(rest.substr(0, amp));
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq);
    if (eq != std::string::npos &&
        (key == "socket" || key == "tls-certificates" || key == "tls-psk-file")) {
      Result<std::string> value = PercentDecode(std::string_view(item).substr(eq + 1));
      if (value.ok() && !value->empty() && value->front() != '/') {
        const std::string abs = (std::filesystem::path(cwd) / *value).lexically_normal().string();
        item = key + "=" + PercentEncodePath(abs);
        changed = true;
      }
    }
    query += item;
    if (amp == std::string_view::npos) break;
    query += '&';
    rest.remove_prefix(amp + 1);
  }
  if (!changed) return arg;
  return arg.substr(0, q + 1) + query + (p->fragment.empty() ? "" : "#" + p->fragment);
}

std::string RedactSource(const std::string& arg) {
  if (!LooksLikeUri(arg)) return arg;
  Result<SourceSpec> spec = ParseSource(arg);
  if (spec.ok()) return spec->display;
  Result<UriParts> parts = SplitUri(arg);
  if (parts.ok()) return parts->redacted;
  // Unparseable: the secrets SecretSpans finds in any text, and whatever
  // userinfo there is.
  const std::string r = RedactSecrets(arg);
  const size_t begin = r.find("://") + 3;
  const size_t end = r.find_first_of("/?#", begin);
  const size_t at = r.rfind('@', end == std::string::npos ? std::string::npos : end - 1);
  if (at == std::string::npos || at < begin) return r;
  return r.substr(0, begin) + "***" + r.substr(at);
}

std::string SourceIdentityKey(const SourceSpec& spec) {
  return spec.kind == SourceSpec::Kind::kNbd ? spec.export_name : std::string();
}

std::string SourceIdentityDeviceId(const SourceSpec& spec) {
  if (spec.kind != SourceSpec::Kind::kNbd) return "";
  return "nbd export '" + SourceIdentityKey(spec) + "'";
}

}  // namespace clonefs
