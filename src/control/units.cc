#include "control/units.h"

#include <time.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

namespace clonefs::control {

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

namespace {

constexpr char kIsoFormat[] = "%Y-%m-%dT%H:%M:%SZ";

// A wall-clock time in ns since the Unix epoch, in UTC, whole seconds.
std::string FormatUtc(uint64_t unix_ns, const char* format) {
  const time_t t = static_cast<time_t>(unix_ns / 1'000'000'000ull);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), format, &tm);
  return buf;
}

}  // namespace

std::string FormatWallTime(uint64_t unix_ns) { return FormatUtc(unix_ns, "%Y-%m-%d %H:%M:%S UTC"); }

std::string FormatIsoTime(uint64_t unix_ns) { return FormatUtc(unix_ns, kIsoFormat); }

bool ParseIsoTime(const std::string& s, uint64_t* unix_ns) {
  struct tm tm;
  std::memset(&tm, 0, sizeof(tm));
  const char* end = strptime(s.c_str(), kIsoFormat, &tm);
  if (end == nullptr || *end != '\0') return false;
  const time_t t = timegm(&tm);
  if (t < 0) return false;
  *unix_ns = static_cast<uint64_t>(t) * 1'000'000'000ull;
  return true;
}

}  // namespace clonefs::control
