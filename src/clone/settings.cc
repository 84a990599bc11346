#include "clone/settings.h"

#include <cstdio>
#include <cstring>
#include <set>

#include "base/printable.h"
#include "metadata/crc32c.h"

namespace clonefs::clone {
namespace {

constexpr size_t kMaxEntries = 1024;
constexpr size_t kMaxKey = 64;
constexpr size_t kMaxValue = 65536;
constexpr uint64_t kMaxThreads = 1024;

Status Bad(const std::string& what) { return Status::Corruption("settings: " + what); }

std::string OnOff(bool b) { return b ? "on" : "off"; }

// --- text forms of the values ---

Status ParseDecimal(const std::string& key, const std::string& v, uint64_t lo, uint64_t hi,
                    uint64_t* out) {
  if (v.empty() || v.size() > 20 || v.find_first_not_of("0123456789") != std::string::npos) {
    return Bad(key + ": '" + v + "' is not a decimal number");
  }
  uint64_t n = 0;
  for (char c : v) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return Bad(key + ": '" + v + "' is out of range");
    n = n * 10 + d;
  }
  if (n < lo || n > hi) {
    return Bad(key + ": " + v + " is out of range " + std::to_string(lo) + ".." +
               std::to_string(hi));
  }
  *out = n;
  return Status::OK();
}

Status ParseOnOff(const std::string& key, const std::string& v, bool* out) {
  if (v == "on" || v == "off") {
    *out = v == "on";
    return Status::OK();
  }
  return Bad(key + ": '" + v + "' is neither on nor off");
}

Status CheckName(const std::string& v) {
  if (v.empty() || v == "." || v == ".." || v.size() > 255 ||
      v.find_first_of("/\n") != std::string::npos || v.find('\0') != std::string::npos) {
    return Bad("name: '" + v + "' is not a valid file name");
  }
  return Status::OK();
}

bool ValidKey(const std::string& k) {
  return !k.empty() && k.size() <= kMaxKey &&
         k.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
}

// Sets the field of a known key; false if the key is unknown.
Result<bool> SetKnown(Settings* s, const std::string& k, const std::string& v) {
  uint64_t n = 0;
  bool b = false;
  if (k == "rate") {
    CLONEFS_RETURN_IF_ERROR(ParseDecimal(k, v, 0, UINT64_MAX, &n));
    s->rate_bytes_per_s = n;
  } else if (k == "hydration_threshold") {
    CLONEFS_RETURN_IF_ERROR(ParseDecimal(k, v, 0, UINT32_MAX, &n));
    s->hydration_threshold = static_cast<uint32_t>(n);
  } else if (k == "hydration_batch_size") {
    CLONEFS_RETURN_IF_ERROR(ParseDecimal(k, v, 1, UINT32_MAX, &n));
    s->hydration_batch_size = static_cast<uint32_t>(n);
  } else if (k == "source_timeout_ms") {
    CLONEFS_RETURN_IF_ERROR(ParseDecimal(k, v, kMinSourceTimeoutMs, kMaxSourceTimeoutMs, &n));
    s->source_timeout_ms = n;
  } else if (k == "threads") {
    CLONEFS_RETURN_IF_ERROR(ParseDecimal(k, v, 1, kMaxThreads, &n));
    s->threads = static_cast<uint32_t>(n);
  } else if (k == "hydration") {
    CLONEFS_RETURN_IF_ERROR(ParseOnOff(k, v, &b));
    s->hydration_enabled = b;
  } else if (k == "discard_passdown") {
    CLONEFS_RETURN_IF_ERROR(ParseOnOff(k, v, &b));
    s->discard_passdown = b;
  } else if (k == "copy_on_read") {
    CLONEFS_RETURN_IF_ERROR(ParseOnOff(k, v, &b));
    s->copy_on_read = b;
  } else if (k == "read_hints") {
    CLONEFS_RETURN_IF_ERROR(ParseOnOff(k, v, &b));
    s->read_hints = b;
  } else if (k == "profile") {
    s->profile = v;
  } else if (k == "record_profile") {
    s->record_profile = v;
  } else if (k == "direct_io") {
    CLONEFS_RETURN_IF_ERROR(ParseOnOff(k, v, &b));
    s->direct_io = b;
  } else if (k == "allow_other") {
    CLONEFS_RETURN_IF_ERROR(ParseOnOff(k, v, &b));
    s->allow_other = b;
  } else if (k == "passthrough") {
    CLONEFS_RETURN_IF_ERROR(ParseOnOff(k, v, &b));
    s->passthrough = b;
  } else if (k == "fuse_transport") {
    if (v != "auto" && v != "uring" && v != "dev") {
      return Status::Corruption("fuse_transport must be auto, uring or dev, not '" + v + "'");
    }
    s->fuse_transport = v;
  } else if (k == "name") {
    CLONEFS_RETURN_IF_ERROR(CheckName(v));
    s->name = v;
  } else if (k == "on_complete") {
    s->on_complete = v;
  } else if (k == "fuse_options") {
    s->fuse_options = v;
  } else {
    return false;
  }
  return true;
}

// --- binary helpers ---

void PutU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>(v >> 8));
}

void PutU32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Reads little-endian integers from a bounded view; each Get fails once the
// bytes run out.
class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool Get(size_t n, uint64_t* v) {
    if (b_.size() - pos_ < n) return false;
    *v = 0;
    for (size_t i = 0; i < n; ++i) {
      *v |= static_cast<uint64_t>(static_cast<unsigned char>(b_[pos_ + i])) << (8 * i);
    }
    pos_ += n;
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    if (b_.size() - pos_ < n) return false;
    out->assign(b_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return b_.size() - pos_; }

 private:
  std::string_view b_;
  size_t pos_ = 0;
};

// 1048576 -> "1M"; sizes that are not whole K/M/G/T stay in bytes.
std::string SizeWord(uint64_t v) {
  static const char kSuffix[] = "KMGT";
  if (v == 0) return "0";
  int i = -1;
  while (i < 3 && v % 1024 == 0) {
    v /= 1024;
    ++i;
  }
  return std::to_string(v) + (i >= 0 ? std::string(1, kSuffix[i]) : std::string());
}

}  // namespace

std::string FormatSeconds(uint64_t ms) {
  std::string out = std::to_string(ms / 1000);
  if (ms % 1000 != 0) {
    char frac[8];
    snprintf(frac, sizeof(frac), ".%03u", static_cast<unsigned>(ms % 1000));
    std::string f = frac;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "s";
}

bool Settings::empty() const { return *this == Settings{}; }

Settings Merge(const Settings& base, const Settings& over) {
  Settings m = base;
  auto take = [](auto& dst, const auto& src) {
    if (src.has_value()) dst = src;
  };
  take(m.rate_bytes_per_s, over.rate_bytes_per_s);
  take(m.hydration_threshold, over.hydration_threshold);
  take(m.hydration_batch_size, over.hydration_batch_size);
  take(m.hydration_enabled, over.hydration_enabled);
  take(m.on_complete, over.on_complete);
  take(m.name, over.name);
  take(m.discard_passdown, over.discard_passdown);
  take(m.direct_io, over.direct_io);
  take(m.allow_other, over.allow_other);
  take(m.passthrough, over.passthrough);
  take(m.fuse_transport, over.fuse_transport);
  take(m.fuse_options, over.fuse_options);
  take(m.threads, over.threads);
  take(m.source_timeout_ms, over.source_timeout_ms);
  take(m.copy_on_read, over.copy_on_read);
  take(m.read_hints, over.read_hints);
  take(m.profile, over.profile);
  take(m.record_profile, over.record_profile);
  for (const auto& [k, v] : over.unknown) m.unknown[k] = v;
  return m;
}

std::vector<std::pair<std::string, std::string>> ToPairs(const Settings& s) {
  std::map<std::string, std::string> m = s.unknown;
  auto num = [&](const char* k, const auto& v) {
    if (v) m[k] = std::to_string(*v);
  };
  auto flag = [&](const char* k, const std::optional<bool>& v) {
    if (v) m[k] = OnOff(*v);
  };
  auto text = [&](const char* k, const std::optional<std::string>& v) {
    if (v) m[k] = *v;
  };
  num("rate", s.rate_bytes_per_s);
  num("hydration_threshold", s.hydration_threshold);
  num("hydration_batch_size", s.hydration_batch_size);
  num("threads", s.threads);
  num("source_timeout_ms", s.source_timeout_ms);
  flag("hydration", s.hydration_enabled);
  flag("discard_passdown", s.discard_passdown);
  flag("direct_io", s.direct_io);
  flag("allow_other", s.allow_other);
  flag("passthrough", s.passthrough);
  flag("copy_on_read", s.copy_on_read);
  flag("read_hints", s.read_hints);
  text("profile", s.profile);
  text("record_profile", s.record_profile);
  text("on_complete", s.on_complete);
  text("name", s.name);
  text("fuse_options", s.fuse_options);
  text("fuse_transport", s.fuse_transport);
  return {m.begin(), m.end()};
}

Result<Settings> FromPairs(const std::vector<std::pair<std::string, std::string>>& pairs) {
  Settings s;
  std::set<std::string> seen;
  for (const auto& [k, v] : pairs) {
    if (!ValidKey(k)) return Bad("key '" + k + "' is not 1 to 64 characters of [a-z0-9_]");
    if (!seen.insert(k).second) return Bad("key '" + k + "' appears twice");
    CLONEFS_ASSIGN_OR_RETURN(const bool known, SetKnown(&s, k, v));
    if (!known) s.unknown[k] = v;
  }
  return s;
}

std::string EncodeSettings(const Settings& s) {
  const auto pairs = ToPairs(s);
  std::string out(kSettingsMagic);
  PutU32(&out, kSettingsVersion);
  PutU32(&out, static_cast<uint32_t>(pairs.size()));
  for (const auto& [k, v] : pairs) {
    PutU16(&out, static_cast<uint16_t>(k.size()));
    out += k;
    PutU32(&out, static_cast<uint32_t>(v.size()));
    out += v;
  }
  PutU32(&out, metadata::Crc32c(0, out.data(), out.size()));
  return out;
}

Result<Settings> DecodeSettings(std::string_view bytes) {
  constexpr size_t kHeader = 16, kCrc = 4;
  if (bytes.size() < kHeader + kCrc) {
    return Bad("record is " + std::to_string(bytes.size()) + " bytes, too short");
  }
  if (bytes.substr(0, kSettingsMagic.size()) != kSettingsMagic) {
    return Bad("bad magic: not a clonefs settings record");
  }
  const std::string_view body = bytes.substr(0, bytes.size() - kCrc);
  uint64_t crc = 0, version = 0, count = 0;
  Reader tail(bytes.substr(body.size()));
  tail.Get(4, &crc);
  if (metadata::Crc32c(0, body.data(), body.size()) != crc) {
    return Bad("checksum mismatch (the record is damaged)");
  }
  Reader r(body.substr(kSettingsMagic.size()));
  r.Get(4, &version);
  r.Get(4, &count);
  if (version == 0) return Bad("version 0 is invalid");
  if (version > kSettingsVersion) {
    return Status::NotSupported("settings format version " + std::to_string(version) +
                                " is newer than this clonefs reads (" +
                                std::to_string(kSettingsVersion) + ")");
  }
  if (count > kMaxEntries) {
    return Bad(std::to_string(count) + " entries, more than " + std::to_string(kMaxEntries));
  }
  std::vector<std::pair<std::string, std::string>> pairs;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t klen = 0, vlen = 0;
    std::string k, v;
    if (!r.Get(2, &klen) || klen == 0 || klen > kMaxKey || !r.Bytes(klen, &k) ||
        !r.Get(4, &vlen) || vlen > kMaxValue || !r.Bytes(vlen, &v)) {
      return Bad("entry " + std::to_string(i) + " is truncated or has a length out of range");
    }
    pairs.emplace_back(std::move(k), std::move(v));
  }
  if (r.remaining() != 0) {
    return Bad(std::to_string(r.remaining()) + " trailing bytes after the last entry");
  }
  return FromPairs(pairs);
}

std::string DescribeSettings(const Settings& s) {
  std::vector<std::string> words;
  auto add = [&](std::string w) { words.push_back(std::move(w)); };
  if (s.rate_bytes_per_s) add("--rate " + SizeWord(*s.rate_bytes_per_s));
  if (s.hydration_threshold) add("--hydration-threshold " + std::to_string(*s.hydration_threshold));
  if (s.hydration_batch_size) {
    add("--hydration-batch-size " + std::to_string(*s.hydration_batch_size));
  }
  if (s.hydration_enabled) add(*s.hydration_enabled ? "--hydration" : "--no-hydration");
  if (s.discard_passdown) {
    add(*s.discard_passdown ? "--discard-passdown" : "--no-discard-passdown");
  }
  if (s.direct_io) add(*s.direct_io ? "--direct-io" : "--buffered");
  if (s.allow_other) add(*s.allow_other ? "--allow-other" : "--no-allow-other");
  if (s.passthrough) add(*s.passthrough ? "--passthrough" : "--no-passthrough");
  if (s.name) add("--name " + ShellWord(*s.name));
  if (s.fuse_options) add("-o " + ShellWord(*s.fuse_options));
  if (s.fuse_transport) add("--fuse-transport " + *s.fuse_transport);
  if (s.threads) add("--threads " + std::to_string(*s.threads));
  if (s.source_timeout_ms) add("--source-timeout " + FormatSeconds(*s.source_timeout_ms));
  if (s.copy_on_read) add(*s.copy_on_read ? "--copy-on-read" : "--no-copy-on-read");
  if (s.read_hints) add(*s.read_hints ? "--read-hints" : "--no-read-hints");
  if (s.profile) add("--profile " + ShellWord(*s.profile));
  if (s.record_profile) add("--record-profile " + ShellWord(*s.record_profile));
  if (s.on_complete) add("--on-complete " + ShellWord(*s.on_complete));
  for (const auto& [k, v] : s.unknown) add("(unknown: " + k + "=" + ShellWord(v) + ")");
  if (words.empty()) return "none";
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

}  // namespace clonefs::clone
