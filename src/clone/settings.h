// Settings: the mount settings stored with a clone (SPEC §5 "settings"), so
// that `clonefs mount SOURCE DEST MOUNTPOINT` resumes a clone as it was set
// up, and their versioned encoding (docs/metadata-format.md §11). The
// metadata library stores the encoded record as an opaque value
// (Metadata::GetSettings / PutSettings).
//
// Every field is optional: absent = "not stored", and the mount then uses its
// command line or the built-in default. A mount stores what was given on its
// command line (replacing those fields); `clonefs message` stores the knob it
// changes. Region size is not here: the superblock records it.
//
// THREAD SAFETY: values and pure functions.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace clonefs::clone {

// Encoding version written by this build.
inline constexpr uint32_t kSettingsVersion = 1;
inline constexpr std::string_view kSettingsMagic = "CLONEFST";

// Bounds of the source timeout (milliseconds) and its default.
inline constexpr uint64_t kMinSourceTimeoutMs = 100;
inline constexpr uint64_t kMaxSourceTimeoutMs = 86'400'000;
inline constexpr uint64_t kDefaultSourceTimeoutMs = 30'000;

// "30s", "2.5s", "0.1s": milliseconds as seconds, for people.
std::string FormatSeconds(uint64_t ms);

struct Settings {
  std::optional<uint64_t> rate_bytes_per_s;      // "rate"; 0 = unlimited
  std::optional<uint32_t> hydration_threshold;   // "hydration_threshold"
  std::optional<uint32_t> hydration_batch_size;  // "hydration_batch_size", >= 1
  std::optional<bool> hydration_enabled;         // "hydration"
  std::optional<std::string> on_complete;        // "on_complete"; "" = none
  std::optional<std::string> name;               // "name": one path component
  std::optional<bool> discard_passdown;          // "discard_passdown"
  std::optional<bool> direct_io;                 // "direct_io"
  std::optional<bool> allow_other;               // "allow_other"
  std::optional<bool> passthrough;               // "passthrough"
  std::optional<std::string> fuse_transport;     // "fuse_transport": auto, uring or dev
  std::optional<std::string> fuse_options;       // "fuse_options": -o joined by ','; "" = none
  std::optional<uint32_t> threads;               // "threads", 1..1024
  std::optional<uint64_t> source_timeout_ms;     // "source_timeout_ms", 100..86400000
  std::optional<bool> copy_on_read;              // "copy_on_read"
  std::optional<bool> read_hints;                // "read_hints"
  std::optional<std::string> profile;            // "profile": absolute path; "" = none
  std::optional<std::string> record_profile;     // "record_profile": absolute path; "" = none
  // Keys this build does not know (written by a newer clonefs): kept and
  // written back unchanged, never interpreted.
  std::map<std::string, std::string> unknown;

  bool operator==(const Settings&) const = default;
  // True if no field is set and there is no unknown key.
  bool empty() const;
};

// `base` with every field that `over` sets replaced by `over`'s value;
// unknown keys of both (over's win).
Settings Merge(const Settings& base, const Settings& over);

// The record's content as (key, value) text pairs in key order, unknown keys
// included (also the "settings" object of the status JSON).
std::vector<std::pair<std::string, std::string>> ToPairs(const Settings& s);

// Inverse of ToPairs; unknown keys go to `unknown`. Errors: Corruption
// ("settings: rate: 'x' is not a decimal number"; a key twice; a key that is
// empty, longer than 64 bytes or not [a-z0-9_]).
Result<Settings> FromPairs(const std::vector<std::pair<std::string, std::string>>& pairs);

// The binary record (docs/metadata-format.md §11).
std::string EncodeSettings(const Settings& s);

// Decodes and checks a record. Errors: Corruption saying what is wrong (bad
// magic, checksum, lengths, keys, a known key's value); NotSupported if the
// version is newer than kSettingsVersion.
Result<Settings> DecodeSettings(std::string_view bytes);

// The settings as the mount options that give them, for people, e.g.
// "--rate 1M --no-discard-passdown --on-complete 'touch /tmp/done'"; unknown
// keys as "(unknown: key=value)". "none" when empty.
std::string DescribeSettings(const Settings& s);

}  // namespace clonefs::clone
