#include "control/protocol.h"

namespace clonefs::control {
namespace {

bool IsBadChar(unsigned char c) { return (c < 0x20 && c != ' ' && c != '\t') || c == 0x7f; }

void AppendPayloadLines(std::string* out, std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    if (!line.empty() && line[0] == '.') *out += '.';
    *out += line;
    *out += '\n';
    if (nl == std::string_view::npos) break;
    pos = nl + 1;
  }
}

}  // namespace

Result<std::vector<std::string>> SplitRequest(std::string_view line) {
  if (line.size() >= kMaxRequestBytes) {
    return Status::InvalidArgument("request longer than " + std::to_string(kMaxRequestBytes - 1) +
                                   " bytes");
  }
  std::vector<std::string> words;
  std::string cur;
  for (char ch : line) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (IsBadChar(c)) return Status::InvalidArgument("control character in request");
    if (c == ' ' || c == '\t') {
      if (!cur.empty()) words.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  if (words.empty()) return Status::InvalidArgument("empty request");
  return words;
}

Result<std::string> EncodeRequest(const std::vector<std::string>& words) {
  if (words.empty()) return Status::InvalidArgument("empty request");
  std::string line;
  for (const std::string& w : words) {
    if (w.empty()) return Status::InvalidArgument("empty word in request");
    for (char ch : w) {
      unsigned char c = static_cast<unsigned char>(ch);
      if (c == ' ' || c == '\t' || IsBadChar(c)) {
        return Status::InvalidArgument("'" + w + "' holds whitespace or a control character");
      }
    }
    if (!line.empty()) line += ' ';
    line += w;
  }
  if (line.size() + 1 > kMaxRequestBytes) return Status::InvalidArgument("request too long");
  line += '\n';
  return line;
}

std::string EncodeResponse(const Response& r) {
  std::string out;
  if (r.ok) {
    out = "ok\n";
    AppendPayloadLines(&out, r.text);
  } else {
    std::string_view t = r.text;
    size_t nl = t.find('\n');
    std::string_view first = t.substr(0, nl);
    out = "error";
    if (!first.empty()) {
      out += ' ';
      out += first;
    }
    out += '\n';
    // Every line of the rest, a last empty one included, so that a text
    // ending in '\n' comes back exactly (DecodeResponse drops the '\n' that
    // ends the last payload line of an error).
    if (nl != std::string_view::npos) AppendPayloadLines(&out, std::string(t.substr(nl + 1)) + '\n');
  }
  out += ".\n";
  return out;
}

Result<Response> DecodeResponse(std::string_view wire) {
  size_t nl = wire.find('\n');
  if (nl == std::string_view::npos) return Status::InvalidArgument("control response: no status line");
  std::string_view status = wire.substr(0, nl);
  Response r;
  std::string first_error_line;
  if (status == "ok") {
    r.ok = true;
  } else if (status == "error") {
    r.ok = false;
  } else if (status.substr(0, 6) == "error ") {
    r.ok = false;
    first_error_line = std::string(status.substr(6));
  } else {
    return Status::InvalidArgument("control response: bad status line '" + std::string(status) + "'");
  }
  std::string payload;
  size_t pos = nl + 1;
  bool terminated = false;
  while (pos < wire.size()) {
    size_t e = wire.find('\n', pos);
    if (e == std::string_view::npos) break;  // partial last line: truncated
    std::string_view line = wire.substr(pos, e - pos);
    pos = e + 1;
    if (line == ".") {
      terminated = true;
      break;
    }
    if (!line.empty() && line[0] == '.') line.remove_prefix(1);
    payload += line;
    payload += '\n';
  }
  if (!terminated) return Status::InvalidArgument("control response truncated (no terminator)");
  if (r.ok) {
    r.text = std::move(payload);
  } else {
    r.text = first_error_line;
    if (!payload.empty()) {
      if (!payload.empty() && payload.back() == '\n') payload.pop_back();
      r.text += "\n" + payload;
    }
  }
  return r;
}

}  // namespace clonefs::control
