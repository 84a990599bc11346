#include "copier/link_window.h"

#include <algorithm>

#include "copier/copy_buffer.h"

namespace clonefs {

void LinkWindow::Tick(uint64_t now_ns) {
  const uint64_t floor = floor_->Get(now_ns);
  if (floor == 0) return;
  const uint64_t next = next_probe_ns_.load(std::memory_order_relaxed);
  if (next == 0) {
    next_probe_ns_.store(now_ns + kProbeIntervalNanos, std::memory_order_relaxed);
    return;
  }
  if (now_ns < next) return;
  // Long enough for the copies in flight (about two floors' worth at the
  // window) to drain and for one more read to cross the idle link.
  // At most a quarter of the interval, so a very distant source still
  // spends most of the time at its window.
  const uint64_t length =
      std::min(std::max<uint64_t>(3 * floor, kMinRateSpanNanos), kProbeIntervalNanos / 4);
  probe_until_ns_.store(now_ns + length, std::memory_order_relaxed);
  next_probe_ns_.store(now_ns + kProbeIntervalNanos, std::memory_order_relaxed);
}

uint64_t LinkWindow::Rate(uint64_t floor, uint64_t now_ns) const {
  return delivered_.Max(std::max<uint64_t>(4 * floor, kMinRateSpanNanos), now_ns);
}

uint64_t LinkWindow::Window(uint64_t target, uint64_t now_ns) const {
  const uint64_t least = std::min(kMinWindow, target);
  const uint64_t floor = floor_->Get(now_ns);
  if (floor == 0 || Probing(now_ns)) return least;
  const uint64_t rate = Rate(floor, now_ns);
  // The floor may have been measured on smaller pieces than today's: one
  // piece on the wire while the rest cross the round trip.
  const double window =
      static_cast<double>(kGain) * static_cast<double>(rate) * static_cast<double>(floor) / 1e9 +
      static_cast<double>(PieceCapAt(rate));
  if (window >= static_cast<double>(target)) return target;
  return std::max(least, static_cast<uint64_t>(window));
}

uint64_t LinkWindow::PieceCap(uint64_t now_ns) const {
  const uint64_t floor = floor_->Get(now_ns);
  if (floor == 0) return kMinWindow;  // nothing measured: a small first piece
  return PieceCapAt(Rate(floor, now_ns));
}

uint64_t LinkWindow::PieceCapAt(uint64_t rate) {
  const double cap = static_cast<double>(rate) * static_cast<double>(kPieceNanos) / 1e9;
  if (cap >= static_cast<double>(kMaxCopyChunk)) return kMaxCopyChunk;
  // A power of two: pieces stay aligned as regions are, and split into
  // whole requests of a server's (power-of-two) request size.
  uint64_t piece = kMinPiece;
  while (piece * 2 <= static_cast<uint64_t>(cap)) piece *= 2;
  return piece;
}

}  // namespace clonefs
