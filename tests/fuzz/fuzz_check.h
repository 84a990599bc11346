// What the fuzz targets assert besides "no crash, no sanitizer report".
//
// FUZZ_CHECK(cond): a property of the parser under test; on failure it names
// the property and aborts, which libFuzzer reports as a crash and saves the
// input (crash-<sha1>).
//
// Each target defines FuzzOne(input); fuzz_main.cc calls it from
// LLVMFuzzerTestOneInput and aborts if an exception escapes: the parsers
// report errors as a Status and are not documented to throw.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

namespace clonefs::fuzz {

// The property checks of one target, run on every input.
void FuzzOne(std::string_view input);

// The offset a metadata check's Corruption names ("NAME is damaged at
// offset N: ..."), or npos if `msg` is not of that form.
inline size_t DamagedOffset(const std::string& msg, const std::string& name) {
  const std::string at = name + " is damaged at offset ";
  if (msg.rfind(at, 0) != 0) return std::string::npos;
  size_t i = at.size(), off = 0;
  if (i >= msg.size() || msg[i] < '0' || msg[i] > '9') return std::string::npos;
  for (; i < msg.size() && msg[i] >= '0' && msg[i] <= '9'; ++i) off = off * 10 + (msg[i] - '0');
  return i < msg.size() && msg[i] == ':' ? off : std::string::npos;
}

}  // namespace clonefs::fuzz
