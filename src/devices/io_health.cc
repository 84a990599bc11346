#include "devices/io_health.h"

namespace clonefs {

const char* DestConditionName(DestCondition c) {
  switch (c) {
    case DestCondition::kOk: return "ok";
    case DestCondition::kFull: return "full";
    case DestCondition::kIoError: return "I/O error";
  }
  return "?";
}

const char* ErrorKindName(ErrorKind k) {
  switch (k) {
    case ErrorKind::kNone: return "none";
    case ErrorKind::kDestFull: return "dest-full";
    case ErrorKind::kDestIo: return "dest-io";
    case ErrorKind::kSource: return "source";
    case ErrorKind::kMetadata: return "metadata";
  }
  return "?";
}

bool ParseErrorKind(const std::string& s, ErrorKind* out) {
  for (ErrorKind k : {ErrorKind::kNone, ErrorKind::kDestFull, ErrorKind::kDestIo,
                      ErrorKind::kSource, ErrorKind::kMetadata}) {
    if (s == ErrorKindName(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}

}  // namespace clonefs
