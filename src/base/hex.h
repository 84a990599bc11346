// The one notation for 64-bit fingerprints in messages, status and files:
// 16 lowercase hex digits, no prefix ("9313d23ea6431c5e"), as profile files
// and `clonefs profile show` have them; mount refusals and `clonefs check`
// print them the same way.
//
// THREAD SAFETY: pure function.
#pragma once

#include <cstdint>
#include <string>

namespace clonefs {

std::string FingerprintHex(uint64_t v);

}  // namespace clonefs
