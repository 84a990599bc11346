#include "sources/uri_parts.h"

#include <algorithm>
#include <cctype>

namespace clonefs {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool IsSchemeChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
}

}  // namespace

bool IsSecretQueryKey(std::string_view key) {
  std::string k;
  for (char c : key) k.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (k == "sig" || k == "key") return true;
  static constexpr std::string_view kParts[] = {"signature", "token",      "secret", "password",
                                                "passwd",    "credential", "apikey", "api_key",
                                                "api-key",   "access_key", "auth"};
  for (std::string_view part : kParts) {
    if (k.find(part) != std::string::npos) return true;
  }
  return false;
}

std::vector<std::pair<size_t, size_t>> SecretSpans(std::string_view uri) {
  std::vector<std::pair<size_t, size_t>> spans;
  const size_t colon = uri.find("://");
  if (colon == std::string_view::npos) return spans;
  const size_t auth_begin = colon + 3;
  const size_t auth_end = std::min(uri.find_first_of("/?#", auth_begin), uri.size());
  const std::string_view authority = uri.substr(auth_begin, auth_end - auth_begin);
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    const size_t pc = authority.substr(0, at).find(':');
    if (pc != std::string_view::npos && pc + 1 < at) {
      spans.emplace_back(auth_begin + pc + 1, auth_begin + at);
    }
  }
  size_t q = uri.find('?', auth_end);
  if (q == std::string_view::npos || q > std::min(uri.find('#', auth_end), uri.size())) {
    return spans;
  }
  const size_t q_end = std::min(uri.find('#', q), uri.size());
  size_t item = q + 1;
  while (item < q_end) {
    const size_t amp = std::min(uri.find('&', item), q_end);
    const size_t eq = uri.find('=', item);
    if (eq < amp && eq + 1 < amp && IsSecretQueryKey(uri.substr(item, eq - item))) {
      spans.emplace_back(eq + 1, amp);
    }
    item = amp + 1;
  }
  return spans;
}

std::string RedactSecrets(std::string_view uri) {
  std::string out;
  size_t kept = 0;
  for (const auto& [begin, end] : SecretSpans(uri)) {
    out.append(uri.substr(kept, begin - kept)).append("***");
    kept = end;
  }
  return out.append(uri.substr(kept));
}

bool LooksLikeUri(std::string_view arg) {
  if (arg.empty() || !std::isalpha(static_cast<unsigned char>(arg[0]))) return false;
  size_t i = 1;
  while (i < arg.size() && IsSchemeChar(arg[i])) ++i;
  return arg.substr(i, 3) == "://";
}

Result<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    int hi = i + 2 < s.size() ? HexValue(s[i + 1]) : -1;
    int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return Status::InvalidArgument("bad percent-escape '" + std::string(s.substr(i, 3)) +
                                     "' in '" + std::string(s) + "'");
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::string PercentEncodePath(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (alnum || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

bool QueryValue(std::string_view query, std::string_view key, std::string* value) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    size_t eq = item.find('=');
    if (item.substr(0, eq) == key) {
      *value = eq == std::string_view::npos ? std::string() : std::string(item.substr(eq + 1));
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

Result<UriParts> SplitUri(const std::string& uri) {
  UriParts p;
  size_t colon = uri.find("://");
  for (size_t i = 0; i < colon; ++i) {
    p.scheme.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(uri[i]))));
  }
  const size_t auth_begin = colon + 3;
  size_t auth_end = uri.find_first_of("/?#", auth_begin);
  if (auth_end == std::string::npos) auth_end = uri.size();
  std::string_view authority(uri.data() + auth_begin, auth_end - auth_begin);

  p.redacted = RedactSecrets(uri);
  size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    p.has_userinfo = true;
    std::string_view userinfo = authority.substr(0, at);
    size_t pc = userinfo.find(':');
    if (pc != std::string_view::npos) {
      p.has_password = true;
      Result<std::string> password = PercentDecode(userinfo.substr(pc + 1));
      if (!password.ok()) {
        // Never the password itself, not even in an error.
        return Status::InvalidArgument("bad percent-escape in the password of '" + p.redacted +
                                       "' (write a '%' in a password as %25)");
      }
      p.password = std::move(*password);
    }
    CLONEFS_ASSIGN_OR_RETURN(p.user, PercentDecode(userinfo.substr(0, pc)));
    authority.remove_prefix(at + 1);
  }

  std::string_view hostport = authority;
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string_view::npos) {
      return Status::InvalidArgument("unclosed '[' in the host of '" + p.redacted + "'");
    }
    p.host = std::string(hostport.substr(0, close + 1));
    hostport.remove_prefix(close + 1);
    if (!hostport.empty() && hostport[0] != ':') {
      return Status::InvalidArgument("unexpected text after ']' in '" + p.redacted + "'");
    }
  } else {
    size_t pc = hostport.rfind(':');
    p.host = std::string(hostport.substr(0, pc));
    hostport.remove_prefix(pc == std::string_view::npos ? hostport.size() : pc);
  }
  if (!hostport.empty()) {  // ":PORT"
    std::string_view port = hostport.substr(1);
    bool digits = !port.empty() && port.size() <= 5;
    for (char c : port) digits = digits && std::isdigit(static_cast<unsigned char>(c));
    if (!digits || std::stoul(std::string(port)) == 0 || std::stoul(std::string(port)) > 65535) {
      return Status::InvalidArgument("bad port '" + std::string(port) + "' in '" + p.redacted +
                                     "': expected a number from 1 to 65535");
    }
    p.port = std::string(port);
  }

  size_t rest = auth_end;
  size_t path_end = uri.find_first_of("?#", rest);
  if (path_end == std::string::npos) path_end = uri.size();
  p.path = uri.substr(rest, path_end - rest);
  rest = path_end;
  if (rest < uri.size() && uri[rest] == '?') {
    size_t q_end = uri.find('#', rest);
    if (q_end == std::string::npos) q_end = uri.size();
    p.query = uri.substr(rest + 1, q_end - rest - 1);
    rest = q_end;
  }
  if (rest < uri.size() && uri[rest] == '#') p.fragment = uri.substr(rest + 1);
  return p;
}

}  // namespace clonefs
