// RateMeter: a recent moving rate of bytes per second.
//
// Bytes are added into time slots of kSlotNanos; Rate() sums the slots of the
// last kSlots*kSlotNanos (5 s) window and divides by the time they cover, so
// it follows changes within a few seconds and reads 0 a window after
// copying stops.
//
// THREAD SAFETY: all methods are safe to call concurrently (internal mutex).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>

namespace clonefs {

class RateMeter {
 public:
  static constexpr uint64_t kSlotNanos = 500'000'000;  // 0.5 s
  static constexpr size_t kSlots = 10;                 // 5 s window

  explicit RateMeter(uint64_t start_ns) : start_ns_(start_ns) {}

  void Add(uint64_t bytes, uint64_t now_ns);
  // Bytes per second over the recent window ending at now_ns.
  uint64_t Rate(uint64_t now_ns) const;

 private:
  struct Slot {
    uint64_t epoch = UINT64_MAX;  // slot number (time / kSlotNanos) it holds
    uint64_t bytes = 0;
  };
  mutable std::mutex mu_;
  const uint64_t start_ns_;
  std::array<Slot, kSlots> slots_;  // GUARDED_BY(mu_)
};

}  // namespace clonefs
