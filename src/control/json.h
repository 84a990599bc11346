// A small JSON writer and reader, enough for the control channel's status
// documents (docs/control.md). Not a general-purpose library: no streaming,
// documents are small (a few KiB).
//
// Numbers keep their source text so 64-bit integers round-trip exactly
// (JsonValue::AsUint64), which a double could not do.
//
// THREAD SAFETY: values; distinct objects may be used from distinct threads.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace clonefs::control {

// Builds a JSON text. Calls must nest correctly (BeginObject/EndObject,
// Key before each value inside an object); misuse is a programming error.
class JsonWriter {
 public:
  // indent > 0 pretty-prints with that many spaces per level.
  explicit JsonWriter(int indent = 2) : indent_(indent) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view k);
  JsonWriter& String(std::string_view v);
  JsonWriter& Uint(uint64_t v);
  JsonWriter& Int(int64_t v);
  // Written with up to 6 significant decimals; NaN/inf become null.
  JsonWriter& Double(double v);
  JsonWriter& Bool(bool v);
  JsonWriter& Null();

  const std::string& str() const { return out_; }

 private:
  void BeforeValue();
  void Newline();

  int indent_;
  int depth_ = 0;
  bool first_in_container_ = true;
  bool after_key_ = false;
  std::string out_;
};

// Escapes a string for inclusion between JSON quotes.
std::string JsonEscape(std::string_view s);

class JsonValue {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  // Parses a complete JSON text (surrounding whitespace allowed). Errors:
  // InvalidArgument with the byte offset of the problem.
  static Result<JsonValue> Parse(std::string_view text);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool AsBool() const { return bool_; }
  // The string of a kString; the number's source text of a kNumber.
  const std::string& AsString() const { return str_; }
  // The exact value of a non-negative integer number; fails for anything else.
  Result<uint64_t> AsUint64() const;
  double AsDouble() const;
  const std::vector<JsonValue>& items() const { return items_; }
  // Object members in document order.
  const std::vector<std::pair<std::string, JsonValue>>& members() const { return members_; }
  // Member `key` of an object, or nullptr if absent or not an object.
  const JsonValue* Find(std::string_view key) const;

 private:
  friend class JsonParser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  std::string str_;
  std::vector<JsonValue> items_;
  std::vector<std::pair<std::string, JsonValue>> members_;
};

}  // namespace clonefs::control
