#include "metadata/hydration_bitmap.h"

#include <sched.h>
#include <sys/mman.h>

#include <bit>
#include <cstring>

namespace clonefs::metadata {
namespace {

using Word = std::atomic_ref<uint64_t>;

uint64_t* MapZeroed(uint64_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<uint64_t*>(p);
}

// Bits [lo, hi) of a word, 0 <= lo < hi <= 64.
uint64_t MaskOf(uint64_t lo, uint64_t hi) {
  const uint64_t upper = hi == 64 ? ~0ull : (1ull << hi) - 1;
  return upper & (~0ull << lo);
}

std::atomic<unsigned> g_next_slot{0};
std::atomic<void (*)(HydrationBitmap::HookPoint)> g_mark_hook{nullptr};

inline void MarkHook(HydrationBitmap::HookPoint p) {
  if (auto* hook = g_mark_hook.load(std::memory_order_relaxed)) hook(p);
}

}  // namespace

Result<std::unique_ptr<HydrationBitmap>> HydrationBitmap::Create(uint64_t nr_regions) {
  const uint64_t nr_chunks = (nr_regions + kRegionsPerChunk - 1) / kRegionsPerChunk;
  std::unique_ptr<HydrationBitmap> b(new HydrationBitmap(nr_regions, nr_chunks));
  const uint64_t bytes = b->nr_words_ * 8;
  b->hydrated_ = MapZeroed(bytes);
  b->dirty_[0] = MapZeroed(bytes);
  b->dirty_[1] = MapZeroed(bytes);
  if (!b->hydrated_ || !b->dirty_[0] || !b->dirty_[1]) {
    return Status::NoSpace("cannot map the in-core bitmaps (3 x " + std::to_string(bytes) +
                           " bytes for " + std::to_string(nr_regions) + " regions)");
  }
  return b;
}

HydrationBitmap::HydrationBitmap(uint64_t nr_regions, uint64_t nr_chunks)
    : nr_regions_(nr_regions),
      nr_chunks_(nr_chunks),
      nr_words_(nr_chunks * kWordsPerChunk),
      nr_summary_words_((nr_chunks + 63) / 64) {
  for (auto& s : summary_) s.reset(new std::atomic<uint64_t>[nr_summary_words_]());
}

HydrationBitmap::~HydrationBitmap() {
  for (uint64_t* p : {hydrated_, dirty_[0], dirty_[1]}) {
    if (p) munmap(p, nr_words_ * 8);
  }
}

uint64_t HydrationBitmap::ValidRegionsInChunk(uint64_t c) const {
  const uint64_t first = c * kRegionsPerChunk;
  return std::min(kRegionsPerChunk, nr_regions_ - first);
}

HydrationBitmap::Slot& HydrationBitmap::MySlotOf(HydrationBitmap* self) {
  static thread_local const unsigned idx =
      g_next_slot.fetch_add(1, std::memory_order_relaxed) % kSlots;
  return self->slots_[idx];
}

void HydrationBitmap::SetMarkHookForTesting(void (*hook)(HookPoint)) { g_mark_hook.store(hook); }

unsigned HydrationBitmap::Enter(Slot& s) {
  for (;;) {
    const unsigned c = cur_.load(std::memory_order_acquire);
    s.word[c].fetch_add(1, std::memory_order_seq_cst);
    if (cur_.load(std::memory_order_seq_cst) == c) {
      MarkHook(kInWindow);
      return c;
    }
    Exit(s, c, 0);  // Freeze flipped the buffers meanwhile: join the new one
  }
}

void HydrationBitmap::WaitIdle(unsigned c) const {
  for (const Slot& s : slots_) {
    while ((s.word[c].load(std::memory_order_seq_cst) & kInFlightMask) != 0) sched_yield();
  }
}

uint64_t HydrationBitmap::SetWordBits(unsigned c, uint64_t w, uint64_t mask) {
  Word h(hydrated_[w]);
  // Re-checked inside the in-flight window: see the header comment.
  const uint64_t todo = mask & ~h.load(std::memory_order_acquire);
  if (todo == 0) return 0;
  Word d(dirty_[c][w]);
  if ((d.load(std::memory_order_acquire) & todo) != todo) d.fetch_or(todo, std::memory_order_acq_rel);
  const uint64_t chunk = w / kWordsPerChunk;
  std::atomic<uint64_t>& sw = summary_[c][chunk / 64];
  const uint64_t sbit = 1ull << (chunk % 64);
  if ((sw.load(std::memory_order_acquire) & sbit) == 0) sw.fetch_or(sbit, std::memory_order_acq_rel);
  MarkHook(kBeforeHydrated);
  const uint64_t old = h.fetch_or(todo, std::memory_order_acq_rel);
  return std::popcount(todo & ~old);
}

bool HydrationBitmap::Mark(uint64_t r) {
  if (closed_.load(std::memory_order_relaxed)) return false;
  const uint64_t w = r / 64, bit = 1ull << (r % 64);
  if (Word(hydrated_[w]).load(std::memory_order_acquire) & bit) return true;
  MarkHook(kBeforeEnter);
  Slot& s = MySlotOf(this);
  const unsigned c = Enter(s);
  const bool open = !closed_.load(std::memory_order_seq_cst);
  Exit(s, c, open ? SetWordBits(c, w, bit) : 0);
  return open;
}

bool HydrationBitmap::MarkRange(uint64_t start, uint64_t n) {
  if (closed_.load(std::memory_order_relaxed)) return false;
  const uint64_t end = start + n;
  MarkHook(kBeforeEnter);
  Slot& s = MySlotOf(this);
  // One in-flight window per chunk keeps each window (and Freeze's wait) short.
  for (uint64_t pos = start; pos < end;) {
    const uint64_t piece_end = std::min(end, (pos / kRegionsPerChunk + 1) * kRegionsPerChunk);
    const unsigned c = Enter(s);
    if (closed_.load(std::memory_order_seq_cst)) {
      Exit(s, c, 0);
      return false;
    }
    uint64_t added = 0;
    for (uint64_t i = pos; i < piece_end;) {
      const uint64_t lo = i % 64;
      const uint64_t hi = std::min<uint64_t>(64, lo + (piece_end - i));
      added += SetWordBits(c, i / 64, MaskOf(lo, hi));
      i += hi - lo;
    }
    Exit(s, c, added);
    pos = piece_end;
  }
  return true;
}

void HydrationBitmap::CloseGate() {
  closed_.store(true, std::memory_order_seq_cst);
  WaitIdle(0);
  WaitIdle(1);
}

std::vector<uint64_t> HydrationBitmap::ChunksOf(unsigned b) const {
  std::vector<uint64_t> out;
  for (uint64_t i = 0; i < nr_summary_words_; ++i) {
    uint64_t v = summary_[b][i].load(std::memory_order_acquire);
    while (v) {
      out.push_back(i * 64 + std::countr_zero(v));
      v &= v - 1;
    }
  }
  return out;
}

uint64_t HydrationBitmap::Freeze() {
  const unsigned c = cur_.load(std::memory_order_relaxed);
  const unsigned f = 1 - c;
  // A frozen set that was never persisted joins the current one. Nothing marks
  // into dirty_[f] (it was drained when it was frozen); marks may be setting
  // bits in dirty_[c] concurrently, hence fetch_or.
  for (uint64_t chunk : ChunksOf(f)) {
    for (uint64_t w = chunk * kWordsPerChunk; w < (chunk + 1) * kWordsPerChunk; ++w) {
      Word from(dirty_[f][w]);
      if (const uint64_t v = from.load(std::memory_order_relaxed)) {
        Word(dirty_[c][w]).fetch_or(v, std::memory_order_acq_rel);
        from.store(0, std::memory_order_relaxed);
      }
    }
    summary_[c][chunk / 64].fetch_or(1ull << (chunk % 64), std::memory_order_acq_rel);
    summary_[f][chunk / 64].store(0, std::memory_order_relaxed);
  }
  cur_.store(f, std::memory_order_seq_cst);
  WaitIdle(c);  // every mark that joined dirty_[c] has finished
  uint64_t n = 0;
  for (uint64_t chunk : ChunksOf(c)) {
    for (uint64_t w = chunk * kWordsPerChunk; w < (chunk + 1) * kWordsPerChunk; ++w) {
      n += std::popcount(Word(dirty_[c][w]).load(std::memory_order_acquire));
    }
  }
  return n;
}

std::vector<uint64_t> HydrationBitmap::FrozenChunks() const {
  return ChunksOf(1 - cur_.load(std::memory_order_acquire));
}

void HydrationBitmap::PersistValue(uint64_t c, uint64_t* words) const {
  const unsigned next = cur_.load(std::memory_order_acquire);
  const unsigned frozen = 1 - next;
  const uint64_t base = c * kWordsPerChunk;
  for (uint64_t i = 0; i < kWordsPerChunk; ++i) {
    // Order matters: hydrated first, then dirty[next] (header comment).
    const uint64_t h = Word(hydrated_[base + i]).load(std::memory_order_acquire);
    const uint64_t d = Word(dirty_[next][base + i]).load(std::memory_order_acquire);
    const uint64_t f = Word(dirty_[frozen][base + i]).load(std::memory_order_acquire);
    words[i] = (h & ~d) | f;
  }
}

void HydrationBitmap::ClearBuffer(unsigned b) {
  for (uint64_t chunk : ChunksOf(b)) {
    for (uint64_t w = chunk * kWordsPerChunk; w < (chunk + 1) * kWordsPerChunk; ++w) {
      Word d(dirty_[b][w]);
      if (d.load(std::memory_order_relaxed)) d.store(0, std::memory_order_relaxed);
    }
  }
  for (uint64_t i = 0; i < nr_summary_words_; ++i) summary_[b][i].store(0, std::memory_order_release);
}

void HydrationBitmap::ClearFrozen() { ClearBuffer(1 - cur_.load(std::memory_order_relaxed)); }

void HydrationBitmap::ClearAllDirty() {
  ClearBuffer(0);
  ClearBuffer(1);
}

bool HydrationBitmap::Changed() const {
  for (const auto& s : summary_) {
    for (uint64_t i = 0; i < nr_summary_words_; ++i) {
      if (s[i].load(std::memory_order_acquire) != 0) return true;
    }
  }
  return false;
}

void HydrationBitmap::LoadChunk(uint64_t c, const uint64_t* words) {
  for (uint64_t i = 0; i < kWordsPerChunk; ++i) {
    Word w(hydrated_[c * kWordsPerChunk + i]);
    if (w.load(std::memory_order_relaxed) != words[i]) w.store(words[i], std::memory_order_release);
  }
}

void HydrationBitmap::ZeroChunk(uint64_t c) {
  for (uint64_t i = 0; i < kWordsPerChunk; ++i) {
    Word w(hydrated_[c * kWordsPerChunk + i]);
    if (w.load(std::memory_order_relaxed) != 0) w.store(0, std::memory_order_release);
  }
}

uint64_t HydrationBitmap::Count() const {
  uint64_t n = count_base_.load(std::memory_order_acquire);
  for (const Slot& s : slots_) {
    for (const auto& w : s.word) n += w.load(std::memory_order_acquire) >> kCountShift;
  }
  return n;
}

void HydrationBitmap::SetCount(uint64_t n) {
  for (Slot& s : slots_) {
    for (auto& w : s.word) w.store(w.load(std::memory_order_relaxed) & kInFlightMask);
  }
  count_base_.store(n, std::memory_order_release);
}

bool HydrationBitmap::Test(uint64_t r) const {
  return (Word(hydrated_[r / 64]).load(std::memory_order_acquire) >> (r % 64)) & 1;
}

bool HydrationBitmap::TestRange(uint64_t start, uint64_t n) const {
  const uint64_t end = start + n;
  for (uint64_t i = start; i < end;) {
    const uint64_t lo = i % 64;
    const uint64_t hi = std::min<uint64_t>(64, lo + (end - i));
    const uint64_t mask = MaskOf(lo, hi);
    if ((Word(hydrated_[i / 64]).load(std::memory_order_acquire) & mask) != mask) return false;
    i += hi - lo;
  }
  return true;
}

uint64_t HydrationBitmap::FindNext(uint64_t start, bool set) const {
  for (uint64_t i = start; i < nr_regions_;) {
    uint64_t v = Word(hydrated_[i / 64]).load(std::memory_order_acquire);
    if (!set) v = ~v;
    v &= ~0ull << (i % 64);
    if (v != 0) return std::min<uint64_t>(nr_regions_, (i & ~63ull) + std::countr_zero(v));
    i = (i | 63) + 1;
  }
  return nr_regions_;
}

void HydrationBitmap::ReadChunk(uint64_t c, uint64_t* words) const {
  for (uint64_t i = 0; i < kWordsPerChunk; ++i) {
    words[i] = Word(hydrated_[c * kWordsPerChunk + i]).load(std::memory_order_acquire);
  }
}

}  // namespace clonefs::metadata
