#include "metadata/table_check_fs.h"

#include "metadata/table_check.h"

namespace clonefs::metadata {
namespace {

bool IsTable(const std::string& fname) { return fname.ends_with(".sst"); }

std::string BaseName(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Reads through `file` for CheckTable; a short read is an error.
Status ReadAt(const rocksdb::FSRandomAccessFile& file, const std::string& name, uint64_t offset,
              size_t n, std::string* out) {
  out->resize(n);
  rocksdb::Slice got;
  rocksdb::IOStatus s = file.Read(offset, n, rocksdb::IOOptions(), &got, out->data(), nullptr);
  if (!s.ok()) return Status::IoError("read " + name + ": " + s.ToString(), 5 /*EIO*/);
  if (got.size() != n) {
    return Status::Corruption(name + " is damaged at offset " + std::to_string(offset) +
                              ": the file ends inside a block (" + std::to_string(got.size()) +
                              " of " + std::to_string(n) + " bytes)");
  }
  if (got.data() != out->data()) out->assign(got.data(), got.size());
  return Status::OK();
}

}  // namespace

TableCheckFs::TableCheckFs(std::shared_ptr<rocksdb::FileSystem> base)
    : rocksdb::FileSystemWrapper(std::move(base)) {}

rocksdb::IOStatus TableCheckFs::NewRandomAccessFile(
    const std::string& fname, const rocksdb::FileOptions& opts,
    std::unique_ptr<rocksdb::FSRandomAccessFile>* result, rocksdb::IODebugContext* dbg) {
  rocksdb::IOStatus s = target()->NewRandomAccessFile(fname, opts, result, dbg);
  if (!s.ok() || !IsTable(fname)) return s;
  uint64_t size = 0;
  s = target()->GetFileSize(fname, rocksdb::IOOptions(), &size, dbg);
  if (!s.ok()) {
    result->reset();
    return s;
  }
  const std::string name = BaseName(fname);
  const rocksdb::FSRandomAccessFile& file = **result;
  Result<std::vector<TableBlock>> checked =
      CheckTable([&](uint64_t offset, size_t n,
                     std::string* out) { return ReadAt(file, name, offset, n, out); },
                 size, name);
  if (checked.ok()) return rocksdb::IOStatus::OK();
  result->reset();
  const Status& e = checked.status();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (first_refusal_.ok()) first_refusal_ = e;
  }
  if (e.IsCorruption()) return rocksdb::IOStatus::Corruption(e.message());
  return rocksdb::IOStatus::IOError(e.message());
}

Status TableCheckFs::first_refusal() const {
  std::lock_guard<std::mutex> l(mu_);
  return first_refusal_;
}

}  // namespace clonefs::metadata
