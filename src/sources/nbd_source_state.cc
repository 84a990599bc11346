#include "sources/nbd_source_state.h"

namespace clonefs {

void NbdSourceState::SetFatal(Status s) {
  std::lock_guard<std::mutex> l(mu_);
  if (has_fatal_.load(std::memory_order_relaxed)) return;
  fatal_ = std::move(s);
  fatal_unix_ns_ = WallNowNanos();
  has_fatal_.store(true, std::memory_order_release);
}

Status NbdSourceState::fatal() const {
  std::lock_guard<std::mutex> l(mu_);
  return fatal_;
}

uint64_t NbdSourceState::fatal_unix_ns() const {
  std::lock_guard<std::mutex> l(mu_);
  return fatal_unix_ns_;
}

void NbdSourceState::SetVerifier(Verifier v) {
  std::lock_guard<std::mutex> l(mu_);
  verifier_ = std::move(v);
}

NbdSourceState::Verifier NbdSourceState::verifier() const {
  std::lock_guard<std::mutex> l(mu_);
  return verifier_;
}

void NbdSourceState::SetRehome(Rehome r) {
  std::lock_guard<std::mutex> l(mu_);
  rehome_ = std::move(r);
}

NbdSourceState::Rehome NbdSourceState::rehome() const {
  std::lock_guard<std::mutex> l(mu_);
  return rehome_;
}

void NbdSourceState::RecordError(const std::string& msg) {
  errors.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> l(mu_);
  last_error_ = msg;
  last_error_unix_ns_ = WallNowNanos();
}

void NbdSourceState::LastError(std::string* msg, uint64_t* unix_ns) const {
  std::lock_guard<std::mutex> l(mu_);
  *msg = last_error_;
  *unix_ns = last_error_unix_ns_;
}

}  // namespace clonefs
