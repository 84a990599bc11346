// HydrationBitmap: the in-core state behind Metadata (no I/O, no RocksDB).
//
// STRUCTURE
//   hydrated_    one bit per region, 1 = hydrated in core.
//   dirty_[2]    one bit per region each: the regions marked in a transaction.
//                dirty_[cur_] receives new marks; dirty_[1 - cur_] is the frozen
//                set (the transaction being committed).
//   summary_[2]  one bit per chunk of each dirty bitmap ("this chunk has dirty
//                bits"), so Freeze, PersistValue and ClearFrozen cost grows with
//                the change, not with the image.
//   The three bitmaps are padded to whole chunks (chunk_codec.h) and live in
//   anonymous mappings: pages never touched cost no memory, so a fresh or
//   sparse clone uses far less than the 3 bits per region it may grow to.
//   slots_       per-slot in-flight counters and hydrated-region counts (see
//                Slot); Count() = count_base_ + the slots' counts.
//
// MARKS AND FREEZE (the property Metadata::PersistFrozen relies on)
//   A mark sets its bits in dirty_[c] (and the chunk's summary bit) and only
//   then in hydrated_ (release). PersistValue reads a hydrated word first and
//   the matching dirty_[cur_] word second (acquire), and computes
//       persisted = (hydrated & ~dirty[next]) | dirty[frozen]
//   so a region whose hydrated bit it sees because of a mark made after the
//   freeze is seen in dirty[next] too and left out (its data may not have been
//   flushed yet), while every frozen region is in. Committed regions are never
//   left out: a mark only touches dirty[] after re-checking, inside its
//   in-flight window, that the region is not hydrated, so dirty[next] holds
//   only regions that were unhydrated after the freeze.
//
//   The race this has to close: a mark reads cur_ == c just before Freeze flips
//   it, and lands its dirty bit in dirty_[c] after the commit scanned it; that
//   region would then be in no transaction and never be persisted. Each mark
//   therefore runs inside an in-flight window: it increments a per-buffer
//   counter (sharded over cache-line padded slots), re-reads cur_, and retries
//   if cur_ moved. Freeze stores the new cur_ and then waits until every
//   counter of the old buffer is zero. Both sides use seq_cst (a Dekker
//   handshake): either the mark sees the new cur_ and moves to the new buffer,
//   or Freeze sees its counter and waits for it. A window is a handful of
//   instructions (MarkRange opens one per chunk), so the wait is short.
//
//   The gate (read-only mode) uses the same handshake: CloseGate sets closed_
//   and waits for all in-flight marks, so once it returns no mark can modify
//   anything until OpenGate. Abort/reload run behind a closed gate.
//
// THREAD SAFETY
//   Mark, MarkRange and the queries: any thread, lock-free, no allocation.
//   Everything else ("commit side") must be serialized by the caller.
//   LoadChunk, ZeroChunk, SetCount and ClearAllDirty additionally require that
//   no mark runs concurrently (gate closed, or before the bitmap is shared).
//   Queries never see a bit that was hydrated and stays hydrated across a
//   reload flicker to 0: reloads store whole words with their final value.
//
// LIFECYCLE: Create() -> use -> destroy (unmaps everything).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "base/result.h"
#include "metadata/chunk_codec.h"

namespace clonefs::metadata {

class HydrationBitmap {
 public:
  // Maps the bitmaps for `nr_regions` regions (> 0). NoSpace if the address
  // space cannot be reserved.
  static Result<std::unique_ptr<HydrationBitmap>> Create(uint64_t nr_regions);
  ~HydrationBitmap();
  HydrationBitmap(const HydrationBitmap&) = delete;
  HydrationBitmap& operator=(const HydrationBitmap&) = delete;

  uint64_t nr_regions() const { return nr_regions_; }
  uint64_t nr_chunks() const { return nr_chunks_; }
  // Regions of chunk `c` that exist (kRegionsPerChunk except in the last one).
  uint64_t ValidRegionsInChunk(uint64_t c) const;

  // --- marks: any thread. Return false, changing nothing, if the gate is
  // closed. REQUIRES: r < nr_regions; n <= nr_regions - start.
  bool Mark(uint64_t r);
  bool MarkRange(uint64_t start, uint64_t n);

  // --- gate (commit side). CloseGate waits for marks in flight.
  void CloseGate();
  void OpenGate() { closed_.store(false, std::memory_order_seq_cst); }
  bool GateClosed() const { return closed_.load(std::memory_order_acquire); }

  // --- transactions (commit side).
  // Freezes the current dirty set (merging a frozen set that was not cleared)
  // and returns how many regions the frozen set holds.
  uint64_t Freeze();
  // Chunks with frozen bits, in increasing order.
  std::vector<uint64_t> FrozenChunks() const;
  // words[0, kWordsPerChunk) = what chunk `c` must persist: (hydrated &
  // ~dirty[next]) | dirty[frozen] (see the header comment).
  void PersistValue(uint64_t c, uint64_t* words) const;
  // Empties the frozen set (after it was persisted).
  void ClearFrozen();
  // Empties both dirty sets. REQUIRES: no concurrent marks.
  void ClearAllDirty();
  // True if either dirty set is non-empty.
  bool Changed() const;

  // --- reload (commit side, REQUIRES: no concurrent marks).
  void LoadChunk(uint64_t c, const uint64_t* words);
  void ZeroChunk(uint64_t c);
  void SetCount(uint64_t n);

  // --- queries: any thread.
  bool Test(uint64_t r) const;
  // REQUIRES: n <= nr_regions - start.
  bool TestRange(uint64_t start, uint64_t n) const;
  uint64_t Count() const;
  // First region >= start whose bit is `set`, or nr_regions.
  uint64_t FindNext(uint64_t start, bool set) const;
  // Copies chunk c of the hydrated bitmap.
  void ReadChunk(uint64_t c, uint64_t* words) const;

  // Test-only: a hook every mark that is not a no-op calls at three points,
  // so tests can widen its races with Freeze and PersistValue:
  //   kBeforeEnter   after the lock-free "already hydrated?" check;
  //   kInWindow      inside the in-flight window, before any bit is set;
  //   kBeforeHydrated  dirty and summary bits set, hydrated bit not yet.
  // nullptr (the default) removes it. Process-wide; costs one relaxed load.
  enum HookPoint { kBeforeEnter, kInWindow, kBeforeHydrated };
  static void SetMarkHookForTesting(void (*hook)(HookPoint));

 private:
  // A slot word packs, for one dirty buffer, the number of marks in flight
  // (low 16 bits) and the number of regions its marks newly hydrated (high 48
  // bits), so leaving the window and counting cost one atomic add together.
  static constexpr int kSlots = 16;
  static constexpr int kCountShift = 16;
  static constexpr uint64_t kInFlightMask = (1ull << kCountShift) - 1;
  struct alignas(64) Slot {
    std::atomic<uint64_t> word[2] = {0, 0};
  };

  HydrationBitmap(uint64_t nr_regions, uint64_t nr_chunks);
  static Slot& MySlotOf(HydrationBitmap* self);
  unsigned Enter(Slot& s);
  // Leaves the window of buffer c, adding `added` newly hydrated regions.
  static void Exit(Slot& s, unsigned c, uint64_t added) {
    s.word[c].fetch_add((added << kCountShift) - 1, std::memory_order_release);
  }
  void WaitIdle(unsigned c) const;
  // Returns how many regions it newly hydrated.
  uint64_t SetWordBits(unsigned c, uint64_t w, uint64_t mask);
  void ClearBuffer(unsigned b);
  std::vector<uint64_t> ChunksOf(unsigned b) const;

  const uint64_t nr_regions_;
  const uint64_t nr_chunks_;
  const uint64_t nr_words_;          // nr_chunks_ * kWordsPerChunk
  const uint64_t nr_summary_words_;  // ceil(nr_chunks_ / 64)
  uint64_t* hydrated_ = nullptr;     // mmap, accessed through std::atomic_ref
  uint64_t* dirty_[2] = {nullptr, nullptr};
  std::unique_ptr<std::atomic<uint64_t>[]> summary_[2];
  std::atomic<unsigned> cur_{0};   // written only by Freeze (commit side)
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> count_base_{0};  // Count() = base + counts in the slots
  Slot slots_[kSlots];
};

}  // namespace clonefs::metadata
