#include "metadata/metadata_impl.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <bit>
#include <string_view>

#include "base/log.h"
#include "metadata/chunk_codec.h"
#include "metadata/superblock_codec.h"

namespace clonefs::metadata {
namespace {

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// True for the files RocksDB keeps the store in: tables (NNNNNN.sst), write-
// ahead logs (NNNNNN.log), MANIFEST-NNNNNN, CURRENT, IDENTITY, OPTIONS-NNNNNN
// and their temporaries (NNNNNN.dbtmp). Not RocksDB's info log (LOG,
// LOG.old.*), the lock, nor what else shares the directory (the daemon's
// clonefs.log, daemon.info, the control socket).
bool IsStoreFile(std::string_view name) {
  auto stem_is_number = [&](std::string_view suffix) {
    return name.size() > suffix.size() && name.ends_with(suffix) &&
           AllDigits(name.substr(0, name.size() - suffix.size()));
  };
  if (stem_is_number(".sst") || stem_is_number(".log") || stem_is_number(".dbtmp")) return true;
  if (name == "CURRENT" || name == "IDENTITY") return true;
  for (std::string_view prefix : {"MANIFEST-", "OPTIONS-"}) {
    if (name.starts_with(prefix) && AllDigits(name.substr(prefix.size()))) return true;
  }
  return false;
}

}  // namespace

StoreOptions StoreOptionsFor(const MetadataOptions& o, const std::string& dir) {
  StoreOptions s;
  s.dir = dir;
  s.read_only = o.read_only;
  s.block_cache_bytes = o.block_cache_bytes;
  s.write_buffer_bytes = o.write_buffer_bytes;
  s.fault_fs = o.fault_fs;
  return s;
}

MetadataImpl::MetadataImpl(const MetadataOptions& options, Superblock sb,
                           std::unique_ptr<DirLock> lock, std::unique_ptr<RocksStore> store,
                           std::unique_ptr<HydrationBitmap> bitmap)
    : options_(options),
      lock_(std::move(lock)),
      store_(std::move(store)),
      bitmap_(std::move(bitmap)),
      committed_per_chunk_(bitmap_->nr_chunks(), 0),
      scratch_(kWordsPerChunk) {
  sb_ = std::move(sb);
  if (options_.read_only) bitmap_->CloseGate();
}

Status MetadataImpl::LoadFromStore(bool fresh) {
  const uint64_t nr_chunks = bitmap_->nr_chunks();
  uint64_t next = 0, total = 0;
  auto zero_until = [&](uint64_t end) {
    if (fresh) {
      next = std::max(next, end);
      return;
    }
    for (; next < end; ++next) {
      bitmap_->ZeroChunk(next);
      committed_per_chunk_[next] = 0;
    }
  };
  Status s = store_->ForEachChunk([&](std::string_view key, std::string_view value) -> Status {
    CLONEFS_ASSIGN_OR_RETURN(const uint64_t c, DecodeChunkKey(key));
    if (c >= nr_chunks) {
      return Status::Corruption("bitmap chunk " + std::to_string(c) + " is beyond the image (" +
                                std::to_string(nr_chunks) + " chunks)");
    }
    zero_until(c);
    Status d = DecodeChunkValue(value, bitmap_->ValidRegionsInChunk(c), scratch_.data());
    if (!d.ok()) return d.WithContext("chunk " + std::to_string(c));
    bitmap_->LoadChunk(c, scratch_.data());
    uint32_t n = 0;
    for (uint64_t w : scratch_) n += std::popcount(w);
    committed_per_chunk_[c] = n;
    total += n;
    next = c + 1;
    return Status::OK();
  });
  if (!s.ok()) return s.WithContext("metadata " + options_.dir);
  zero_until(nr_chunks);
  committed_count_.store(total);
  bitmap_->SetCount(total);
  return Status::OK();
}

Status MetadataImpl::SetRegionHydrated(uint64_t r) {
  if (r >= sb_.nr_regions) {
    return Status::InvalidArgument("region " + std::to_string(r) + " is out of range (" +
                                   std::to_string(sb_.nr_regions) + " regions)");
  }
  if (!bitmap_->Mark(r)) return Status::ReadOnly("metadata is in read-only mode");
  return Status::OK();
}

Status MetadataImpl::CondSetRange(uint64_t start, uint64_t n) {
  // start + n is never computed: n > nr_regions - start is the overflow-free test.
  if (start >= sb_.nr_regions || n > sb_.nr_regions - start) {
    return Status::InvalidArgument("region range start " + std::to_string(start) + " count " +
                                   std::to_string(n) + " exceeds the image (" +
                                   std::to_string(sb_.nr_regions) + " regions)");
  }
  if (!bitmap_->MarkRange(start, n)) return Status::ReadOnly("metadata is in read-only mode");
  return Status::OK();
}

Status MetadataImpl::CheckCommitAllowed() const {
  if (needs_abort_.load()) {
    return Status::Failed("a metadata commit failed; Abort() must succeed before committing again");
  }
  if (bitmap_->GateClosed()) return Status::ReadOnly("metadata is in read-only mode");
  if (!store_) {
    return Status::Failed("the metadata store could not be reopened after a failed write; a "
                          "later Abort() reopens it");
  }
  if (Status e = store_->write_error(); !e.ok()) {
    const std::string msg = "the metadata store refused a write (" + e.message() +
                            "); Abort() must reopen it before committing again";
    return e.IsNoSpace() ? Status::NoSpace(msg) : Status::Failed(msg);
  }
  return Status::OK();
}

Result<uint64_t> MetadataImpl::Freeze() {
  CLONEFS_RETURN_IF_ERROR(CheckCommitAllowed());
  // RocksDB goes on writing (and syncing) into the open files of a removed
  // directory; a commit there would be reported durable and vanish at the
  // next restart. (CURRENT: RocksDB replaces it only by an atomic rename.)
  // Once every region is committed hydrated the store is no longer needed:
  // dest alone is the image, and its owner may remove the directory.
  if (committed_count_.load() != sb_.nr_regions) {
    CLONEFS_RETURN_IF_ERROR(lock_->CheckPresent("CURRENT"));
  }
  return bitmap_->Freeze();
}

Status MetadataImpl::PersistFrozen() {
  CLONEFS_RETURN_IF_ERROR(CheckCommitAllowed());
  const std::vector<uint64_t> chunks = bitmap_->FrozenChunks();
  if (chunks.empty()) return Status::OK();
  std::vector<uint32_t> counts(chunks.size());
  for (size_t i = 0; i < chunks.size(); ++i) {
    const uint64_t c = chunks[i];
    bitmap_->PersistValue(c, scratch_.data());
    uint32_t n = 0;
    for (uint64_t w : scratch_) n += std::popcount(w);
    counts[i] = n;
    if (n == 0) {
      store_->BatchDelete(c);
    } else {
      store_->BatchPut(c, EncodeChunkValue(scratch_.data(), bitmap_->ValidRegionsInChunk(c)));
    }
  }
  Status s = store_->BatchCommit();
  if (!s.ok()) {
    needs_abort_.store(true);
    CLONEFS_LOG_ERROR("metadata commit failed, abort required: %s", s.ToString().c_str());
    return s;
  }
  uint64_t total = committed_count_.load();
  for (size_t i = 0; i < chunks.size(); ++i) {
    total += counts[i];
    total -= committed_per_chunk_[chunks[i]];
    committed_per_chunk_[chunks[i]] = counts[i];
  }
  committed_count_.store(total);
  bitmap_->ClearFrozen();
  return Status::OK();
}

Status MetadataImpl::Commit() {
  CLONEFS_ASSIGN_OR_RETURN(const uint64_t frozen, Freeze());
  (void)frozen;
  return PersistFrozen();
}

Status MetadataImpl::ReopenStore() {
  std::lock_guard<std::mutex> guard(store_mu_);  // the settings calls wait for the new store
  store_.reset();  // closes RocksDB; the directory stays locked by lock_
  CLONEFS_ASSIGN_OR_RETURN(std::unique_ptr<RocksStore> store,
                           RocksStore::Open(StoreOptionsFor(options_, lock_->real_dir())));
  CLONEFS_ASSIGN_OR_RETURN(std::optional<std::string> raw, store->GetSuperblock());
  if (!raw) return Status::Corruption("metadata " + options_.dir + ": superblock vanished");
  CLONEFS_ASSIGN_OR_RETURN(Superblock sb, DecodeSuperblock(*raw));
  if (sb.uuid != sb_.uuid) {
    return Status::Corruption("metadata " + options_.dir + ": superblock changed under us");
  }
  store_ = std::move(store);
  return Status::OK();
}

Status MetadataImpl::Rollback(bool reopen) {
  const bool was_closed = bitmap_->GateClosed();
  bitmap_->CloseGate();  // safety net: the contract already forbids concurrent marks
  bitmap_->ClearAllDirty();
  Status s;
  if (reopen || !store_) s = ReopenStore();
  if (s.ok()) s = LoadFromStore();
  if (!was_closed) bitmap_->OpenGate();
  return s;
}

Status MetadataImpl::Abort() {
  // A store that failed a write refuses further writes, but still reads the
  // last successful commit (the failed batch never reached its memtable):
  // roll back from it first, which needs no space and touches no file
  // RocksDB failed to write. Then replace it by a reopened store, which
  // replays whatever of the WAL is intact (possibly the failed batch, if only
  // its sync failed). The reopen is best effort: on a full file system it
  // fails, the metadata stays rolled back and commits fail until a later
  // Abort reopens the store.
  if (store_ && (needs_abort_.load() || !store_->write_error().ok())) {
    CLONEFS_RETURN_IF_ERROR(Rollback(/*reopen=*/false));
    needs_abort_.store(false);
    Status r = Rollback(/*reopen=*/true);
    if (!r.ok()) {
      CLONEFS_LOG_WARN("metadata %s: rolled back to the last commit, but the store cannot be "
                       "reopened for writing (%s); commits fail until it can",
                       options_.dir.c_str(), r.ToString().c_str());
    }
    return Status::OK();
  }
  CLONEFS_RETURN_IF_ERROR(Rollback(/*reopen=*/!store_));
  needs_abort_.store(false);
  return Status::OK();
}

Status MetadataImpl::ReloadInCoreBitset() { return Rollback(false); }

void MetadataImpl::SetReadWrite() {
  if (!options_.read_only) bitmap_->OpenGate();
}

bool MetadataImpl::IsRegionHydrated(uint64_t r) const {
  return r < sb_.nr_regions && bitmap_->Test(r);
}

bool MetadataImpl::IsRangeHydrated(uint64_t start, uint64_t n) const {
  if (n == 0) return true;
  if (start >= sb_.nr_regions || n > sb_.nr_regions - start) return false;
  return bitmap_->TestRange(start, n);
}

uint64_t MetadataImpl::FindNextUnhydratedRegion(uint64_t start) const {
  return start >= sb_.nr_regions ? sb_.nr_regions : bitmap_->FindNext(start, false);
}

uint64_t MetadataImpl::FindNextHydratedRegion(uint64_t start) const {
  return start >= sb_.nr_regions ? sb_.nr_regions : bitmap_->FindNext(start, true);
}

Result<std::optional<std::string>> MetadataImpl::GetSettings() const {
  std::lock_guard<std::mutex> guard(store_mu_);
  if (!store_) return Status::Failed("the metadata store could not be reopened; Abort() must succeed");
  Result<std::optional<std::string>> r = store_->GetRecord(kSettingsKey);
  if (!r.ok()) return r.status().WithContext("metadata " + options_.dir);
  return r;
}

Status MetadataImpl::PutSettings(std::string_view blob) {
  if (options_.read_only) {
    return Status::ReadOnly("metadata " + options_.dir + " is open read-only; settings not stored");
  }
  std::lock_guard<std::mutex> guard(store_mu_);
  if (needs_abort_.load()) return Status::Failed("a metadata commit failed; settings not stored");
  if (bitmap_->GateClosed()) {
    return Status::ReadOnly("metadata " + options_.dir + " is in read-only mode; settings not stored");
  }
  if (!store_) return Status::Failed("the metadata store could not be reopened; settings not stored");
  return store_->PutRecord(kSettingsKey, blob);
}

Result<SpaceInfo> MetadataImpl::GetSpace() const {
  const std::string& dir = lock_->real_dir();
  DIR* d = opendir(dir.c_str());
  if (!d) return Status::FromErrno(errno, "list metadata directory " + dir);
  uint64_t bytes = 0;
  while (struct dirent* e = readdir(d)) {
    if (!IsStoreFile(e->d_name)) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
      bytes += static_cast<uint64_t>(st.st_size);
    }
  }
  closedir(d);
  struct statvfs vfs;
  if (statvfs(dir.c_str(), &vfs) != 0) return Status::FromErrno(errno, "statvfs " + dir);
  SpaceInfo info;
  info.used_blocks = (bytes + kMetadataBlockSize - 1) / kMetadataBlockSize;
  const uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  info.total_blocks = info.used_blocks + free_bytes / kMetadataBlockSize;
  return info;
}

}  // namespace clonefs::metadata
