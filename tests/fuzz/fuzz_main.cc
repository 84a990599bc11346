// libFuzzer's entry point for every target: runs the target's FuzzOne and
// turns an escaping exception into a crash with its message.
#include <cstddef>
#include <cstdint>
#include <exception>

#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    clonefs::fuzz::FuzzOne({reinterpret_cast<const char*>(data), size});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "exception escaped: %s\n", e.what());
    std::abort();
  } catch (...) {
    std::fprintf(stderr, "unknown exception escaped\n");
    std::abort();
  }
  return 0;
}
