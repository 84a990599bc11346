#include "sources/timed_device.h"

#include <atomic>
#include <chrono>

#include "base/cancel.h"
#include "base/clock.h"
#include "sources/read_pool.h"
#include "sources/source_wait.h"

namespace clonefs {
namespace {

// Monotonic ns -> wall-clock ns since the Unix epoch.
uint64_t MonoToWall(uint64_t mono_ns) {
  const uint64_t now_mono = Clock::Real()->NowNanos();
  const uint64_t now_wall =
      static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
  return now_wall - (now_mono - mono_ns);
}

class TimedDevice final : public Device {
 public:
  TimedDevice(std::shared_ptr<Device> inner, const TimedSourceOptions& options)
      : inner_(inner),
        timeout_ns_(options.timeout_ns),
        pool_(ReadPool::Create(std::move(inner), options.threads)) {}

  ~TimedDevice() override { pool_->Shutdown(); }

  uint64_t Size() const override { return inner_->Size(); }
  bool ReadOnly() const override { return inner_->ReadOnly(); }
  const std::string& Name() const override { return inner_->Name(); }
  int SpliceFd() const override { return inner_->SpliceFd(); }
  bool AsyncReads() const override { return true; }

  Status Read(uint64_t off, void* buf, size_t len) override {
    Forget();
    CLONEFS_RETURN_IF_ERROR(CheckRange(off, len));
    if (len == 0) return Status::OK();
    Status checked;
    Status s = pool_->Read(off, buf, len, timeout_ns_, CurrentCancelToken(), inner_->Name(),
                           &checked);
    if (s.ok()) {
      last_check_.device = id_;
      last_check_.status = std::move(checked);
    }
    return s;
  }

  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
    Forget();
    Status s = CheckRange(off, len);
    if (!s.ok() || len == 0) {
      done(std::move(s));
      return;
    }
    pool_->ReadAsync(off, buf, len, std::move(done));
  }

  Status Write(uint64_t off, const void* buf, size_t len) override {
    return inner_->Write(off, buf, len);
  }
  Status Flush() override { return inner_->Flush(); }
  Status Zero(uint64_t off, uint64_t len, ZeroMode mode) override {
    return inner_->Zero(off, len, mode);
  }
  Result<uint64_t> NextData(uint64_t off) override { return Seek(off, /*hole=*/false); }
  Result<uint64_t> NextHole(uint64_t off) override { return Seek(off, /*hole=*/true); }
  Status CheckUnchanged() override {
    if (last_check_.device == id_) {  // made by this thread's read, just now
      Status s = std::move(last_check_.status);
      Forget();
      return s;
    }
    return pool_->Call([](Device& inner) { return inner.CheckUnchanged(); }, timeout_ns_,
                       CurrentCancelToken(), inner_->Name(), "the check that it is unchanged");
  }

  SourceHealth Health() const override {
    SourceHealth h = inner_->Health();
    uint64_t stalled = 0, recovered = 0, oldest = 0;
    pool_->Stall(timeout_ns_, &stalled, &recovered, &oldest);
    if (oldest != 0) h.oldest_request_unix_ns = MonoToWall(oldest);
    if (stalled != 0) {
      h.state = SourceHealth::State::kStalled;
      h.since_unix_ns = MonoToWall(stalled);
    } else if (recovered != 0 && h.up()) {
      h.since_unix_ns = MonoToWall(recovered);
    }
    return h;
  }

 private:
  // The unchanged check a Read's job made after reading, for the next
  // CheckUnchanged on the same thread (see timed_device.h).
  struct LastCheck {
    uint64_t device = 0;  // whose (id_); 0: none
    Status status;
  };
  static thread_local LastCheck last_check_;
  static std::atomic<uint64_t> next_id_;
  void Forget() {
    if (last_check_.device == id_) last_check_ = LastCheck();
  }

  // NextData / NextHole on the pool, under the timeout.
  Result<uint64_t> Seek(uint64_t off, bool hole) {
    Forget();
    auto found = std::make_shared<uint64_t>(0);  // the call may outlive this frame
    Status s = pool_->Call(
        [found, off, hole](Device& inner) -> Status {
          Result<uint64_t> r = hole ? inner.NextHole(off) : inner.NextData(off);
          if (!r.ok()) return r.status();
          *found = *r;
          return Status::OK();
        },
        timeout_ns_, CurrentCancelToken(), inner_->Name(),
        std::string(hole ? "the search for a hole" : "the search for data") + " at " +
            std::to_string(off));
    if (!s.ok()) return s;
    return *found;
  }

  Status CheckRange(uint64_t off, uint64_t len) const {
    const uint64_t size = inner_->Size();
    if (off > size || len > size - off) {
      return Status::InvalidArgument(ReadWhat(off, len) + " is beyond the end of " +
                                     inner_->Name() + " (" + std::to_string(size) + " bytes)");
    }
    return Status::OK();
  }

  const std::shared_ptr<Device> inner_;
  const uint64_t timeout_ns_;
  const std::shared_ptr<ReadPool> pool_;
  // Unique for the process's life (an address may be reused by a later
  // device; a thread's LastCheck must never answer for it).
  const uint64_t id_ = ++next_id_;
};

thread_local TimedDevice::LastCheck TimedDevice::last_check_;
std::atomic<uint64_t> TimedDevice::next_id_{0};

}  // namespace

std::unique_ptr<Device> MakeTimedSource(std::unique_ptr<Device> inner, TimedSourceOptions options) {
  return std::make_unique<TimedDevice>(std::shared_ptr<Device>(std::move(inner)), options);
}

}  // namespace clonefs
