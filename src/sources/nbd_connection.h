// NbdConnection: one connection of an NbdDevice (internal to nbd_device):
// one libnbd handle driven by one I/O thread, which connects, sends the
// pieces queued to it, delivers their answers, enforces their deadlines and
// reconnects when the connection dies (nbd_device.h describes the policy).
//
// STRUCTURE. Other threads only touch queue_ (under mu_), the atomics, and
// the eventfd that wakes the I/O thread. Everything else -- the handle,
// the pieces waiting to be sent (waiting_), those in flight (inflight_) and
// those libnbd's callbacks just completed (completed_) -- belongs to the I/O
// thread: only it calls libnbd on the handle, so the callbacks run on it too
// and only record their result in the piece.
//
// THREAD SAFETY: Submit, WaitConnected, Stop, outstanding, up and health may
// be called from any thread. LOCK ORDER: mu_ is a leaf; no NbdOp mutex is
// taken with it held, and ops are finished (user callbacks run) with no
// connection lock held.
//
// VERIFYING. A reconnect that finds the size unchanged does not serve
// anything yet when the source has a verifier (NbdSourceState::Verifier,
// the clone's identity check): the connection stays down (up() false,
// health still reconnecting) while a verify thread runs the check through
// it, and only the check's own pieces (tagged with this reconnect's
// verify_gen) are sent. OK: the connection is ready and the pieces waiting
// for it are sent. Mismatch: the source is fatal (every request fails with
// "... changed while reconnecting: <what differs>"). Another error (a read
// of the check failed): the connection is dropped and reconnects again.
// Check pieces of an earlier reconnect are failed, never sent on a later
// one.
//
// LIFECYCLE. Start() starts the I/O thread, which makes the first connect;
// WaitConnected reports how it ended. A connection whose first connect
// failed stays down (no retry at open). Stop() (also run by the destructor)
// ends the thread: every piece still held fails its op with Aborted, a
// spawned nbdkit is killed (SIGKILL) and reaped, the handle is closed, a
// verify thread is joined.
//
// NBDKIT'S STANDARD ERROR. A spawned nbdkit's standard error is read by the
// I/O thread (nbdkit_child.h). Before the first connect succeeded, its lines
// are kept for WaitConnected to report; afterwards each line is logged as a
// warning as it arrives (one that says "error" is also recorded as a source
// error: NbdSourceState::RecordError), and a failed reconnect's last error
// names what nbdkit said.
#pragma once

#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "sources/nbd_request.h"
#include "sources/nbd_source_state.h"
#include "sources/nbdkit_child.h"

struct nbd_handle;

namespace clonefs {

// What the server said at the handshake.
struct NbdServerInfo {
  uint64_t size = 0;
  bool multi_conn = false;
  bool extents = false;    // base:allocation negotiated
  uint64_t min_block = 0;  // 0 if not advertised
  uint64_t max_block = 0;  // 0 if not advertised
};

class NbdConnection {
 public:
  NbdConnection(std::shared_ptr<NbdSourceState> state, int index);
  ~NbdConnection();
  NbdConnection(const NbdConnection&) = delete;
  NbdConnection& operator=(const NbdConnection&) = delete;

  // Starts the I/O thread (and with it the first connect).
  void Start();
  // Waits until the first connect has ended or the monotonic deadline has
  // passed. OK with the server's info, or IoError with libnbd's message;
  // then, for a spawned nbdkit, *nbdkit_said (if not null) is what it wrote
  // on standard error (NbdkitSaid: its last lines, "" if nothing).
  Status WaitConnected(uint64_t deadline_ns, NbdServerInfo* info,
                       std::string* nbdkit_said = nullptr);
  // Queues a piece for this connection. Returns it if the connection is
  // stopping (the caller then fails its op), else nullptr.
  std::unique_ptr<NbdPiece> Submit(std::unique_ptr<NbdPiece> piece);
  // Ends the I/O thread (see LIFECYCLE). Idempotent.
  void Stop();

  // Pieces queued, waiting or in flight.
  int outstanding() const { return outstanding_.load(std::memory_order_relaxed); }
  // Connected and ready for requests.
  bool up() const { return up_.load(std::memory_order_acquire); }

  struct HealthView {
    uint64_t reconnecting_since_unix_ns = 0;  // 0 unless down after having been up
    uint64_t stalled_since_unix_ns = 0;       // 0 unless a piece waits past the timeout
    uint64_t recovered_unix_ns = 0;           // last return to normal, 0 if never
    uint64_t oldest_sent_unix_ns = 0;         // the oldest piece in flight, 0 if none
  };
  HealthView health() const;

 private:
  enum class Phase { kConnecting, kVerifying, kReady, kDown, kFailed };

  // libnbd callbacks (I/O thread, handle lock held): record only.
  static int OnComplete(void* user_data, int* error);
  static int OnExtent(void* user_data, const char* context, uint64_t offset, uint32_t* entries,
                      size_t nr_entries, int* error);
  static int OnChunk(void* user_data, const void* subbuf, size_t count, uint64_t offset,
                     unsigned status, int* error);

  // The I/O thread and its steps.
  void Run();
  void StartConnect();
  void OnReady();
  void Reconnected();
  void StartVerify();
  void StepVerify();
  void Verified(const Status& s);
  bool SendableNow(NbdPiece& p);
  void ConnectionLost(const std::string& reason);
  void CloseHandle();
  // Reads nbdkit's standard error; logs new lines once the connection has
  // been up. Returns NbdkitSaid of the lines read since this nbdkit started.
  std::string DrainNbdkit();
  void SubmitWaiting(uint64_t now);
  void PollOnce(int timeout_ms);
  void AfterIo(bool failed, std::string error);
  // Settles the pieces libnbd completed. `dead`: the connection failed, so
  // failed pieces are reissued later. Returns why the connection must be
  // dropped if a piece's error says it is gone (ESHUTDOWN...), else "".
  std::string ProcessCompleted(bool dead, uint64_t now);
  void Deliver(std::unique_ptr<NbdPiece> p);
  // `what`: what went wrong, if not the server's errno (p->error).
  void ServerError(std::unique_ptr<NbdPiece> p, uint64_t now, const std::string& what = "");
  void Requeue(std::unique_ptr<NbdPiece> p, bool at_front);
  void Release(std::unique_ptr<NbdPiece> p);
  void ExpireDeadlines(uint64_t now);
  // Down after having been up: hands the pieces waiting here that may go
  // anywhere to a connection that is up (NbdSourceState::Rehome).
  void HandOver();
  void FailAll(const Status& s);
  void UpdateStall(uint64_t now);
  int PollTimeoutMs(uint64_t now) const;
  void Shutdown();
  void Wake();
  std::string PieceWhat(const NbdPiece& p) const;

  const std::shared_ptr<NbdSourceState> state_;
  const int index_;
  int efd_ = -1;  // eventfd: callers write after queueing; Stop writes
  std::thread thread_;

  mutable std::mutex mu_;
  std::condition_variable first_cv_;             // first connect ended
  std::deque<std::unique_ptr<NbdPiece>> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                        // GUARDED_BY(mu_)
  bool first_done_ = false;                      // GUARDED_BY(mu_)
  Status first_status_;                          // GUARDED_BY(mu_)
  NbdServerInfo info_;                           // GUARDED_BY(mu_)
  std::string first_nbdkit_said_;                // GUARDED_BY(mu_)
  bool verify_finished_ = false;                 // GUARDED_BY(mu_); the verify thread ended
  Status verify_status_;                         // GUARDED_BY(mu_); what it found

  std::atomic<int> outstanding_{0};
  std::atomic<bool> up_{false};
  std::atomic<uint64_t> reconnecting_since_unix_{0};
  std::atomic<uint64_t> stalled_since_unix_{0};
  std::atomic<uint64_t> recovered_unix_{0};
  std::atomic<uint64_t> oldest_sent_mono_{0};  // monotonic; 0: nothing in flight (or not ready)

  // I/O thread only.
  nbd_handle* h_ = nullptr;
  std::unique_ptr<NbdkitChild> nbdkit_;  // the spawned server of h_, if any
  Phase phase_ = Phase::kConnecting;
  bool ever_ready_ = false;
  uint64_t first_size_ = 0;
  uint64_t connect_started_ns_ = 0;
  uint64_t next_attempt_ns_ = 0;
  uint64_t backoff_ns_ = 0;      // the delay before the next attempt after this one
  uint64_t ready_since_ns_ = 0;  // when the connection last became ready
  std::thread verify_thread_;    // joined by the I/O thread once it reports
  uint64_t verify_gen_ = 0;      // the current (or last) check's tag
  bool verify_started_ = false;  // this reconnect's check runs (kVerifying)
  uint64_t verify_size_ = 0;     // the size this reconnect found
  std::list<std::unique_ptr<NbdPiece>> waiting_;
  std::unordered_map<NbdPiece*, std::unique_ptr<NbdPiece>> inflight_;
  std::vector<NbdPiece*> completed_;
};

}  // namespace clonefs
