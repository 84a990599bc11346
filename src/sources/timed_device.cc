#include "sources/timed_device.h"

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
    CLONEFS_RETURN_IF_ERROR(CheckRange(off, len));
    if (len == 0) return Status::OK();
    return pool_->Read(off, buf, len, timeout_ns_, CurrentCancelToken(), inner_->Name());
  }

  void ReadAsync(uint64_t off, void* buf, size_t len, ReadDone done) override {
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
  Result<uint64_t> NextData(uint64_t off) override { return inner_->NextData(off); }
  Result<uint64_t> NextHole(uint64_t off) override { return inner_->NextHole(off); }
  Status CheckUnchanged() override { return inner_->CheckUnchanged(); }

  SourceHealth Health() const override {
    SourceHealth h = inner_->Health();
    uint64_t stalled = 0, recovered = 0;
    pool_->Stall(timeout_ns_, &stalled, &recovered);
    if (stalled != 0) {
      h.state = SourceHealth::State::kStalled;
      h.since_unix_ns = MonoToWall(stalled);
    } else if (recovered != 0 && h.up()) {
      h.since_unix_ns = MonoToWall(recovered);
    }
    return h;
  }

 private:
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
};

}  // namespace

std::unique_ptr<Device> MakeTimedSource(std::unique_ptr<Device> inner, TimedSourceOptions options) {
  return std::make_unique<TimedDevice>(std::shared_ptr<Device>(std::move(inner)), options);
}

}  // namespace clonefs
