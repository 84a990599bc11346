// RawStore: direct RocksDB access to a closed metadata store, so tests can
// damage it (corruption tests) or read what a commit wrote.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace clonefs::metadata::testing {

class RawStore {
 public:
  static constexpr int kDefault = 0;
  static constexpr int kRegions = 1;

  explicit RawStore(const std::string& dir) {
    rocksdb::DBOptions o;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"regions", {}}};
    rocksdb::Status s = rocksdb::DB::Open(o, dir, cfs, &handles_, &db_);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  ~RawStore() {
    if (!db_) return;
    for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
    delete db_;
  }
  bool ok() const { return db_ != nullptr; }

  void Put(int cf, const std::string& k, const std::string& v) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    ASSERT_TRUE(db_->Put(wo, handles_[cf], k, v).ok());
  }
  void Delete(int cf, const std::string& k) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    ASSERT_TRUE(db_->Delete(wo, handles_[cf], k).ok());
  }
  std::string Get(int cf, const std::string& k) {
    std::string v;
    EXPECT_TRUE(db_->Get(rocksdb::ReadOptions(), handles_[cf], k, &v).ok());
    return v;
  }
  std::vector<std::pair<std::string, std::string>> Scan(int cf) {
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), handles_[cf]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      out.emplace_back(it->key().ToString(), it->value().ToString());
    }
    return out;
  }
  void AddColumnFamily(const std::string& name) {
    rocksdb::ColumnFamilyHandle* h = nullptr;
    ASSERT_TRUE(db_->CreateColumnFamily({}, name, &h).ok());
    handles_.push_back(h);
  }

 private:
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

}  // namespace clonefs::metadata::testing
