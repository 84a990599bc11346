#include "devices/source_health.h"

namespace clonefs {

const char* SourceStateName(SourceHealth::State s) {
  switch (s) {
    case SourceHealth::State::kConnected:
      return "connected";
    case SourceHealth::State::kReconnecting:
      return "reconnecting";
    case SourceHealth::State::kStalled:
      return "stalled";
    case SourceHealth::State::kChanged:
      return "changed";
    case SourceHealth::State::kReleased:
      return "released";
  }
  return "unknown";
}

}  // namespace clonefs
