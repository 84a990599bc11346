// MetadataImpl: the Metadata of metadata.h over a HydrationBitmap (in core)
// and a RocksStore (durable). Internal; built by Metadata::Open.
//
// STRUCTURE
//   bitmap_  in-core hydrated bitmap, dirty sets, the mark/freeze protocol and
//            the read-only gate (hydration_bitmap.h).
//   store_   the RocksDB store; null only after a reopen failed inside Abort.
//   committed_per_chunk_ / committed_count_: hydrated regions per chunk in the
//            last commit, so NrCommittedHydratedRegions is exact and cheap.
//   needs_abort_: set when PersistFrozen fails, cleared by a successful Abort.
//   store_mu_: guards the store_ pointer against ReopenStore for the
//            settings calls, the only ones made from outside the commit side.
//
// THREAD SAFETY: as metadata.h says. Marks and queries touch only bitmap_ and
// atomics. The commit side (Freeze, PersistFrozen, Commit, Abort,
// ReloadInCoreBitset, SetReadOnly, SetReadWrite, GetSpace) is serialized by
// the caller; store_, committed_per_chunk_ and scratch_ belong to it.
//
// LIFECYCLE: members are destroyed bitmap_, store_ (closes RocksDB), then
// lock_ (releases the directory), in that order.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "metadata/dir_lock.h"
#include "metadata/hydration_bitmap.h"
#include "metadata/metadata.h"
#include "metadata/rocks_store.h"

namespace clonefs::metadata {

class MetadataImpl final : public Metadata {
 public:
  MetadataImpl(const MetadataOptions& options, Superblock sb, std::unique_ptr<DirLock> lock,
               std::unique_ptr<RocksStore> store, std::unique_ptr<HydrationBitmap> bitmap);
  ~MetadataImpl() override = default;

  // Replaces the in-core hydrated bitmap by the store's content (chunk by
  // chunk, never flickering a bit that stays set) and recounts. `fresh`: the
  // in-core bitmap is known to be all zero (at Open), so chunks absent from
  // the store need not be cleared. REQUIRES: no concurrent marks. Errors:
  // Corruption (with the chunk and the reason), IoError.
  Status LoadFromStore(bool fresh = false);

  Status SetRegionHydrated(uint64_t r) override;
  Status CondSetRange(uint64_t start, uint64_t n) override;
  Result<uint64_t> Freeze() override;
  Status PersistFrozen() override;
  Status Commit() override;
  Status Abort() override;
  Status ReloadInCoreBitset() override;
  bool ChangedThisTransaction() const override { return bitmap_->Changed(); }
  void SetReadOnly() override { bitmap_->CloseGate(); }
  void SetReadWrite() override;
  bool IsReadOnly() const override { return bitmap_->GateClosed(); }
  bool IsHydrationDone() const override { return bitmap_->Count() == sb_.nr_regions; }
  bool IsRegionHydrated(uint64_t r) const override;
  bool IsRangeHydrated(uint64_t start, uint64_t n) const override;
  uint64_t NrHydratedRegions() const override { return bitmap_->Count(); }
  uint64_t NrCommittedHydratedRegions() const override { return committed_count_.load(); }
  uint64_t FindNextUnhydratedRegion(uint64_t start) const override;
  uint64_t FindNextHydratedRegion(uint64_t start) const override;
  Result<SpaceInfo> GetSpace() const override;
  Result<std::optional<std::string>> GetSettings() const override;
  Status PutSettings(std::string_view blob) override;

 private:
  Status CheckCommitAllowed() const;
  // Drops both dirty sets, reopens the store if needed, reloads. The gate is
  // closed for the duration and restored afterwards.
  Status Rollback(bool reopen);
  Status ReopenStore();

  const MetadataOptions options_;
  std::unique_ptr<DirLock> lock_;
  mutable std::mutex store_mu_;
  std::unique_ptr<RocksStore> store_;  // replaced only under store_mu_
  std::unique_ptr<HydrationBitmap> bitmap_;
  std::vector<uint32_t> committed_per_chunk_;
  std::atomic<uint64_t> committed_count_{0};
  std::atomic<bool> needs_abort_{false};
  std::vector<uint64_t> scratch_;  // kWordsPerChunk words
};

// Options for the store of a Metadata opened with `options`.
StoreOptions StoreOptionsFor(const MetadataOptions& options, const std::string& dir);

}  // namespace clonefs::metadata
