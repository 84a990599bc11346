// SettingsStore: the running clone's stored settings, updated by `clonefs
// message` (SPEC §5: changes at runtime are stored too, so a remount after a
// reboot keeps the last rate).
//
// THREAD SAFETY: every method may be called from any thread. mu_ guards
// current_ and serializes the writes, so the record on disk is always the
// last Update's (Metadata::PutSettings itself is thread-safe against the
// engine's commits). Lock order: mu_ before the metadata's internal locks.
//
// LIFECYCLE: REQUIRES: the Metadata outlives the SettingsStore (the daemon
// destroys it only after the control channel stopped).
#pragma once

#include <mutex>

#include "base/status.h"
#include "clone/settings.h"
#include "metadata/metadata.h"

namespace clonefs::clone {

class SettingsStore {
 public:
  // `current`: what the store holds now (written at mount). `md` not owned.
  SettingsStore(metadata::Metadata* md, Settings current)
      : md_(md), current_(std::move(current)) {}
  SettingsStore(const SettingsStore&) = delete;
  SettingsStore& operator=(const SettingsStore&) = delete;

  // Merges `change` into the stored settings and writes the record (synced)
  // if that changes it. On failure nothing changes in memory or on disk.
  // Errors: PutSettings's (ReadOnly in read-only mode, Failed, NoSpace,
  // IoError).
  Status Update(const Settings& change);

  // The stored settings as of the last successful Update.
  Settings Current() const;

 private:
  metadata::Metadata* const md_;
  mutable std::mutex mu_;
  Settings current_;  // guarded by mu_
};

}  // namespace clonefs::clone
