#include "sources/nbd_request.h"

#include <cstring>

namespace clonefs {

NbdOp::NbdOp(Kind kind, uint64_t off, uint64_t len, void* dest, uint64_t deadline_ns,
             Device::ReadDone done, int pieces, int direct_pieces)
    : kind_(kind),
      off_(off),
      len_(len),
      deadline_ns_(deadline_ns),
      dest_(static_cast<uint8_t*>(dest)),
      remaining_(pieces),
      direct_live_(direct_pieces),
      done_(std::move(done)) {}

std::string NbdOp::What() const {
  if (kind_ == Kind::kRead) return ReadWhat(off_, len_);
  return "block status at " + std::to_string(off_);
}

void NbdOp::ReadSucceeded(const uint8_t* data, size_t op_off, size_t n) {
  std::unique_lock<std::mutex> l(mu_);
  if (finished_) return;
  std::memcpy(dest_ + op_off, data, n);
  if (--remaining_ == 0) FinishLocked(l, Status::OK());
}

void NbdOp::DirectSucceeded() {
  std::unique_lock<std::mutex> l(mu_);
  if (finished_) return;
  if (--remaining_ == 0) FinishLocked(l, Status::OK());
}

void NbdOp::DirectPieceGone() {
  std::unique_lock<std::mutex> l(mu_);
  if (--direct_live_ != 0 || !finished_ || !done_) return;
  Device::ReadDone done = std::move(done_);
  done_ = nullptr;
  Status s = status_;
  l.unlock();
  done(std::move(s));
}

void NbdOp::ExtentsSucceeded(std::vector<Extent> extents) {
  std::unique_lock<std::mutex> l(mu_);
  if (finished_) return;
  extents_ = std::move(extents);
  if (--remaining_ == 0) FinishLocked(l, Status::OK());
}

bool NbdOp::Finish(Status s) {
  std::unique_lock<std::mutex> l(mu_);
  if (finished_) return false;
  FinishLocked(l, std::move(s));
  return true;
}

std::vector<Extent> NbdOp::TakeExtents() {
  std::lock_guard<std::mutex> l(mu_);
  return std::move(extents_);
}

void NbdOp::FinishLocked(std::unique_lock<std::mutex>& l, Status s) {
  finished_ = true;
  finished_flag_.store(true, std::memory_order_release);
  dest_ = nullptr;
  status_ = s;
  Device::ReadDone done;
  if (direct_live_ == 0) {  // else the last direct piece to go calls it
    done = std::move(done_);
    done_ = nullptr;
  }
  l.unlock();
  cv_.notify_all();
  if (done) done(std::move(s));
}

}  // namespace clonefs
