#include "sources/source_wait.h"

#include <cerrno>

namespace clonefs {

std::string FormatTimeout(uint64_t timeout_ns) {
  constexpr uint64_t kSecond = 1'000'000'000;
  if (timeout_ns % kSecond == 0) return std::to_string(timeout_ns / kSecond) + " s";
  return std::to_string(timeout_ns / 1'000'000) + " ms";
}

Status SourceTimedOut(const std::string& what, const std::string& source, uint64_t timeout_ns) {
  return Status::IoError(what + " from " + source + " timed out after " +
                             FormatTimeout(timeout_ns) + " (the source timeout)",
                         ETIMEDOUT);
}

Status SourceInterrupted(const std::string& what, const std::string& source) {
  return Status::IoError(what + " from " + source + ": read interrupted", EINTR);
}

std::string ReadWhat(uint64_t off, uint64_t len) {
  return "read of " + std::to_string(len) + " bytes at " + std::to_string(off);
}

}  // namespace clonefs
