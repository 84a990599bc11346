// The settings a mount runs with: its command line over the clone's stored
// settings (SPEC §5 "settings"; docs/cli.md "Stored settings").
//
// SEQUENCE (daemon.cc): ResolveStoredSettings before the files are opened
// (direct I/O is one of the settings); then, with the metadata open and
// locked, StoreResolvedSettings checks that the record is still the one read
// and stores the merged settings; a mount that fails after that puts the
// record back (RestoreSettings).
//
// THREAD SAFETY: stateless functions.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "clone/settings.h"
#include "fuse/mount_options.h"
#include "metadata/metadata.h"

namespace clonefs::fuse {

struct ResolvedSettings {
  // The options in effect: `o` with the stored settings applied, then the
  // given ones (o.given).
  MountOptions options;
  // What the clone had stored (empty for a new clone, an old clone without
  // settings, or with --reset-settings).
  clone::Settings stored;
  // What it keeps from now on: the stored settings with the given ones
  // replacing theirs (only the given ones with --reset-settings).
  clone::Settings to_store;
  // to_store must be written (it differs from the record).
  bool changed = false;
  // The raw record as read (nullopt: none), to detect a change before
  // storing.
  std::optional<std::string> raw;
};

// Reads the clone's stored settings (Metadata::ReadSettings on
// o.metadata_dir) and resolves them against o. No metadata yet (a new clone)
// means no stored settings; so does a store that cannot be read now (locked,
// damaged): the open that follows reports that. Errors, each a message for
// the user: a damaged settings record (Corruption) or one written by a newer
// clonefs (NotSupported), both saying to give --reset-settings.
// REQUIRES: o resolved (ResolveMountDefaults).
Result<ResolvedSettings> ResolveStoredSettings(const MountOptions& o);

// With the metadata open: checks that its record is still `r.raw` (Aborted
// otherwise: "the stored settings changed while mounting; mount again"),
// then writes r.to_store if r.changed. Errors: those, and
// PutSettings's, with context.
Status StoreResolvedSettings(const ResolvedSettings& r, metadata::Metadata* md);

// After StoreResolvedSettings, for a mount that then fails (SPEC §7a: it
// leaves nothing behind): puts back the record as it was read (r.raw), or,
// where there was none, a record of no settings, which reads the same. Does
// nothing unless r.changed. Best effort: a failure is logged.
void RestoreSettings(const ResolvedSettings& r, metadata::Metadata* md);

}  // namespace clonefs::fuse
