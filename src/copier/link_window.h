// LinkWindow: how many bytes of copies to keep in flight on a link that
// users' reads of the source share (BackgroundCopier, SHARED LINK;
// docs/design.md, "Foreground first on a shared link"), and how large each
// piece may be there.
//
//   Window(target) = kGain x rate x floor + one piece, within
//                    [kMinWindow, target] (kMinWindow alone before the
//                    first read is answered, and during a floor probe)
//   PieceCap       = kPieceNanos of the rate, a power of two, at least
//                    kMinPiece, at most kMaxCopyChunk (kMinWindow before the
//                    first read is answered)
//
// where floor is the LatencyFloor the copier notes its reads in (borrowed)
// and rate the highest rate at which the source delivered them over spans
// of four floors (at least kMinRateSpanNanos; DeliveryRate). Tick starts a
// floor probe every kProbeIntervalNanos: for three floors (at most a
// quarter of the interval) the window is
// kMinWindow, so the copies queued at the server drain and the next read
// measures the round trip of an idle link (a window above the link's
// capacity makes every read wait in the server's queue, and the floor --
// with the window -- would otherwise ratchet up window after window).
//
// Pure arithmetic over caller-supplied time (the Clock seam).
// THREAD SAFETY: NoteDelivered, Window and PieceCap may be called from any
// thread; Tick from one thread at a time (the copier's issuer).
#pragma once

#include <atomic>
#include <cstdint>

#include "copier/delivery_rate.h"
#include "copier/latency_floor.h"

namespace clonefs {

class LinkWindow {
 public:
  static constexpr uint64_t kGain = 2;
  static constexpr uint64_t kMinWindow = 512ull << 10;
  static constexpr uint64_t kPieceNanos = 25'000'000;
  static constexpr uint64_t kMinPiece = 64ull << 10;
  static constexpr uint64_t kMinRateSpanNanos = 50'000'000;
  static constexpr uint64_t kProbeIntervalNanos = LatencyFloor::kWindowNanos * 4 / 5;

  explicit LinkWindow(const LatencyFloor* floor) : floor_(floor) {}

  // `bytes` of a copy's read were delivered at now_ns.
  void NoteDelivered(uint64_t bytes, uint64_t now_ns) { delivered_.Note(bytes, now_ns); }
  // Starts a floor probe when one is due (the first is due
  // kProbeIntervalNanos after a floor is first known).
  void Tick(uint64_t now_ns);
  // The bytes of copies to keep in flight, for a byte target `target`.
  uint64_t Window(uint64_t target, uint64_t now_ns) const;
  // The most bytes one piece may hold.
  uint64_t PieceCap(uint64_t now_ns) const;
  // The same at a delivery rate of `rate` bytes/s.
  static uint64_t PieceCapAt(uint64_t rate);
  // Whether a floor probe is under way at now_ns.
  bool Probing(uint64_t now_ns) const {
    return now_ns < probe_until_ns_.load(std::memory_order_relaxed);
  }

 private:
  uint64_t Rate(uint64_t floor, uint64_t now_ns) const;

  const LatencyFloor* const floor_;
  DeliveryRate delivered_;
  std::atomic<uint64_t> next_probe_ns_{0};  // 0: no floor known yet
  std::atomic<uint64_t> probe_until_ns_{0};
};

}  // namespace clonefs
