// Test support: ranges reserved by requests in flight, so that a model-based
// test never has two requests on the same bytes (or sectors) at once, and
// the model knows exactly what each one replaced.
//
// THREAD SAFETY: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <mutex>

namespace clonefs::test {

class RangeReservations {
 public:
  // Reserves [first, first + n) if it overlaps no reservation.
  bool TryReserve(uint64_t first, uint64_t n) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = busy_.upper_bound(first);
    if (it != busy_.begin() && std::prev(it)->first + std::prev(it)->second > first) return false;
    if (it != busy_.end() && it->first < first + n) return false;
    busy_[first] = n;
    return true;
  }
  // Ends the reservation that starts at `first`.
  void Release(uint64_t first) {
    std::lock_guard<std::mutex> l(mu_);
    busy_.erase(first);
  }

 private:
  std::mutex mu_;
  std::map<uint64_t, uint64_t> busy_;  // GUARDED_BY(mu_): first -> n
};

}  // namespace clonefs::test
