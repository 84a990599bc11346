// Test-only kill points: named places in the commit protocol and the copier
// where crash tests stop the world (TESTING §2).
//
// Production code calls TestKillPoint("name") at each protocol step. Unless a
// test installed a hook, this is one relaxed atomic load. A hook returns true
// to "crash" at that point: the caller then abandons the operation exactly as
// if the process had died there (it returns Status::Aborted without touching
// anything else), and the test simulates power loss afterwards.
//
// Names in use (keep docs/design.md in sync):
//   "write.after_dest_write"       engine: dest written, region not yet marked
//   "commit.after_freeze"          commit: frozen, dest not yet flushed
//   "commit.after_dest_flush"      commit: dest flushed, metadata not written
//   "commit.after_metadata_write"  commit: metadata durable, fsync not answered
//   "copier.after_copy"            copier: region copied, not yet marked
//   "read.after_cor_write"         copy-on-read: region written, not yet marked
//
// THREAD SAFETY: hooks may be installed/removed at any time; the hook itself
// must be thread-safe (it is called from I/O, copier and commit threads).
#pragma once

#include <functional>
#include <string_view>

namespace clonefs {

using TestKillHook = std::function<bool(std::string_view point)>;

// Installs (or with nullptr removes) the process-wide hook. Test-only.
void SetTestKillHookForTesting(TestKillHook hook);

// Returns true if a test hook asks to crash at `point`.
bool TestKillPoint(std::string_view point);
// Whether a hook is installed (paths that skip kill points then stay off).
bool TestKillHookInstalled();

}  // namespace clonefs
