// FakeTransport: a FuseTransport for tests. Read hands out queued requests;
// Writev records each reply as one byte string; Ioctl answers the
// backing-file ioctls from settable results and records them.
//
// THREAD SAFETY: one mutex around everything.
#pragma once

#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "fuse/fuse_channel.h"
#include "fuse/fuse_kernel_abi.h"

namespace clonefs::fuse::testing {

class FakeTransport : public FuseTransport {
 public:
  struct IoctlCall {
    unsigned long request;
    int64_t arg;  // BackingMap::fd for BACKING_OPEN, the id for BACKING_CLOSE
  };

  ssize_t Read(int, void* buf, size_t len) override {
    std::lock_guard<std::mutex> l(mu_);
    if (requests_.empty()) {
      errno = ENODEV;
      return -1;
    }
    std::string r = std::move(requests_.front());
    requests_.pop_front();
    const size_t n = std::min(len, r.size());
    std::memcpy(buf, r.data(), n);
    return static_cast<ssize_t>(n);
  }
  ssize_t Writev(int, const struct iovec* iov, int count) override {
    std::lock_guard<std::mutex> l(mu_);
    if (write_errno_ != 0) {
      errno = write_errno_;
      return -1;
    }
    std::string out;
    for (int i = 0; i < count; ++i)
      out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
    replies_.push_back(out);
    return static_cast<ssize_t>(out.size());
  }
  int Ioctl(int, unsigned long request, void* arg) override {
    std::lock_guard<std::mutex> l(mu_);
    if (request == kabi::kDevIocBackingOpen) {
      kabi::BackingMap m;
      std::memcpy(&m, arg, sizeof(m));
      ioctls_.push_back({request, m.fd});
      if (open_errno_ != 0) {
        errno = open_errno_;
        return -1;
      }
      return next_id_;
    }
    uint32_t id;
    std::memcpy(&id, arg, sizeof(id));
    ioctls_.push_back({request, id});
    return 0;
  }

  void QueueRequest(std::string r) {
    std::lock_guard<std::mutex> l(mu_);
    requests_.push_back(std::move(r));
  }
  std::vector<std::string> replies() const {
    std::lock_guard<std::mutex> l(mu_);
    return replies_;
  }
  std::vector<IoctlCall> ioctls() const {
    std::lock_guard<std::mutex> l(mu_);
    return ioctls_;
  }
  void FailWrites(int err) {
    std::lock_guard<std::mutex> l(mu_);
    write_errno_ = err;
  }
  void FailBackingOpen(int err) {
    std::lock_guard<std::mutex> l(mu_);
    open_errno_ = err;
  }
  void SetNextBackingId(int id) {
    std::lock_guard<std::mutex> l(mu_);
    next_id_ = id;
  }

 private:
  mutable std::mutex mu_;
  std::deque<std::string> requests_;
  std::vector<std::string> replies_;
  std::vector<IoctlCall> ioctls_;
  int write_errno_ = 0;
  int open_errno_ = 0;
  int next_id_ = 1;
};

// Bytes of a request: header + body.
template <typename Body>
std::string Request(uint32_t opcode, uint64_t unique, const Body& body) {
  kabi::InHeader h;
  std::memset(&h, 0, sizeof(h));
  h.len = sizeof(h) + sizeof(body);
  h.opcode = opcode;
  h.unique = unique;
  std::string s(reinterpret_cast<const char*>(&h), sizeof(h));
  s.append(reinterpret_cast<const char*>(&body), sizeof(body));
  return s;
}

// The INIT request of a kernel speaking 7.`minor` with these flags.
inline std::string InitRequest(uint64_t unique, uint32_t minor, uint64_t flags) {
  kabi::InitIn in;
  std::memset(&in, 0, sizeof(in));
  in.major = 7;
  in.minor = minor;
  in.max_readahead = 128 << 10;
  in.flags = static_cast<uint32_t>(flags);
  in.flags2 = static_cast<uint32_t>(flags >> 32);
  return Request(kabi::kOpInit, unique, in);
}

}  // namespace clonefs::fuse::testing
