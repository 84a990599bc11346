#include "sources/unopened_source.h"

#include <cerrno>

#include "base/clock.h"

namespace clonefs {
namespace {

class UnopenedSource final : public Device {
 public:
  UnopenedSource(std::string name, uint64_t size, std::string why)
      : name_(std::move(name)), size_(size), why_(std::move(why)) {
    health_.state = SourceHealth::State::kReleased;
    health_.since_unix_ns = WallNowNanos();
    health_.last_error = "not opened at mount: " + why_;
    health_.last_error_unix_ns = health_.since_unix_ns;
  }

  uint64_t Size() const override { return size_; }
  bool ReadOnly() const override { return true; }
  const std::string& Name() const override { return name_; }
  Status Read(uint64_t, void*, size_t) override { return NotOpened(); }
  void ReadAsync(uint64_t, void*, size_t, ReadDone done) override { done(NotOpened()); }
  SourceHealth Health() const override { return health_; }
  Status Write(uint64_t off, const void*, size_t) override { return ReadOnlyError("write", off); }
  Status Flush() override { return ReadOnlyError("flush", 0); }
  Status Zero(uint64_t off, uint64_t, ZeroMode) override { return ReadOnlyError("zero", off); }
  Result<uint64_t> NextData(uint64_t) override { return NotOpened(); }
  Result<uint64_t> NextHole(uint64_t) override { return NotOpened(); }

 private:
  Status NotOpened() const {
    return Status::IoError(
        "source " + name_ + " was not opened (the clone is complete and does not read it): " + why_,
        EIO);
  }
  static Status ReadOnlyError(const char* op, uint64_t off) {
    return Status::Permission(std::string(op) + " at " + std::to_string(off) +
                              ": a source is read-only");
  }

  const std::string name_;
  const uint64_t size_;
  const std::string why_;
  SourceHealth health_;
};

}  // namespace

std::unique_ptr<Device> MakeUnopenedSource(std::string name, uint64_t size, std::string why) {
  return std::make_unique<UnopenedSource>(std::move(name), size, std::move(why));
}

}  // namespace clonefs
