#include "control/units.h"

#include <cctype>
#include <cstdio>
#include <ctime>
#include <string>

namespace clonefs::control {
namespace {

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

struct Suffix {
  const char* name;
  uint64_t multiplier;
};

constexpr Suffix kSuffixes[] = {
    {"", 1},
    {"B", 1},
    {"K", 1ull << 10},
    {"KiB", 1ull << 10},
    {"M", 1ull << 20},
    {"MiB", 1ull << 20},
    {"G", 1ull << 30},
    {"GiB", 1ull << 30},
    {"T", 1ull << 40},
    {"TiB", 1ull << 40},
    {"KB", 1000ull},
    {"MB", 1000ull * 1000},
    {"GB", 1000ull * 1000 * 1000},
    {"TB", 1000ull * 1000 * 1000 * 1000},
};

}  // namespace

Result<uint64_t> ParseDecimal(std::string_view s, uint64_t max) {
  if (s.empty()) return Status::InvalidArgument("empty number");
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return Status::InvalidArgument("'" + std::string(s) + "' is not a decimal number");
    }
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (d > max || v > (max - d) / 10) {
      return Status::InvalidArgument("'" + std::string(s) + "' is larger than " +
                                     std::to_string(max));
    }
    v = v * 10 + d;
  }
  return v;
}

Result<uint64_t> ParseByteSize(std::string_view s) {
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') digits++;
  if (digits == 0) {
    return Status::InvalidArgument("'" + std::string(s) +
                                   "' is not a byte count (expected e.g. 500M, 20MB, 1048576)");
  }
  std::string_view suffix = s.substr(digits);
  const Suffix* found = nullptr;
  for (const Suffix& x : kSuffixes) {
    if (IEquals(suffix, x.name)) {
      found = &x;
      break;
    }
  }
  if (found == nullptr) {
    return Status::InvalidArgument("'" + std::string(s) + "': unknown suffix '" +
                                   std::string(suffix) +
                                   "' (accepted: K M G T or KiB MiB GiB TiB = powers of 1024, "
                                   "KB MB GB TB = powers of 1000)");
  }
  Result<uint64_t> n = ParseDecimal(s.substr(0, digits));
  if (!n.ok()) {
    return Status::InvalidArgument("'" + std::string(s) + "' is too large");
  }
  if (*n != 0 && found->multiplier > UINT64_MAX / *n) {
    return Status::InvalidArgument("'" + std::string(s) + "' is too large (more than 2^64-1 bytes)");
  }
  return *n * found->multiplier;
}

uint64_t FlooredPercent(uint64_t part, uint64_t whole, int decimals) {
  uint64_t scale = 100;
  for (int i = 0; i < decimals; i++) scale *= 10;
  if (whole == 0 || part >= whole) return scale;
  return static_cast<uint64_t>(static_cast<unsigned __int128>(part) * scale / whole);
}

std::string FormatPercent(uint64_t part, uint64_t whole, int decimals) {
  uint64_t v = FlooredPercent(part, whole, decimals);
  uint64_t div = 1;
  for (int i = 0; i < decimals; i++) div *= 10;
  std::string out = std::to_string(v / div);
  if (decimals > 0) {
    std::string frac = std::to_string(v % div);
    out += "." + std::string(static_cast<size_t>(decimals) - frac.size(), '0') + frac;
  }
  return out + "%";
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 6) {
    v /= 1024.0;
    u++;
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f %s", v, kUnits[u]);
  return buf;
}

std::string FormatRate(uint64_t bytes_per_s, bool unlimited_if_zero) {
  if (unlimited_if_zero && bytes_per_s == 0) return "unlimited";
  return FormatBytes(bytes_per_s) + "/s";
}

std::string FormatDuration(uint64_t seconds) {
  char buf[64];
  if (seconds < 60) {
    std::snprintf(buf, sizeof(buf), "%llus", static_cast<unsigned long long>(seconds));
  } else if (seconds < 3600) {
    std::snprintf(buf, sizeof(buf), "%llum%02llus", static_cast<unsigned long long>(seconds / 60),
                  static_cast<unsigned long long>(seconds % 60));
  } else if (seconds < 86400) {
    std::snprintf(buf, sizeof(buf), "%lluh%02llum", static_cast<unsigned long long>(seconds / 3600),
                  static_cast<unsigned long long>(seconds % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof(buf), "%llud%02lluh", static_cast<unsigned long long>(seconds / 86400),
                  static_cast<unsigned long long>(seconds % 86400 / 3600));
  }
  return buf;
}

std::string FormatWallTime(uint64_t unix_ns) {
  const time_t t = static_cast<time_t>(unix_ns / 1'000'000'000ull);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

}  // namespace clonefs::control
