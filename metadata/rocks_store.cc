#include "metadata/rocks_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/listener.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <mutex>
#include <string_view>
#include <vector>

#include "metadata/chunk_codec.h"
#include "metadata/fault_fs.h"
#include "metadata/log_check.h"
#include "metadata/rocks_info_log.h"
#include "metadata/superblock_codec.h"
#include "metadata/table_check_fs.h"

namespace clonefs::metadata {
namespace {

Status ToStatus(const rocksdb::Status& s, const std::string& what) {
  if (s.ok()) return Status::OK();
  const std::string msg = what + ": " + s.ToString();
  if (s.IsNoSpace()) return Status::NoSpace(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsNotFound() || s.IsPathNotFound()) return Status::NotFound(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsBusy() || (s.IsIOError() && s.ToString().find("lock file") != std::string::npos)) {
    return Status::Busy(msg);
  }
  if (s.IsNotSupported()) return Status::NotSupported(msg);
  return Status::IoError(msg, 5 /*EIO*/);
}

rocksdb::CompressionType PickCompression() {
  const auto supported = rocksdb::GetSupportedCompressions();
  for (auto c : {rocksdb::kLZ4Compression, rocksdb::kSnappyCompression}) {
    if (std::find(supported.begin(), supported.end(), c) != supported.end()) return c;
  }
  return rocksdb::kNoCompression;
}

// Turns off RocksDB's automatic recovery from background errors. On ENOSPC it
// would start a thread that retries flushes and resumes the database behind
// our back, racing with the rollback and close the metadata layer does itself
// (SPEC §5: a failed commit rolls back and the clone goes read-only).
class NoAutoRecovery : public rocksdb::EventListener {
 public:
  const char* Name() const override { return "ClonefsNoAutoRecovery"; }
  void OnErrorRecoveryBegin(rocksdb::BackgroundErrorReason, rocksdb::Status bg_error,
                            bool* auto_recovery) override {
    bg_error.PermitUncheckedError();
    *auto_recovery = false;
  }
};

}  // namespace

struct RocksStore::Rep {
  StoreOptions opts;
  std::shared_ptr<TableCheckFs> table_fs;  // under env
  std::unique_ptr<rocksdb::Env> env;       // outlives db (StoreEnv)
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;  // [default, regions]
  rocksdb::WriteBatch batch;
  // Every write holds write_mu, so that no write can start after another
  // one failed (RocksDB writes from several threads would otherwise race
  // past the check).
  std::mutex write_mu;
  Status write_error;  // GUARDED_BY(write_mu); the first failed write, OK while none

  // True if RocksDB holds a background error (a failed flush or compaction,
  // or a failed write): it then refuses writes, and a Flush could reach a
  // file writer that already failed.
  bool HasBackgroundError() const {
    uint64_t n = 0;
    return db->GetIntProperty("rocksdb.background-errors", &n) && n > 0;
  }

  ~Rep() {
    if (!db) return;
    if (!opts.read_only && write_error.ok() && !HasBackgroundError()) {
      // A clean close leaves no WAL to replay: the next Open is faster and
      // needs no memory for a recovered memtable. Best effort. Never after a
      // failed write: that store's WAL is replayed at the next Open, as after
      // a crash, and a flush would touch a file writer that already failed.
      rocksdb::FlushOptions fo;
      db->Flush(fo, handles).PermitUncheckedError();
    }
    for (auto* h : handles) db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db->Close().PermitUncheckedError();
    delete db;
  }
  rocksdb::ColumnFamilyHandle* regions() const { return handles[1]; }

  // A failed read or open, converted; a table that TableCheckFs refused is
  // reported with the check's own message (RocksDB's wrapping of it can
  // name the MANIFEST instead of the table).
  Status ReadError(const rocksdb::Status& s, const std::string& what) const;
};

namespace {

// The Env every store runs on: the real file system (or the test's
// FaultInjectionFs) under TableCheckFs, which checks each table file before
// RocksDB reads it (table_check_fs.h); *table_fs is set to that wrapper.
std::unique_ptr<rocksdb::Env> StoreEnv(const StoreOptions& o,
                                       std::shared_ptr<TableCheckFs>* table_fs) {
  std::shared_ptr<rocksdb::FileSystem> base = o.fault_fs;
  if (!base) base = rocksdb::FileSystem::Default();
  *table_fs = std::make_shared<TableCheckFs>(std::move(base));
  return rocksdb::NewCompositeEnv(*table_fs);
}

void MakeOptions(const StoreOptions& o, rocksdb::Env* env, rocksdb::DBOptions* db,
                 rocksdb::ColumnFamilyOptions* cf) {
  db->env = env;
  db->create_if_missing = o.create;
  db->create_missing_column_families = o.create;
  db->max_open_files = kMaxOpenFiles;
  db->max_file_opening_threads = 1;
  db->table_cache_numshardbits = 4;
  db->max_background_jobs = 2;
  db->db_write_buffer_size = 2 * o.write_buffer_bytes;
  db->max_total_wal_size = 4 * o.write_buffer_bytes;
  db->keep_log_file_num = 2;
  db->max_log_file_size = 1 << 20;
  db->max_manifest_file_size = 4 << 20;
  db->stats_dump_period_sec = 0;
  db->stats_persist_period_sec = 0;
  // WAL replay at Open (SPEC §5 crash contract, §7 "metadata corrupted:
  // refuse"). Every commit is a synced WAL record, so a record before the end
  // of the log is a committed transaction. RocksDB's default,
  // kPointInTimeRecovery, stops replay at the first damaged record and opens
  // anyway: every later commit would be dropped silently. Here only what a
  // crash leaves is tolerated (an incomplete last record, a zero-filled tail);
  // a record that fails its checksum, anywhere, makes Open fail with
  // Corruption. kAbsoluteConsistency would also refuse a torn last record,
  // i.e. every store left by a kill in the middle of a commit.
  db->wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  // Reports WAL, MANIFEST and table damage found at Open (and the WAL
  // corruption above) as an error instead of skipping it. RocksDB's default,
  // stated so that it is never turned off by accident.
  db->paranoid_checks = true;
  // Failed writes are rolled back by the metadata layer, never resumed by
  // RocksDB (NoAutoRecovery).
  db->max_bgerror_resume_count = 0;
  db->listeners.push_back(std::make_shared<NoAutoRecovery>());

  rocksdb::BlockBasedTableOptions t;
  t.block_cache = rocksdb::NewLRUCache(o.block_cache_bytes);
  t.cache_index_and_filter_blocks = true;
  t.block_size = 16 << 10;
  cf->table_factory.reset(rocksdb::NewBlockBasedTableFactory(t));
  cf->write_buffer_size = o.write_buffer_bytes;
  cf->max_write_buffer_number = 2;
  cf->compression = PickCompression();
}

// Parses "000123.log" into 123; false for any other name.
bool WalNumber(const std::string& name, uint64_t* number) {
  constexpr std::string_view kSuffix = ".log";
  if (name.size() <= kSuffix.size() || !name.ends_with(kSuffix)) return false;
  uint64_t n = 0;
  for (size_t i = 0; i < name.size() - kSuffix.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    n = n * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  *number = n;
  return true;
}

// Every open leaves the previous, empty WAL behind: RocksDB skips such a
// file on recovery ("older than min log to keep") but never deletes it, so a
// store mounted N times held N empty .log files and listed them all on every
// open. After a successful read-write Open the current WAL is the only one
// that can receive writes, and a zero-length file holds no record, so
// removing the empty WALs numbered below it cannot lose data. Best effort.
void RemoveEmptyOldWals(rocksdb::DB* db, const std::string& dir) {
  std::unique_ptr<rocksdb::LogFile> current;
  if (!db->GetCurrentWalFile(&current).ok() || current == nullptr) return;
  rocksdb::Env* env = db->GetEnv();
  std::vector<std::string> children;
  if (!env->GetChildren(dir, &children).ok()) return;
  for (const std::string& name : children) {
    uint64_t number = 0, size = 1;
    if (!WalNumber(name, &number) || number >= current->LogNumber()) continue;
    const std::string path = dir + "/" + name;
    if (env->GetFileSize(path, &size).ok() && size == 0)
      env->DeleteFile(path).PermitUncheckedError();
  }
}

// Checks the framing of every write-ahead log and of the current MANIFEST
// (log_check.h) before RocksDB reads them: damage RocksDB would take for a
// torn tail, dropping the committed records after it, is refused here.
// Errors: Corruption naming the file; IoError if a file cannot be read.
Status CheckLogFiles(rocksdb::Env* env, const std::string& dir) {
  std::vector<std::string> names;
  std::string current;
  if (!env->GetChildren(dir, &names).ok()) return Status::OK();  // RocksDB reports it
  if (rocksdb::ReadFileToString(env, dir + "/CURRENT", &current).ok()) {
    while (!current.empty() && current.back() == '\n') current.pop_back();
  }
  for (const std::string& name : names) {
    uint64_t number = 0;
    if (!WalNumber(name, &number) && (current.empty() || name != current)) continue;
    std::string bytes;
    rocksdb::Status s = rocksdb::ReadFileToString(env, dir + "/" + name, &bytes);
    if (s.IsNotFound() || s.IsPathNotFound()) continue;  // deleted meanwhile
    if (!s.ok()) return ToStatus(s, "read " + dir + "/" + name);
    CLONEFS_RETURN_IF_ERROR(CheckLogFraming(bytes, name));
  }
  return Status::OK();
}

}  // namespace

Status RocksStore::Rep::ReadError(const rocksdb::Status& s, const std::string& what) const {
  if (s.ok()) return Status::OK();
  if (Status refused = table_fs->first_refusal(); !refused.ok()) return refused.WithContext(what);
  return ToStatus(s, what);
}

RocksStore::RocksStore(std::unique_ptr<Rep> rep) : rep_(std::move(rep)) {}
RocksStore::~RocksStore() = default;

Result<std::vector<std::string>> RocksStore::ListColumnFamilies(const StoreOptions& o) {
  std::shared_ptr<TableCheckFs> table_fs;
  std::unique_ptr<rocksdb::Env> env = StoreEnv(o, &table_fs);
  rocksdb::DBOptions db;
  rocksdb::ColumnFamilyOptions cf;
  MakeOptions(o, env.get(), &db, &cf);
  Status checked = CheckLogFiles(db.env, o.dir);
  if (!checked.ok()) return checked.WithContext("metadata store " + o.dir);
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(db, o.dir, &names);
  if (!s.ok()) return ToStatus(s, "list column families of " + o.dir);
  return names;
}

Result<std::unique_ptr<RocksStore>> RocksStore::Open(const StoreOptions& o) {
  auto rep = std::make_unique<Rep>();
  rep->opts = o;
  rep->env = StoreEnv(o, &rep->table_fs);
  rocksdb::DBOptions db_opts;
  rocksdb::ColumnFamilyOptions cf_opts;
  MakeOptions(o, rep->env.get(), &db_opts, &cf_opts);
  Status checked = CheckLogFiles(db_opts.env, o.dir);
  if (!checked.ok()) return checked.WithContext("open metadata store " + o.dir);
  db_opts.info_log = RocksInfoLog::Open(o.dir);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {{rocksdb::kDefaultColumnFamilyName, cf_opts},
                                                      {std::string(kRegionsColumnFamily), cf_opts}};
  rocksdb::Status s =
      o.read_only ? rocksdb::DB::OpenForReadOnly(db_opts, o.dir, cfs, &rep->handles, &rep->db)
                  : rocksdb::DB::Open(db_opts, o.dir, cfs, &rep->handles, &rep->db);
  if (!s.ok()) {
    rep->db = nullptr;
    return rep->ReadError(s, "open metadata store " + o.dir);
  }
  if (!o.read_only) RemoveEmptyOldWals(rep->db, o.dir);
  return std::unique_ptr<RocksStore>(new RocksStore(std::move(rep)));
}

Result<std::optional<std::string>> RocksStore::GetSuperblock() {
  std::string value;
  rocksdb::ReadOptions ro;
  rocksdb::Status s = rep_->db->Get(ro, rep_->handles[0], std::string(kSuperblockKey), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return rep_->ReadError(s, "read superblock of " + rep_->opts.dir);
  return std::optional<std::string>(std::move(value));
}

// REQUIRES: write_mu held.
Status RocksStore::WriteRefused() const {
  const Status& e = rep_->write_error;
  const std::string msg = "metadata store " + rep_->opts.dir +
                          " refuses writes after a failed one (" + e.message() +
                          "); it can be written again once reopened";
  return e.IsNoSpace() ? Status::NoSpace(msg) : Status::Failed(msg);
}

// REQUIRES: write_mu held.
Status RocksStore::Wrote(const rocksdb::Status& s, const std::string& what) {
  Status st = ToStatus(s, what);
  if (!st.ok()) rep_->write_error = st;
  return st;
}

Status RocksStore::PutSuperblock(std::string_view value) {
  std::lock_guard<std::mutex> l(rep_->write_mu);
  if (!rep_->write_error.ok()) return WriteRefused();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return Wrote(rep_->db->Put(wo, rep_->handles[0], std::string(kSuperblockKey),
                             rocksdb::Slice(value.data(), value.size())),
               "write superblock of " + rep_->opts.dir);
}

Result<std::optional<std::string>> RocksStore::GetRecord(std::string_view key) {
  std::string value;
  rocksdb::Status s = rep_->db->Get(rocksdb::ReadOptions(), rep_->handles[0],
                                    rocksdb::Slice(key.data(), key.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return rep_->ReadError(s, "read " + std::string(key) + " of " + rep_->opts.dir);
  return std::optional<std::string>(std::move(value));
}

Status RocksStore::PutRecord(std::string_view key, std::string_view value) {
  std::lock_guard<std::mutex> l(rep_->write_mu);
  if (!rep_->write_error.ok()) return WriteRefused();
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return Wrote(rep_->db->Put(wo, rep_->handles[0], rocksdb::Slice(key.data(), key.size()),
                             rocksdb::Slice(value.data(), value.size())),
               "write " + std::string(key) + " of " + rep_->opts.dir);
}

Result<bool> RocksStore::IsEmpty() {
  for (auto* h : rep_->handles) {
    std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(rocksdb::ReadOptions(), h));
    it->SeekToFirst();
    if (it->Valid()) return false;
    if (!it->status().ok()) return rep_->ReadError(it->status(), "scan " + rep_->opts.dir);
  }
  return true;
}

Status RocksStore::ForEachChunk(
    const std::function<Status(std::string_view, std::string_view)>& fn) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a full scan must not evict the useful blocks
  ro.verify_checksums = true;
  ro.readahead_size = 1 << 20;
  std::unique_ptr<rocksdb::Iterator> it(rep_->db->NewIterator(ro, rep_->regions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key(), v = it->value();
    CLONEFS_RETURN_IF_ERROR(
        fn(std::string_view(k.data(), k.size()), std::string_view(v.data(), v.size())));
  }
  return rep_->ReadError(it->status(), "read bitmap of " + rep_->opts.dir);
}

void RocksStore::BatchPut(uint64_t chunk, std::string_view value) {
  rep_->batch
      .Put(rep_->regions(), EncodeChunkKey(chunk), rocksdb::Slice(value.data(), value.size()))
      .PermitUncheckedError();
}

void RocksStore::BatchDelete(uint64_t chunk) {
  rep_->batch.Delete(rep_->regions(), EncodeChunkKey(chunk)).PermitUncheckedError();
}

size_t RocksStore::BatchBytes() const { return rep_->batch.GetDataSize(); }

Status RocksStore::BatchCommit() {
  std::lock_guard<std::mutex> l(rep_->write_mu);
  if (!rep_->write_error.ok()) {
    rep_->batch.Clear();
    return WriteRefused();
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::Status s = rep_->db->Write(wo, &rep_->batch);
  rep_->batch.Clear();
  return Wrote(s, "commit metadata to " + rep_->opts.dir);
}

Status RocksStore::write_error() const {
  std::lock_guard<std::mutex> l(rep_->write_mu);
  return rep_->write_error;
}

}  // namespace clonefs::metadata
