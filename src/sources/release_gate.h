// ReleaseGate: the bracket a source device puts around every use of what
// Device::Release closes (a remote source's connections, a file's
// descriptor and reader pool), so that Release can wait for the uses in
// progress and refuse new ones.
//
//   ReleaseGate::Use use(&gate_);
//   if (!use.ok()) return <"released" error>;   // nothing may be touched
//   ... use the connections / the file ...
//
// Close() (once; later calls return false at once) stops new uses and
// waits until every use in progress has ended, then returns true: the
// caller may then tear down what the uses touched. It records when, for
// Health (since_unix_ns).
//
// THREAD SAFETY: every method may be called from any thread. The counter
// and the flag are seq_cst atomics (a Use sees Close's flag, or Close sees
// its count); mu_ is a leaf that pairs cv_ with them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace clonefs {

class ReleaseGate {
 public:
  class Use {
   public:
    explicit Use(ReleaseGate* g) : g_(g) {
      g_->users_.fetch_add(1);
      ok_ = !g_->closed_.load();
    }
    ~Use() {
      if (g_->users_.fetch_sub(1) == 1 && g_->closed_.load()) {
        std::lock_guard<std::mutex> l(g_->mu_);
        g_->cv_.notify_all();
      }
    }
    Use(const Use&) = delete;
    Use& operator=(const Use&) = delete;
    // False once Close has begun: the caller must not touch the device's
    // released parts.
    bool ok() const { return ok_; }

   private:
    ReleaseGate* const g_;
    bool ok_ = false;
  };

  // Stops new uses, waits for those in progress. True for the first call
  // only (which waited); false if the gate was already closed.
  bool Close();
  bool closed() const { return closed_.load(); }
  // Wall-clock time Close began (ns since the epoch), 0 before.
  uint64_t closed_unix_ns() const { return closed_unix_ns_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> closed_unix_ns_{0};
  std::atomic<uint64_t> users_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace clonefs
