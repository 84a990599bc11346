#include "metadata/fault_fs.h"

#include <unistd.h>

namespace clonefs::metadata {
namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> t, std::string name,
                    FaultInjectionFs* fs, uint64_t size)
      : FSWritableFileOwnerWrapper(std::move(t)), name_(std::move(name)), fs_(fs), end_(size) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = fs_->CheckAppend();
    if (s.ok()) s = target()->Append(data, o, dbg);
    return Written(s, end_ + data.size());
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& v,
                  IODebugContext* dbg) override {
    IOStatus s = fs_->CheckAppend();
    if (s.ok()) s = target()->Append(data, o, v, dbg);
    return Written(s, end_ + data.size());
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t off, const IOOptions& o,
                            IODebugContext* dbg) override {
    IOStatus s = fs_->CheckAppend();
    if (s.ok()) s = target()->PositionedAppend(data, off, o, dbg);
    return Written(s, std::max(end_, off + data.size()));
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t off, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& v, IODebugContext* dbg) override {
    IOStatus s = fs_->CheckAppend();
    if (s.ok()) s = target()->PositionedAppend(data, off, o, v, dbg);
    return Written(s, std::max(end_, off + data.size()));
  }
  IOStatus Truncate(uint64_t size, const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = target()->Truncate(size, o, dbg);
    if (s.ok()) {
      end_ = size;
      fs_->OnTruncate(name_, size);
    }
    return s;
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = fs_->CheckSync();
    if (s.ok()) s = target()->Sync(o, dbg);
    return Synced(s);
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = fs_->CheckSync();
    if (s.ok()) s = target()->Fsync(o, dbg);
    return Synced(s);
  }

 private:
  IOStatus Written(IOStatus s, uint64_t new_end) {
    if (s.ok()) {
      end_ = new_end;
      fs_->OnWrite(name_, new_end);
    }
    return s;
  }
  IOStatus Synced(IOStatus s) {
    if (s.ok()) fs_->OnSync(name_);
    return s;
  }

  const std::string name_;
  FaultInjectionFs* const fs_;
  uint64_t end_;  // RocksDB does not write one file from several threads at once
};

class FaultDirectory : public rocksdb::FSDirectoryWrapper {
 public:
  FaultDirectory(std::unique_ptr<rocksdb::FSDirectory> t, std::string name, FaultInjectionFs* fs)
      : FSDirectoryWrapper(std::move(t)), name_(std::move(name)), fs_(fs) {}

  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = fs_->CheckSync();
    if (s.ok()) s = FSDirectoryWrapper::Fsync(o, dbg);
    if (s.ok()) fs_->OnDirSync(name_);
    return s;
  }
  IOStatus FsyncWithDirOptions(const IOOptions& o, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& d) override {
    IOStatus s = fs_->CheckSync();
    if (s.ok()) s = FSDirectoryWrapper::FsyncWithDirOptions(o, dbg, d);
    if (s.ok()) fs_->OnDirSync(name_);
    return s;
  }

 private:
  const std::string name_;
  FaultInjectionFs* const fs_;
};

}  // namespace

FaultInjectionFs::FaultInjectionFs(std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(base) {}

std::string FaultInjectionFs::Norm(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string FaultInjectionFs::DirOf(const std::string& f) {
  const size_t slash = f.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : f.substr(0, slash);
}

IOStatus FaultInjectionFs::CheckWrite() {
  if (!fail_writes_.load()) return IOStatus::OK();
  injected_.fetch_add(1);
  return IOStatus::IOError("injected write failure");
}

IOStatus FaultInjectionFs::CheckAppend() {
  IOStatus s = CheckWrite();
  if (!s.ok() || !no_space_.load()) return s;
  injected_.fetch_add(1);
  return IOStatus::NoSpace("injected: no space left on device");
}

IOStatus FaultInjectionFs::CheckSync() {
  if (!fail_syncs_.load()) return IOStatus::OK();
  injected_.fetch_add(1);
  return IOStatus::IOError("injected sync failure");
}

void FaultInjectionFs::OnWrite(const std::string& f, uint64_t new_end) {
  std::lock_guard<std::mutex> l(mu_);
  files_[f].size = new_end;
}

void FaultInjectionFs::OnSync(const std::string& f) {
  std::lock_guard<std::mutex> l(mu_);
  FileState& st = files_[f];
  st.synced = st.size;
}

void FaultInjectionFs::OnTruncate(const std::string& f, uint64_t size) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(f);
  if (it == files_.end()) return;
  it->second.size = size;
  it->second.synced = std::min(it->second.synced, size);
}

void FaultInjectionFs::OnDirSync(const std::string& d) {
  std::lock_guard<std::mutex> l(mu_);
  new_files_.erase(Norm(d));
}

IOStatus FaultInjectionFs::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                           std::unique_ptr<rocksdb::FSWritableFile>* r,
                                           IODebugContext* dbg) {
  IOStatus s = CheckWrite();
  if (!s.ok()) return s;
  const bool existed = target()->FileExists(f, IOOptions(), dbg).ok();
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->NewWritableFile(f, o, &file, dbg);
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> l(mu_);
    files_[f] = FileState{};
    if (!existed) new_files_[DirOf(f)].insert(f);
  }
  r->reset(new FaultWritableFile(std::move(file), f, this, 0));
  return s;
}

IOStatus FaultInjectionFs::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                                              IODebugContext* dbg) {
  IOStatus s = CheckWrite();
  if (!s.ok()) return s;
  const bool existed = target()->FileExists(f, IOOptions(), dbg).ok();
  std::unique_ptr<rocksdb::FSWritableFile> file;
  s = target()->ReopenWritableFile(f, o, &file, dbg);
  if (!s.ok()) return s;
  uint64_t size = 0;
  if (existed) target()->GetFileSize(f, IOOptions(), &size, dbg).PermitUncheckedError();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!files_.count(f)) files_[f] = FileState{size, size};
    if (!existed) new_files_[DirOf(f)].insert(f);
  }
  r->reset(new FaultWritableFile(std::move(file), f, this, size));
  return s;
}

IOStatus FaultInjectionFs::ReuseWritableFile(const std::string&, const std::string&,
                                             const rocksdb::FileOptions&,
                                             std::unique_ptr<rocksdb::FSWritableFile>*,
                                             IODebugContext*) {
  // Only used with recycle_log_file_num > 0, which the store never sets.
  return IOStatus::NotSupported("FaultInjectionFs: ReuseWritableFile");
}

IOStatus FaultInjectionFs::NewRandomRWFile(const std::string& f, const rocksdb::FileOptions& o,
                                           std::unique_ptr<rocksdb::FSRandomRWFile>* r,
                                           IODebugContext* dbg) {
  IOStatus s = CheckWrite();
  return s.ok() ? target()->NewRandomRWFile(f, o, r, dbg) : s;
}

IOStatus FaultInjectionFs::NewDirectory(const std::string& d, const IOOptions& o,
                                        std::unique_ptr<rocksdb::FSDirectory>* r,
                                        IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> dir;
  IOStatus s = target()->NewDirectory(d, o, &dir, dbg);
  if (s.ok()) r->reset(new FaultDirectory(std::move(dir), Norm(d), this));
  return s;
}

IOStatus FaultInjectionFs::DeleteFile(const std::string& f, const IOOptions& o,
                                      IODebugContext* dbg) {
  IOStatus s = target()->DeleteFile(f, o, dbg);
  if (s.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    files_.erase(f);
    auto it = new_files_.find(DirOf(f));
    if (it != new_files_.end()) it->second.erase(f);
  }
  return s;
}

IOStatus FaultInjectionFs::RenameFile(const std::string& src, const std::string& dst,
                                      const IOOptions& o, IODebugContext* dbg) {
  IOStatus s = CheckWrite();
  if (!s.ok() || src == dst) return s.ok() ? target()->RenameFile(src, dst, o, dbg) : s;
  const bool dst_existed = target()->FileExists(dst, o, dbg).ok();
  s = target()->RenameFile(src, dst, o, dbg);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> l(mu_);
  auto it = files_.find(src);
  files_.erase(dst);
  if (it != files_.end()) {
    files_[dst] = it->second;
    files_.erase(src);
  }
  const bool src_new = new_files_[DirOf(src)].erase(src) > 0;
  const bool dst_was_new = new_files_[DirOf(dst)].erase(dst) > 0;
  const bool dst_durable = dst_existed && !dst_was_new;
  if (src_new && !dst_durable) new_files_[DirOf(dst)].insert(dst);
  return s;
}

IOStatus FaultInjectionFs::Truncate(const std::string& f, size_t size, const IOOptions& o,
                                    IODebugContext* dbg) {
  IOStatus s = target()->Truncate(f, size, o, dbg);
  if (s.ok()) OnTruncate(f, size);
  return s;
}

FaultInjectionFs::DropStats FaultInjectionFs::DropUnsyncedData() {
  std::lock_guard<std::mutex> l(mu_);
  DropStats stats;
  for (auto& [dir, names] : new_files_) {
    for (const std::string& f : names) {
      if (target()->DeleteFile(f, IOOptions(), nullptr).ok()) ++stats.files_removed;
      auto it = files_.find(f);
      if (it != files_.end()) {
        stats.bytes_dropped += it->second.size;
        files_.erase(it);
      }
    }
  }
  new_files_.clear();
  for (auto& [f, st] : files_) {
    if (st.size > st.synced) {
      // RocksDB's POSIX filesystem does not implement Truncate.
      IOStatus s = target()->Truncate(f, st.synced, IOOptions(), nullptr);
      if (s.IsNotSupported()) (void)!truncate(f.c_str(), static_cast<off_t>(st.synced));
      stats.bytes_dropped += st.size - st.synced;
      st.size = st.synced;
    }
  }
  return stats;
}

uint64_t FaultInjectionFs::UnsyncedBytes() const {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t n = 0;
  for (const auto& [f, st] : files_) n += st.size - st.synced;
  return n;
}

}  // namespace clonefs::metadata
