// NbdOp and NbdPiece: one caller's request to an NBD source, and the pieces
// it is split into for the server (internal to nbd_device).
//
// An NbdOp is a Read, a ReadAsync or a block-status query. It finishes
// exactly once: with OK when its last piece succeeded, or with the first
// error (a piece that failed for good, the deadline, an interrupt, a size
// change, the device's destruction) -- whichever comes first; later
// outcomes are ignored.
//
// Where the answer lands (BUFFERS):
//   - Copied pieces (every Read, and a ReadAsync piece that does not cover
//     whole server blocks of the caller's buffer): the server's answer is
//     read into a buffer the piece owns and copied into the caller's buffer
//     under the op's mutex, only while the op is unfinished. So once Finish
//     (or a waiter giving up) has returned, nothing writes to the caller's
//     buffer again: a synchronous reader that timed out or was interrupted
//     gets its buffer back at once.
//   - Direct pieces (ReadAsync, the copier's): the server's answer is read
//     straight into the caller's buffer, with no copy. The caller's `done`
//     is then deferred until the op is finished *and* every direct piece is
//     gone (libnbd has retired it: answered, or its connection closed), so
//     the buffer is never written after `done`. A connection closes itself
//     when a direct piece in flight passes its deadline (nbd_connection.h),
//     so `done` still comes about when the deadline passes.
//
// An NbdPiece is owned by the connection that serves it (nbd_connection.h);
// it keeps a shared_ptr to its op, which lives until the caller and every
// piece are done with it.
//
// THREAD SAFETY: NbdOp is thread-safe (one mutex; `done` is called without
// it held, by the thread whose call finished the op). An NbdPiece belongs to
// one thread at a time: the submitter until it is queued, then the
// connection's I/O thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/cancel.h"
#include "devices/device.h"
#include "sources/buffer_pool.h"
#include "sources/extent_cache.h"
#include "sources/source_wait.h"

namespace clonefs {

class NbdOp {
 public:
  enum class Kind { kRead, kBlockStatus };

  // `dest` is the caller's buffer (kRead); `done` is empty for a
  // synchronous caller, who calls Wait. `pieces` >= 1, of which
  // `direct_pieces` read into `dest` themselves (only with a `done`).
  NbdOp(Kind kind, uint64_t off, uint64_t len, void* dest, uint64_t deadline_ns,
        Device::ReadDone done, int pieces, int direct_pieces = 0);

  Kind kind() const { return kind_; }
  uint64_t off() const { return off_; }
  uint64_t len() const { return len_; }
  uint64_t deadline_ns() const { return deadline_ns_; }
  bool finished() const { return finished_flag_.load(std::memory_order_acquire); }
  // "read of N bytes at OFF" / "block status at OFF", for messages.
  std::string What() const;

  // A read piece succeeded: copies `n` bytes to dest+op_off unless the op
  // has finished, and finishes the op with OK if it was the last piece.
  void ReadSucceeded(const uint8_t* data, size_t op_off, size_t n);
  // A direct piece succeeded (its bytes are in place): finishes the op with
  // OK if it was the last piece.
  void DirectSucceeded();
  // A direct piece is gone: libnbd will not write into dest for it again.
  // Called once per direct piece (NbdPiece's destructor); the last one
  // calls a deferred `done`.
  void DirectPieceGone();
  // The block-status piece succeeded.
  void ExtentsSucceeded(std::vector<Extent> extents);
  // Finishes the op with `s` (and calls done) unless it has finished.
  // Returns true if this call finished it.
  bool Finish(Status s);

  // Synchronous callers: waits for the op until the deadline or the token
  // is cancelled, then finishes it with `timed_out` / `interrupted` (built
  // only if needed) and returns its final status.
  template <typename TimedOut, typename Interrupted>
  Status Wait(const CancelToken* token, TimedOut timed_out, Interrupted interrupted);

  // The extents of a finished, successful block-status op.
  std::vector<Extent> TakeExtents();

 private:
  // REQUIRES: mu_ held by `l`, op unfinished. Unlocks `l`.
  void FinishLocked(std::unique_lock<std::mutex>& l, Status s);

  const Kind kind_;
  const uint64_t off_;
  const uint64_t len_;
  const uint64_t deadline_ns_;

  std::mutex mu_;
  std::condition_variable cv_;              // signalled when finished
  uint8_t* dest_;                           // GUARDED_BY(mu_); null once finished
  int remaining_;                           // GUARDED_BY(mu_); pieces not yet succeeded
  int direct_live_;                         // GUARDED_BY(mu_); direct pieces not yet gone
  bool finished_ = false;                   // GUARDED_BY(mu_)
  Status status_;                           // GUARDED_BY(mu_)
  std::vector<Extent> extents_;             // GUARDED_BY(mu_)
  Device::ReadDone done_;                   // GUARDED_BY(mu_); moved out by the finisher
  std::atomic<bool> finished_flag_{false};  // mirrors finished_, for lock-free checks
};

class NbdConnection;

struct NbdPiece {
  NbdPiece() = default;
  NbdPiece(const NbdPiece&) = delete;
  NbdPiece& operator=(const NbdPiece&) = delete;
  ~NbdPiece() {
    if (direct != nullptr) op->DirectPieceGone();
  }

  std::shared_ptr<NbdOp> op;
  // What the server is asked for: [srv_off, srv_off + srv_len).
  uint64_t srv_off = 0;
  uint64_t srv_len = 0;
  // Reads: the op's bytes start at buf[skip] and go to the op's buffer at
  // op_off, copy_len of them.
  size_t skip = 0;
  size_t op_off = 0;
  size_t copy_len = 0;
  BufferPool::Buffer buf;       // copied reads: srv_len bytes
  uint8_t* direct = nullptr;    // direct reads: where in the caller's buffer (then no buf)
  // Where the server's answer goes.
  uint8_t* target() const { return direct != nullptr ? direct : buf.get(); }
  std::vector<Extent> extents;  // block status: filled by the extent callback
  // Reads: the parts of [0, srv_len) the server's answer said it filled
  // (data or hole chunks), as [begin, end); filled by the chunk callback.
  // libnbd does not check that they cover the piece (nbd_pread_structured).
  std::vector<std::pair<uint64_t, uint64_t>> filled;

  // Set by the submitter. `pinned`: it must go through the connection it
  // was queued to (an identity check's read), never handed to another.
  // `background`: a ReadAsync's (nbd_device.h, CONNECTIONS).
  bool pinned = false;
  bool background = false;

  // Owned by the serving connection's I/O thread.
  NbdConnection* conn = nullptr;
  int server_errors = 0;       // failures the server answered
  int sends = 0;               // times handed to libnbd
  uint64_t not_before_ns = 0;  // a retry waits until then
  uint64_t sent_ns = 0;        // when last handed to libnbd
  // Non-zero: a read of the identity check run after a reconnect
  // (nbd_connection.h, VERIFYING), sent only while that check runs.
  uint64_t verify_gen = 0;
  // Written by libnbd's callbacks (on the I/O thread, handle lock held).
  bool completed = false;
  int error = 0;
};

template <typename TimedOut, typename Interrupted>
Status NbdOp::Wait(const CancelToken* token, TimedOut timed_out, Interrupted interrupted) {
  std::unique_lock<std::mutex> l(mu_);
  WaitEnd end = WaitForDone(l, cv_, deadline_ns_, token, [this] { return finished_; });
  if (end == WaitEnd::kTimedOut) {
    FinishLocked(l, timed_out());
    l.lock();
  } else if (end == WaitEnd::kCancelled) {
    FinishLocked(l, interrupted());
    l.lock();
  }
  return status_;
}

}  // namespace clonefs
