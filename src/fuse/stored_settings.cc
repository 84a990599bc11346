#include "fuse/stored_settings.h"

#include "base/log.h"

namespace clonefs::fuse {

Result<ResolvedSettings> ResolveStoredSettings(const MountOptions& o) {
  ResolvedSettings r;
  Result<std::optional<std::string>> raw = metadata::Metadata::ReadSettings(o.metadata_dir);
  if (raw.ok()) {
    r.raw = *raw;
  } else if (!raw.status().IsNotFound()) {
    CLONEFS_LOG_INFO("stored settings of %s not read (%s); the open reports it",
                     o.metadata_dir.c_str(), raw.status().ToString().c_str());
  }
  if (r.raw && !o.reset_settings) {
    Result<clone::Settings> s = clone::DecodeSettings(*r.raw);
    if (!s.ok()) {
      const std::string msg =
          "the settings stored in metadata " + o.metadata_dir + " cannot be used (" +
          s.status().message() +
          "); mount with --reset-settings and give the options this clone needs (the clone's "
          "data is not affected)";
      return s.status().IsNotSupported() ? Status::NotSupported(msg) : Status::Corruption(msg);
    }
    r.stored = std::move(s).value();
  }
  r.to_store = o.reset_settings ? o.given : clone::Merge(r.stored, o.given);
  r.changed = o.reset_settings ? (r.raw.has_value() || !r.to_store.empty())
                               : !(r.to_store == r.stored);
  r.options = o;
  ApplySettings(r.to_store, &r.options);
  return r;
}

Status StoreResolvedSettings(const ResolvedSettings& r, metadata::Metadata* md) {
  Result<std::optional<std::string>> now = md->GetSettings();
  if (!now.ok()) return now.status().WithContext("cannot read the stored settings");
  if (*now != r.raw) {
    return Status::Aborted("the stored settings of this clone changed while mounting; mount "
                           "again");
  }
  if (!r.changed) return Status::OK();
  Status s = md->PutSettings(clone::EncodeSettings(r.to_store));
  if (!s.ok()) return s.WithContext("cannot store the clone's settings");
  CLONEFS_LOG_INFO("stored settings: %s", clone::DescribeSettings(r.to_store).c_str());
  return Status::OK();
}

void RestoreSettings(const ResolvedSettings& r, metadata::Metadata* md) {
  if (!r.changed) return;
  Status s = md->PutSettings(r.raw ? *r.raw : clone::EncodeSettings(clone::Settings{}));
  if (!s.ok()) {
    CLONEFS_LOG_WARN(
        "the mount failed, and the settings it stored could not be put back (%s): "
        "the next mount uses them; clonefs info shows them",
        s.ToString().c_str());
    return;
  }
  CLONEFS_LOG_INFO("the mount failed: put back the settings stored before it");
}

}  // namespace clonefs::fuse
