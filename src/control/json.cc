#include "control/json.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "control/units.h"

namespace clonefs::control {

// ---- writer ----

void JsonWriter::Newline() {
  if (indent_ <= 0) return;
  out_ += '\n';
  out_.append(static_cast<size_t>(depth_ * indent_), ' ');
}

void JsonWriter::BeforeValue() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (depth_ > 0) {
    if (!first_in_container_) out_ += ',';
    Newline();
  }
  first_in_container_ = false;
}

JsonWriter& JsonWriter::BeginObject() {
  BeforeValue();
  out_ += '{';
  depth_++;
  first_in_container_ = true;
  return *this;
}

JsonWriter& JsonWriter::EndObject() {
  depth_--;
  if (!first_in_container_) Newline();
  out_ += '}';
  first_in_container_ = false;
  return *this;
}

JsonWriter& JsonWriter::BeginArray() {
  BeforeValue();
  out_ += '[';
  depth_++;
  first_in_container_ = true;
  return *this;
}

JsonWriter& JsonWriter::EndArray() {
  depth_--;
  if (!first_in_container_) Newline();
  out_ += ']';
  first_in_container_ = false;
  return *this;
}

JsonWriter& JsonWriter::Key(std::string_view k) {
  BeforeValue();
  out_ += '"';
  out_ += JsonEscape(k);
  out_ += indent_ > 0 ? "\": " : "\":";
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(std::string_view v) {
  BeforeValue();
  out_ += '"';
  out_ += JsonEscape(v);
  out_ += '"';
  return *this;
}

JsonWriter& JsonWriter::Uint(uint64_t v) {
  BeforeValue();
  out_ += std::to_string(v);
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t v) {
  BeforeValue();
  out_ += std::to_string(v);
  return *this;
}

JsonWriter& JsonWriter::Double(double v) {
  if (!std::isfinite(v)) return Null();
  BeforeValue();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  out_ += buf;
  return *this;
}

JsonWriter& JsonWriter::Bool(bool v) {
  BeforeValue();
  out_ += v ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  BeforeValue();
  out_ += "null";
  return *this;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out;
}

// ---- reader ----

class JsonParser {
 public:
  explicit JsonParser(std::string_view t) : t_(t) {}

  Result<JsonValue> ParseDocument() {
    JsonValue v;
    Status s = ParseValue(&v, 0);
    if (!s.ok()) return s;
    SkipWs();
    if (pos_ != t_.size()) return Error("trailing characters");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 64;

  Status Error(const std::string& what) const {
    return Status::InvalidArgument("JSON: " + what + " at offset " + std::to_string(pos_));
  }

  void SkipWs() {
    while (pos_ < t_.size() &&
           (t_[pos_] == ' ' || t_[pos_] == '\n' || t_[pos_] == '\r' || t_[pos_] == '\t'))
      pos_++;
  }

  bool Consume(std::string_view lit) {
    if (t_.substr(pos_, lit.size()) != lit) return false;
    pos_ += lit.size();
    return true;
  }

  Status ParseValue(JsonValue* v, int depth) {
    if (depth > kMaxDepth) return Error("nesting too deep");
    SkipWs();
    if (pos_ >= t_.size()) return Error("unexpected end");
    char c = t_[pos_];
    if (c == '{') return ParseObject(v, depth);
    if (c == '[') return ParseArray(v, depth);
    if (c == '"') {
      v->type_ = JsonValue::Type::kString;
      return ParseString(&v->str_);
    }
    if (Consume("null")) {
      v->type_ = JsonValue::Type::kNull;
      return Status::OK();
    }
    if (Consume("true")) {
      v->type_ = JsonValue::Type::kBool;
      v->bool_ = true;
      return Status::OK();
    }
    if (Consume("false")) {
      v->type_ = JsonValue::Type::kBool;
      v->bool_ = false;
      return Status::OK();
    }
    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber(v);
    return Error(std::string("unexpected character '") + c + "'");
  }

  Status ParseNumber(JsonValue* v) {
    size_t start = pos_;
    if (t_[pos_] == '-') pos_++;
    size_t int_start = pos_;
    while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') pos_++;
    if (pos_ == int_start) return Error("bad number");
    if (t_[int_start] == '0' && pos_ - int_start > 1) return Error("leading zero");
    if (pos_ < t_.size() && t_[pos_] == '.') {
      pos_++;
      size_t f = pos_;
      while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') pos_++;
      if (pos_ == f) return Error("bad fraction");
    }
    if (pos_ < t_.size() && (t_[pos_] == 'e' || t_[pos_] == 'E')) {
      pos_++;
      if (pos_ < t_.size() && (t_[pos_] == '+' || t_[pos_] == '-')) pos_++;
      size_t e = pos_;
      while (pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9') pos_++;
      if (pos_ == e) return Error("bad exponent");
    }
    v->type_ = JsonValue::Type::kNumber;
    v->str_ = std::string(t_.substr(start, pos_ - start));
    return Status::OK();
  }

  static void AppendUtf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xC0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xE0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      *out += static_cast<char>(0xF0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  Status ParseHex4(uint32_t* out) {
    if (pos_ + 4 > t_.size()) return Error("short \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
      char c = t_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else return Error("bad \\u escape");
    }
    *out = v;
    return Status::OK();
  }

  Status ParseString(std::string* out) {
    pos_++;  // opening quote
    while (true) {
      if (pos_ >= t_.size()) return Error("unterminated string");
      unsigned char c = static_cast<unsigned char>(t_[pos_++]);
      if (c == '"') return Status::OK();
      if (c < 0x20) return Error("control character in string");
      if (c != '\\') {
        *out += static_cast<char>(c);
        continue;
      }
      if (pos_ >= t_.size()) return Error("unterminated escape");
      char e = t_[pos_++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          CLONEFS_RETURN_IF_ERROR(ParseHex4(&cp));
          if (cp >= 0xD800 && cp < 0xDC00) {
            uint32_t lo = 0;
            if (!Consume("\\u")) return Error("lone surrogate");
            CLONEFS_RETURN_IF_ERROR(ParseHex4(&lo));
            if (lo < 0xDC00 || lo >= 0xE000) return Error("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          return Error("bad escape");
      }
    }
  }

  Status ParseArray(JsonValue* v, int depth) {
    v->type_ = JsonValue::Type::kArray;
    pos_++;
    SkipWs();
    if (Consume("]")) return Status::OK();
    while (true) {
      JsonValue item;
      CLONEFS_RETURN_IF_ERROR(ParseValue(&item, depth + 1));
      v->items_.push_back(std::move(item));
      SkipWs();
      if (Consume("]")) return Status::OK();
      if (!Consume(",")) return Error("expected ',' or ']'");
    }
  }

  Status ParseObject(JsonValue* v, int depth) {
    v->type_ = JsonValue::Type::kObject;
    pos_++;
    SkipWs();
    if (Consume("}")) return Status::OK();
    while (true) {
      SkipWs();
      if (pos_ >= t_.size() || t_[pos_] != '"') return Error("expected a key");
      std::string key;
      CLONEFS_RETURN_IF_ERROR(ParseString(&key));
      for (const auto& m : v->members_) {
        if (m.first == key) return Error("duplicate key '" + key + "'");
      }
      SkipWs();
      if (!Consume(":")) return Error("expected ':'");
      JsonValue item;
      CLONEFS_RETURN_IF_ERROR(ParseValue(&item, depth + 1));
      v->members_.emplace_back(std::move(key), std::move(item));
      SkipWs();
      if (Consume("}")) return Status::OK();
      if (!Consume(",")) return Error("expected ',' or '}'");
    }
  }

  std::string_view t_;
  size_t pos_ = 0;
};

Result<JsonValue> JsonValue::Parse(std::string_view text) { return JsonParser(text).ParseDocument(); }

Result<uint64_t> JsonValue::AsUint64() const {
  if (type_ != Type::kNumber) return Status::InvalidArgument("JSON value is not a number");
  return ParseDecimal(str_);
}

double JsonValue::AsDouble() const {
  if (type_ != Type::kNumber) return 0.0;
  return std::strtod(str_.c_str(), nullptr);
}

const JsonValue* JsonValue::Find(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& m : members_) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

}  // namespace clonefs::control
