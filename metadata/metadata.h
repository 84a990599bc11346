// clonefs metadata: the persistent hydration bitmap of one clone.
//
// This is dm-clone's transactional metadata API (dm-clone-metadata.h) in C++
// form, stored in an embedded RocksDB directory instead of a metadata device.
// See docs/metadata-format.md for the on-disk layout.
//
// STRUCTURE
//   - An in-core bitmap, one bit per region: 1 = hydrated. Bits only go 0 -> 1
//     (except by Abort/ReloadInCoreBitset, which re-read the durable state).
//   - Two dirty bitmaps (double buffer), one bit per region, plus a per-chunk
//     summary of each, so a commit touches only what changed. Marks go to the
//     "current" buffer; Commit phase 1 (Freeze) flips the buffers so marks that
//     arrive during the commit belong to the next transaction.
//   - Memory: 3 bits per region plus a small constant (RocksDB caches are
//     capped, see MetadataOptions). 2^32 regions -> 1.5 GiB; 2^28 -> 96 MiB.
//
// COMMIT PROTOCOL (two phases, so the engine can flush the destination between
// them; SPEC §5):
//     md->Freeze();            // (1) freeze exactly this transaction's marks
//     dest->Flush();           // (2) fdatasync dest (the engine's job)
//     md->PersistFrozen();     // (3) one atomic, synced RocksDB WriteBatch
//   Commit() does (1)+(3) for callers with nothing to flush (tests, tools).
//   A commit whose frozen set is empty does no I/O. If PersistFrozen fails, the
//   metadata refuses further Freeze/PersistFrozen until Abort() succeeds; Abort
//   drops both dirty sets and reloads the in-core bitmap from the last commit.
//
// THREAD SAFETY
//   - SetRegionHydrated, CondSetRange and every const query may be called
//     concurrently from any number of threads, also concurrently with Freeze
//     and PersistFrozen. They never block on I/O and never allocate.
//   - Freeze, PersistFrozen, Commit, Abort, ReloadInCoreBitset, SetReadOnly,
//     SetReadWrite and GetSpace must be serialized by the caller (the engine's
//     commit thread). Abort and ReloadInCoreBitset must not run concurrently
//     with marks: call SetReadOnly first (marks are then refused), exactly as
//     dm_clone_reload_in_core_bitset requires.
//   - Queries see marks made by other threads once those calls have returned.
//
// LIFECYCLE: Open() -> use -> destroy. The destructor does NOT commit; callers
// commit first if they want the last marks durable. A process holds an
// exclusive lock on the directory from Open until destruction; a second
// Open of the same directory (any process) fails with Status::Busy.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/status.h"

namespace clonefs::metadata {

// Region sizes allowed by SPEC §2: powers of two in [kMinRegionSize, kMaxRegionSize].
inline constexpr uint64_t kMinRegionSize = 4096;
inline constexpr uint64_t kMaxRegionSize = 1ull << 30;
// Size of one "metadata block" in the dm-clone status line and space figures.
inline constexpr uint64_t kMetadataBlockSize = 4096;
// On-disk format version written by this build (docs/metadata-format.md:
// 3 adds the dest's inode generation; 1 and 2 still read).
inline constexpr uint32_t kFormatVersion = 3;

// What identifies a source or destination file (SPEC §5 "Clone identity").
// A field that is 0 (or empty) is "not recorded" and is not compared. The
// caller (src/clone/identity.h) decides which fields to fill: for the source
// size, mtime (where meaningful) and two content fingerprints; for the dest
// size, inode (or rdev), birth time, inode generation and, for a block
// device, what names the disk behind the device number.
struct FileIdentity {
  // Bit in `flags`: the file system invents mtimes (a FUSE file whose server
  // sets them at each mount, e.g. nbdfuse); mtime is then never compared.
  static constexpr uint32_t kMtimeUnstable = 1;
  // Bit in `flags`: a remote source (NBD, HTTP, SSH: SPEC §9). `path` is its
  // URI, for people only; `device_id` names the NBD export ("nbd export
  // NAME") or is empty; size and fingerprints decide.
  static constexpr uint32_t kRemote = 2;
  // Bit in `flags` (format 3 and later): `generation` is recorded. The
  // generation may be 0, so the bit, not the value, says it is known.
  static constexpr uint32_t kGeneration = 4;

  uint64_t size = 0;         // bytes
  uint64_t inode = 0;        // st_ino, or st_rdev for a block device
  int64_t mtime_ns = 0;      // st_mtim in nanoseconds
  uint64_t fingerprint = 0;  // hash of sampled content ("fp1"), see docs/metadata-format.md
  std::string path;          // informational only; never compared
  // Format 2 and later:
  int64_t btime_ns = 0;       // birth time (statx STATX_BTIME) in ns; 0 = unknown
  uint64_t fingerprint2 = 0;  // hash of 32 samples spread over the image ("fp2")
  uint32_t flags = 0;         // kMtimeUnstable, kRemote
  // Block devices: what names the storage behind the device number (a
  // serial/WWN/uuid from sysfs, or a loop device's backing file); "" = none.
  std::string device_id;
  // Format 3 and later: the regular file's inode generation
  // (FS_IOC_GETVERSION: ext2/3/4, XFS, ...), meaningful only with
  // kGeneration. A file removed and created again under the same inode
  // number gets another one, also where the file system keeps no birth time.
  uint32_t generation = 0;
};

// The differences between a recorded identity and one observed now, one
// sentence each naming the field and both values (empty = the same file).
// Rules: a field is compared only when both sides recorded it (the
// generation: both have kGeneration); mtime only
// when neither side has kMtimeUnstable; for block devices with a device_id
// on both sides the device_id decides and the device number is not compared
// (a disk that came back under another number is the same disk). `which` is
// "source" or "dest".
std::vector<std::string> IdentityDifferences(const std::string& which,
                                             const FileIdentity& recorded,
                                             const FileIdentity& observed);

class FaultInjectionFs;  // metadata/fault_fs.h, test support

struct MetadataOptions {
  // Directory holding the RocksDB store. Created (with parents) if missing.
  // Required.
  std::string dir;
  // Size of the image in bytes. Required, > 0.
  uint64_t image_size = 0;
  // Region size in bytes; power of two in [4 KiB, 1 GiB]. Default: 64 KiB.
  uint64_t region_size = 64 * 1024;
  // If true, an existing store is opened with the region size recorded in
  // its superblock, and region_size is used only to format a new store (a
  // resumed clone needs no --region-size). If false, a different recorded
  // region size is a Mismatch. Default: false.
  bool use_stored_region_size = false;
  FileIdentity source;
  FileIdentity dest;
  // If false, Open fails with NotFound when the directory holds no metadata
  // instead of formatting it. Default: true.
  bool create_if_missing = true;
  // Open without taking the write path: the store is opened read-only, every
  // mutating call returns ReadOnly. Still takes the lock (fails with Busy if a
  // daemon holds the store). Default: false.
  bool read_only = false;
  // If false, identities are not compared at Open (used by `clonefs info`
  // which only reports). Geometry (region size, image size) is always checked.
  // Default: true.
  bool verify_identities = true;
  // RocksDB block cache capacity in bytes. Default: 8 MiB.
  uint64_t block_cache_bytes = 8 << 20;
  // RocksDB memtable size in bytes. Default: 4 MiB.
  uint64_t write_buffer_bytes = 4 << 20;
  // Test support: route every RocksDB file operation through this filesystem
  // (see metadata/fault_fs.h). Default: nullptr (the real filesystem).
  std::shared_ptr<FaultInjectionFs> fault_fs;
};

// The validated superblock, as stored.
struct Superblock {
  uint32_t format_version = 0;
  std::string uuid;  // 36-char textual UUID, made at format time
  uint64_t region_size = 0;
  uint64_t image_size = 0;
  uint64_t nr_regions = 0;
  FileIdentity source;
  FileIdentity dest;
  uint64_t created_unix_s = 0;
};

struct SpaceInfo {
  // Metadata space in kMetadataBlockSize blocks. used = the store's files
  // (tables, write-ahead logs, MANIFEST, CURRENT, IDENTITY, OPTIONS), not
  // RocksDB's info log nor other files in the directory (the daemon's log,
  // its record); total = used + free space of the filesystem holding the
  // directory (what the store could grow into).
  uint64_t used_blocks = 0;
  uint64_t total_blocks = 0;
  uint64_t free_blocks() const { return total_blocks - used_blocks; }
};

class Metadata {
 public:
  // Opens the metadata in options.dir, formatting it when the directory is
  // missing or empty (and create_if_missing), otherwise validating the
  // superblock against options. Errors:
  //   InvalidArgument: options out of range (region size not a power of two
  //     or outside [4 KiB, 1 GiB], image size 0, empty dir);
  //   Mismatch: the superblock differs; the message names each field that
  //     differs with both values (e.g. "region size: metadata has 65536,
  //     requested 4096");
  //   Corruption: the store or superblock is unreadable or inconsistent
  //     (bad magic, bitmap chunk out of range, bad encoding), with the reason;
  //   Busy: another process (or another Metadata in this one) has it open;
  //   NotFound: no metadata and !create_if_missing;
  //   IoError/NoSpace/Permission: the filesystem failed.
  static Result<std::unique_ptr<Metadata>> Open(const MetadataOptions& options);

  // Reads the superblock of the store in `dir` without validating it against
  // anything and without a full Open (for `clonefs info`). Fails with Busy if
  // the store is locked by a live process, NotFound if there is none.
  static Result<Superblock> ReadSuperblock(const std::string& dir);

  // Reads the settings record (see GetSettings) of the store in `dir`
  // without a full Open, taking and releasing the directory's lock (for the
  // mount command, which needs some settings before it opens the files).
  // nullopt: the store has no settings record. Errors: NotFound if there is
  // no clonefs metadata in `dir`, Busy if a live process holds it,
  // Corruption / IoError as ReadSuperblock.
  static Result<std::optional<std::string>> ReadSettings(const std::string& dir);

  virtual ~Metadata() = default;
  Metadata(const Metadata&) = delete;
  Metadata& operator=(const Metadata&) = delete;

  const Superblock& superblock() const { return sb_; }
  uint64_t nr_regions() const { return sb_.nr_regions; }
  uint64_t region_size() const { return sb_.region_size; }

  // --- marks (non-blocking, no I/O, no allocation) ---

  // Marks region r hydrated in core and in the current transaction's dirty
  // set (a no-op if already hydrated). Errors: InvalidArgument if
  // r >= nr_regions; ReadOnly in read-only mode (including read_only open).
  virtual Status SetRegionHydrated(uint64_t r) = 0;

  // Marks every region in [start, start+n) hydrated that is not already.
  // n == 0 with start < nr_regions is a no-op. Errors: InvalidArgument if
  // start >= nr_regions or n > nr_regions - start (start+n is never computed,
  // so nothing wraps); ReadOnly in read-only mode.
  virtual Status CondSetRange(uint64_t start, uint64_t n) = 0;

  // --- transactions (serialized by the caller) ---

  // Phase 1: freezes the current transaction's dirty set; later marks go to
  // the next transaction. Returns the number of regions frozen (0 = nothing
  // to commit; then PersistFrozen is a no-op). If a previously frozen set has
  // not been persisted yet (PersistFrozen not called or failed), the new marks
  // are merged into it. Errors: ReadOnly; Failed if a previous PersistFrozen
  // failed and Abort has not succeeded since; after such an Abort, while the
  // store could not be reopened: Failed, or NoSpace if its write failed with
  // ENOSPC (no I/O either way); IoError if the directory was removed, or lost
  // the store's CURRENT file, while some region is not yet committed hydrated
  // (RocksDB would go on writing into files that vanish at the next restart;
  // the caller rolls back with Abort, which still reads the open store).
  virtual Result<uint64_t> Freeze() = 0;

  // Phase 2: persists exactly the frozen set in one atomic WriteBatch written
  // with sync=true. No I/O if the frozen set is empty. On failure the frozen
  // set is kept, the metadata enters the "needs abort" state (Freeze and
  // PersistFrozen return Failed) and the error is returned.
  virtual Status PersistFrozen() = 0;

  // Freeze() + PersistFrozen(), for callers without a data device to flush.
  virtual Status Commit() = 0;

  // Rolls back to the last commit: drops both dirty sets (frozen or not) and
  // reloads the in-core bitmap from the store; clears the "needs abort" state.
  // After a failed PersistFrozen it first reloads from the store still open
  // (it refuses writes but reads the last commit; this needs no space, so it
  // works on a full file system), then tries to reopen the store (RocksDB
  // refuses writes after a failed one); if the reopen works, what it loads
  // is the last commit or, if the failed write reached the disk after all,
  // the failed commit (like a disk that reports an error for a write it did
  // perform). Either is safe: a frozen set is only persisted after its data
  // was flushed. If the reopen fails (a full file system), Abort still
  // succeeds, commits fail at once until a later Abort reopens the store.
  // The directory stays locked throughout. REQUIRES: no concurrent marks
  // (call SetReadOnly first). Errors: IoError / Corruption / NoSpace if the
  // store cannot be read (or, when no store is open, reopened): the caller
  // then enters fail mode; Abort may be retried.
  // Unlike dm-clone, allowed in read-only mode (rollback is how the engine
  // recovers after a failed commit).
  virtual Status Abort() = 0;

  // Re-reads the in-core bitmap from the store, discarding in-core marks and
  // both dirty sets (a dirty bit without its hydrated bit would later persist
  // a region whose data was never flushed). Unlike Abort it does not clear the
  // "needs abort" state. REQUIRES: as Abort.
  virtual Status ReloadInCoreBitset() = 0;

  // True if any region was marked since the last Freeze (or a frozen set is
  // waiting to be persisted).
  virtual bool ChangedThisTransaction() const = 0;

  // Read-only mode: marks, Freeze, PersistFrozen and Commit return ReadOnly.
  // SetReadOnly waits for marks already in progress, so once it returns no
  // mark changes anything (what Abort and ReloadInCoreBitset require).
  virtual void SetReadOnly() = 0;
  // Leaves read-only mode. Has no effect on a store opened with read_only.
  virtual void SetReadWrite() = 0;
  virtual bool IsReadOnly() const = 0;

  // --- queries (lock-free) ---

  // True when every region is hydrated in core (not necessarily committed;
  // see NrCommittedHydratedRegions()).
  virtual bool IsHydrationDone() const = 0;
  // False if r >= nr_regions.
  virtual bool IsRegionHydrated(uint64_t r) const = 0;
  // True if every region in [start, start+n) is hydrated; false if the range
  // exceeds nr_regions. n == 0 -> true.
  virtual bool IsRangeHydrated(uint64_t start, uint64_t n) const = 0;
  virtual uint64_t NrHydratedRegions() const = 0;
  // Number of hydrated regions in the last successful commit.
  virtual uint64_t NrCommittedHydratedRegions() const = 0;
  // First unhydrated region >= start, or nr_regions() if there is none.
  virtual uint64_t FindNextUnhydratedRegion(uint64_t start) const = 0;
  // First hydrated region >= start, or nr_regions() if there is none.
  virtual uint64_t FindNextHydratedRegion(uint64_t start) const = 0;

  // Metadata space figures. Errors: IoError if statvfs fails.
  virtual Result<SpaceInfo> GetSpace() const = 0;

  // --- stored settings (docs/metadata-format.md, "Settings") ---
  // An opaque record the clone's owner keeps beside the superblock (the
  // mount options of src/clone/settings.h); the metadata library never
  // interprets it. Both calls are thread-safe: they may run on any thread,
  // concurrently with marks, queries, each other and the commit side
  // (Freeze/PersistFrozen, and Abort, which may reopen the store).

  // The record, or nullopt if none was ever stored. Errors: IoError /
  // Corruption from the store; Failed if the store could not be reopened
  // after a failed commit.
  virtual Result<std::optional<std::string>> GetSettings() const = 0;

  // Replaces the record with `blob` in one synced write of its own (not part
  // of any bitmap transaction). Errors: ReadOnly when the store was opened
  // read_only or the metadata is in read-only mode (SetReadOnly, e.g. after
  // a failed commit); Failed while a failed commit awaits Abort, or when the
  // store could not be reopened; IoError / NoSpace from the store.
  virtual Status PutSettings(std::string_view blob) = 0;

 protected:
  Metadata() = default;
  Superblock sb_;
};

// Region size validation shared with the CLI: OK, or InvalidArgument saying
// what is wrong ("region size 5000 is not a power of two; use e.g. 4096").
Status ValidateRegionSize(uint64_t region_size);

}  // namespace clonefs::metadata
