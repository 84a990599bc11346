// Whether the process that sent a FUSE request is going away: what decides
// if the kernel's INTERRUPT for the request cancels it (base/cancel.h).
//
// The kernel sends INTERRUPT for any signal the requesting thread gets. A
// fatal one (SIGKILL, or a signal whose action is to terminate) makes the
// kernel queue SIGKILL on every thread of the process, so "SIGKILL pending"
// in /proc/TID/status (SigPnd, or ShdPnd for the whole process) is what tells
// a dying requester from one that got a signal it handles and returns from.
//
// THREAD SAFETY: pure functions, or reads of /proc; callable from any thread.
#pragma once

#include <sys/types.h>

#include <string_view>

namespace clonefs::fuse {

// True if `proc_status` (the text of /proc/TID/status) shows SIGKILL pending
// for the thread (SigPnd) or its process (ShdPnd). False if neither line is
// there or parses.
bool StatusShowsKillPending(std::string_view proc_status);

// True if thread `tid` (a FUSE request's pid) is being killed, has exited,
// or cannot be looked at (tid 0: the requester is in another pid namespace;
// /proc unreadable): then an interrupt cancels, as before this check.
bool RequesterAbandoned(pid_t tid);

}  // namespace clonefs::fuse
