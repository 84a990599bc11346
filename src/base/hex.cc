#include "base/hex.h"

#include <cinttypes>
#include <cstdio>

namespace clonefs {

std::string FingerprintHex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, v);
  return buf;
}

}  // namespace clonefs
