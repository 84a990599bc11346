// The record a clone keeps when another program wrote its dest while it was
// mounted (SPEC §7a; DestWatch::Written): the file kDestWrittenName in the
// metadata directory, one line saying who wrote and when. Such a dest keeps
// its size and identity, so nothing else would stop a later mount from
// serving what that program wrote as hydrated data: the mount refuses a
// clone with this record, and names it (removing the file is the way to
// say the dest is fine after all).
//
// THREAD SAFETY: stateless functions.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"

namespace clonefs::clone {

// Writes the record (`change`, e.g. "/d.img was written by another program,
// pid 4242 (mkfs.ext4)", and the UTC time) durably: through a temporary
// file, fsync'd, renamed, and the directory fsync'd. Errors: IoError /
// NoSpace / Permission from the file system.
Status RecordDestWritten(const std::string& metadata_dir, const std::string& change);

// The record's line, or nullopt if there is none. Errors: IoError if it
// exists but cannot be read.
Result<std::optional<std::string>> ReadDestWritten(const std::string& metadata_dir);

// The verdict the mount and `clonefs check` share: OK without a record;
// with one, the refusal (Mismatch: what happened, and what to do); IoError
// if the record cannot be read.
Status CheckNoDestWritten(const std::string& metadata_dir, const std::string& dest);

}  // namespace clonefs::clone
