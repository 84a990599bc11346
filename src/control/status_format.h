// Text renderings of a StatusReport: the human-readable block of
// `clonefs status` / `clonefs info`, dm-clone's status line (`--dm`) and the
// one-line progress of `clonefs wait`.
//
// THREAD SAFETY: pure functions.
#pragma once

#include <string>

#include "control/status_report.h"

namespace clonefs::control {

// Multi-line, "Label:  value" layout, ending with a newline. `now_unix_ns`
// (wall clock) dates the last error ("12s ago"); the first form uses the
// current time.
std::string FormatHuman(const StatusReport& r);
std::string FormatHuman(const StatusReport& r, uint64_t now_unix_ns);

// The "Last error:" line: "none", or "<what> (errno 28 ENOSPC), 12s ago, 3
// times" (the count is of errors of that kind since the daemon started).
std::string FormatLastError(const LastError& e, uint64_t now_unix_ns);

// dm-clone's status line, exactly as the kernel prints it (no trailing
// newline):
//   <metadata block size> <#used metadata blocks>/<#total metadata blocks>
//   <region size> <#hydrated regions>/<#total regions> <#hydrating regions>
//   <#feature args> <feature args>* <#core args> <core args>* <rw|ro|Fail>
// Sizes are in 512-byte sectors (metadata block 4 KiB -> 8). Feature args:
// no_hydration, no_discard_passdown when active. Core args: the four that
// dm-clone prints (hydration_threshold N hydration_batch_size N); the rate
// knob is clonefs's own and is NOT in this line, so tools that parse
// dm-clone's line work unchanged (see docs/control.md). In fail mode the
// line is just "Fail", as dm-clone prints it.
// REQUIRES: r.live.
std::string FormatDmLine(const StatusReport& r);

// "connected", or "reconnecting since <time>  (E errors, R retries, C
// reconnects); last error at <time>: <text>", or "changed since <time>:
// <what changed>  (...)" (the last error only when it says something else).
// When a request has waited for the source's answer for a second or more
// (at `now_unix_ns`), the state is followed by ", a request unanswered for
// 12s".
std::string FormatSourceHealth(const SourceHealth& h, uint64_t now_unix_ns);
// The "Order:" line: the hydration order in effect and what each part
// hydrated (SPEC §10).
std::string FormatOrder(const StatusReport& r);
// The "Hydrated by:" line: regions hydrated since start, by why.
std::string FormatHydratedBy(const ReadDrivenReport& d);
// The "Source reads:" line: bytes read from the source for users (and their
// share of all source reads, once there were any) and by the copier.
std::string FormatSourceReads(const ReadDrivenReport& d);
// The "Prefetch:" line: the prefetch bytes allowed in flight and the source
// latency floor that sizes them.
std::string FormatPrefetch(const ReadDrivenReport& d);

// "ETA 1m10s", or "no ETA: <reason>" (StatusReport::eta_reason, e.g.
// "hydration disabled", "measuring").
std::string FormatEta(const StatusReport& r);

// Progress for `clonefs wait`: "42.1% 4.21 GiB/10.00 GiB 110.00 MiB/s ETA 53s"
// (or "... no ETA: hydration disabled").
// With bar_width > 0 a bar of that many cells comes first: "[#####.....] ".
// When the health is not ok it follows, in place of "ETA -" when there is no
// ETA ("... 0 B/s  degraded: dest full"); when it is ok and the state is
// neither hydrating nor complete, the state follows in parentheses.
// With ProgressHealth::kOmit the health is left out (for a caller that says
// it itself); the state in parentheses is not.
enum class ProgressHealth { kShow, kOmit };
std::string FormatProgress(const StatusReport& r, int bar_width,
                           ProgressHealth health = ProgressHealth::kShow);

}  // namespace clonefs::control
