#include "clone/settings_store.h"

namespace clonefs::clone {

Status SettingsStore::Update(const Settings& change) {
  std::lock_guard<std::mutex> guard(mu_);
  Settings next = Merge(current_, change);
  if (next == current_) return Status::OK();
  CLONEFS_RETURN_IF_ERROR(md_->PutSettings(EncodeSettings(next)));
  current_ = std::move(next);
  return Status::OK();
}

Settings SettingsStore::Current() const {
  std::lock_guard<std::mutex> guard(mu_);
  return current_;
}

}  // namespace clonefs::clone
