#include "sources/release_gate.h"

#include "base/clock.h"

namespace clonefs {

bool ReleaseGate::Close() {
  if (closed_.load()) return false;
  uint64_t expected = 0;  // set before closed_: Health never says "since 0"
  closed_unix_ns_.compare_exchange_strong(expected, WallNowNanos());
  if (closed_.exchange(true)) return false;
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return users_.load() == 0; });
  return true;
}

}  // namespace clonefs
