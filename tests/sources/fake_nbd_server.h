// FakeNbdServer: just enough of an NBD server (fixed newstyle handshake,
// NBD_OPT_GO; every other option answered NBD_REP_ERR_UNSUP) on a Unix
// socket to play what nbdkit cannot be made to:
//   - a server that *completes* the handshake and then drops the connection
//     (a flapping server). By default it serves no requests: after the
//     handshake it holds each connection for hold() ms (0: closes it at
//     once), then closes it. It records when each connection was accepted.
//   - a server whose structured replies to reads are split into chunks
//     (set_read_answer): in two chunks, the second half first (legal), or
//     in two chunks that both carry the first half and none the second
//     (illegal: NBD forbids overlapping chunks, and a successful read must
//     cover every byte; libnbd checks neither). The bytes are Byte(offset).
//
// THREAD SAFETY: set_hold_ms, accepts and accept_times may be called from
// any thread while the server thread runs.
// LIFECYCLE: Start() binds and starts the thread; the destructor (or Stop())
// stops and joins it and removes the socket.
#pragma once

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace clonefs::testing {

class FakeNbdServer {
 public:
  using Time = std::chrono::steady_clock::time_point;

  FakeNbdServer(std::string socket_path, uint64_t size)
      : socket_(std::move(socket_path)), size_(size) {}
  ~FakeNbdServer() { Stop(); }
  FakeNbdServer(const FakeNbdServer&) = delete;
  FakeNbdServer& operator=(const FakeNbdServer&) = delete;

  // Binds the socket and starts serving. False if the socket cannot be made.
  bool Start() {
    ::unlink(socket_.c_str());
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (listen_fd_ < 0 || socket_.size() >= sizeof(addr.sun_path)) return false;
    std::memcpy(addr.sun_path, socket_.c_str(), socket_.size() + 1);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listen_fd_, 8) != 0) {
      return false;
    }
    thread_ = std::thread([this] { Run(); });
    return true;
  }

  void Stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ = -1;
    ::unlink(socket_.c_str());
  }

  // How long a connection is kept after its handshake. Default: 0.
  void set_hold_ms(int ms) { hold_ms_.store(ms); }

  enum class ReadAnswer { kNone, kTwoChunksBackwards, kFirstHalfTwice };
  // Structured replies are offered and reads answered as `a` says, for as
  // long as the client keeps the connection (hold_ms is then unused). Set
  // before Start.
  void set_read_answer(ReadAnswer a) { read_answer_ = a; }
  // The export's byte at `off`.
  static uint8_t Byte(uint64_t off) { return static_cast<uint8_t>(off * 131 + (off >> 9) + 1); }

  size_t accepts() const {
    std::lock_guard<std::mutex> l(mu_);
    return accepted_.size();
  }
  std::vector<Time> accept_times() const {
    std::lock_guard<std::mutex> l(mu_);
    return accepted_;
  }
  std::string Uri() const { return "nbd+unix:///?socket=" + socket_; }

 private:
  static constexpr uint64_t kIHaveOpt = 0x49484156454F5054ull;
  static constexpr uint64_t kReplyMagic = 0x0003e889045565a9ull;
  static constexpr uint32_t kOptAbort = 2, kOptInfo = 6, kOptGo = 7, kOptStructuredReply = 8;
  static constexpr uint32_t kRequestMagic = 0x25609513u, kStructuredMagic = 0x668e33efu;
  static constexpr uint16_t kCmdRead = 0, kReplyOffsetData = 1, kReplyFlagDone = 1;
  static constexpr uint32_t kRepAck = 1, kRepInfo = 3, kRepErrUnsup = 0x80000001u;

  void Run() {
    while (!stop_.load()) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      {
        std::lock_guard<std::mutex> l(mu_);
        accepted_.push_back(std::chrono::steady_clock::now());
      }
      if (Handshake(fd)) {
        if (read_answer_ == ReadAnswer::kNone) {
          Hold(fd);
        } else {
          ServeReads(fd);
        }
      }
      ::close(fd);
    }
  }

  // The client's side of every wait is bounded by the test: a stalled
  // client only delays the next accept.
  bool ReadAll(int fd, void* buf, size_t len) {
    auto* p = static_cast<uint8_t*>(buf);
    while (len > 0) {
      pollfd pf{fd, POLLIN, 0};
      if (::poll(&pf, 1, 2000) <= 0) return false;
      const ssize_t n = ::recv(fd, p, len, 0);
      if (n <= 0) return false;
      p += n;
      len -= static_cast<size_t>(n);
    }
    return true;
  }
  static bool WriteAll(int fd, const std::vector<uint8_t>& b) {
    for (size_t done = 0; done < b.size();) {
      const ssize_t n = ::send(fd, b.data() + done, b.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  static void Put(std::vector<uint8_t>* b, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) b->push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  static uint64_t Get(const uint8_t* p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
    return v;
  }
  static std::vector<uint8_t> Reply(uint32_t opt, uint32_t type, const std::vector<uint8_t>& data) {
    std::vector<uint8_t> b;
    Put(&b, kReplyMagic, 8);
    Put(&b, opt, 4);
    Put(&b, type, 4);
    Put(&b, data.size(), 4);
    b.insert(b.end(), data.begin(), data.end());
    return b;
  }

  // Fixed newstyle, no zeroes; options until NBD_OPT_GO succeeds.
  bool Handshake(int fd) {
    std::vector<uint8_t> hello = {'N', 'B', 'D', 'M', 'A', 'G', 'I', 'C'};
    Put(&hello, kIHaveOpt, 8);
    Put(&hello, 1 | 2, 2);  // NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES
    uint8_t client_flags[4];
    if (!WriteAll(fd, hello) || !ReadAll(fd, client_flags, 4)) return false;
    for (int options = 0; options < 16; ++options) {
      uint8_t head[16];
      if (!ReadAll(fd, head, sizeof(head)) || Get(head, 8) != kIHaveOpt) return false;
      const uint32_t opt = static_cast<uint32_t>(Get(head + 8, 4));
      const uint32_t len = static_cast<uint32_t>(Get(head + 12, 4));
      if (len > 4096) return false;
      std::vector<uint8_t> data(len);
      if (len > 0 && !ReadAll(fd, data.data(), len)) return false;
      if (opt == kOptAbort) return false;
      if (opt == kOptStructuredReply && read_answer_ != ReadAnswer::kNone) {
        if (!WriteAll(fd, Reply(opt, kRepAck, {}))) return false;
        continue;
      }
      if (opt != kOptGo && opt != kOptInfo) {
        if (!WriteAll(fd, Reply(opt, kRepErrUnsup, {}))) return false;
        continue;
      }
      std::vector<uint8_t> info;
      Put(&info, 0, 2);  // NBD_INFO_EXPORT
      Put(&info, size_, 8);
      Put(&info, 1 | 2, 2);  // NBD_FLAG_HAS_FLAGS | NBD_FLAG_READ_ONLY
      if (!WriteAll(fd, Reply(opt, kRepInfo, info)) || !WriteAll(fd, Reply(opt, kRepAck, {}))) {
        return false;
      }
      if (opt == kOptGo) return true;
    }
    return false;
  }

  // Keeps the connection hold_ms (reading and dropping whatever comes),
  // until the client closes it or the server stops.
  void Hold(int fd) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(hold_ms_.load());
    while (!stop_.load() && std::chrono::steady_clock::now() < end) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      uint8_t buf[4096];
      if (::recv(fd, buf, sizeof(buf), 0) <= 0) return;
    }
  }

  // Answers reads (ReadAnswer) until the client disconnects or the server
  // stops; any other command ends the connection.
  void ServeReads(int fd) {
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      while (::poll(&p, 1, 20) <= 0) {
        if (stop_.load()) return;
      }
      uint8_t req[28];
      if (!ReadAll(fd, req, sizeof(req)) || Get(req, 4) != kRequestMagic) return;
      const uint16_t type = static_cast<uint16_t>(Get(req + 6, 2));
      const uint64_t handle = Get(req + 8, 8);
      const uint64_t off = Get(req + 16, 8);
      const uint32_t len = static_cast<uint32_t>(Get(req + 24, 4));
      if (type != kCmdRead || off > size_ || len > size_ - off) return;
      const uint32_t half = len / 2;
      bool ok;
      if (read_answer_ == ReadAnswer::kTwoChunksBackwards) {
        ok = WriteAll(fd, DataChunk(handle, off + half, len - half, 0)) &&
             WriteAll(fd, DataChunk(handle, off, half, kReplyFlagDone));
      } else {
        ok = WriteAll(fd, DataChunk(handle, off, half, 0)) &&
             WriteAll(fd, DataChunk(handle, off, half, kReplyFlagDone));
      }
      if (!ok) return;
    }
  }
  static std::vector<uint8_t> DataChunk(uint64_t handle, uint64_t off, uint32_t n, uint16_t flags) {
    std::vector<uint8_t> b;
    Put(&b, kStructuredMagic, 4);
    Put(&b, flags, 2);
    Put(&b, kReplyOffsetData, 2);
    Put(&b, handle, 8);
    Put(&b, 8 + uint64_t{n}, 4);
    Put(&b, off, 8);
    for (uint64_t i = off; i < off + n; ++i) b.push_back(Byte(i));
    return b;
  }

  const std::string socket_;
  const uint64_t size_;
  ReadAnswer read_answer_ = ReadAnswer::kNone;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> hold_ms_{0};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Time> accepted_;  // GUARDED_BY(mu_)
};

}  // namespace clonefs::testing
