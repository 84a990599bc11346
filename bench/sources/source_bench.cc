// source_bench: reads a whole remote source through the NBD source device
// with ReadAsync, keeping a target of bytes in flight (as the copier does),
// and prints the rate. bench/sources/run.sh runs it against nbdkit with the
// delay filter, alternating with nbdcopy, and prints the ratio.
//
//   source_bench URI [--inflight-mib 64] [--read-mib 4] [--request-kib 256]
//                    [--connections 4]
//
// Prints one line: "clonefs <MiB/s> MiB/s <bytes> bytes <seconds> s".
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "sources/nbd_device.h"
#include "sources/source_spec.h"

namespace {

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: source_bench URI [--inflight-mib N] [--read-mib N] [--request-kib N] "
               "[--connections N]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Usage();
  std::string uri = argv[1];
  uint64_t inflight = 64ull << 20, read_size = 4ull << 20;
  clonefs::NbdSourceOptions options;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) Usage();
    uint64_t v = std::strtoull(argv[++i], nullptr, 10);
    if (a == "--inflight-mib") {
      inflight = v << 20;
    } else if (a == "--read-mib") {
      read_size = v << 20;
    } else if (a == "--request-kib") {
      options.max_request_bytes = v << 10;
    } else if (a == "--connections") {
      options.max_connections = static_cast<int>(v);
    } else {
      Usage();
    }
  }
  clonefs::Result<clonefs::SourceSpec> spec = clonefs::ParseSource(uri);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", spec.status().ToString().c_str());
    return 1;
  }
  auto dev = clonefs::OpenNbdSource(*spec, options);
  if (!dev.ok()) {
    std::fprintf(stderr, "%s\n", dev.status().ToString().c_str());
    return 1;
  }
  clonefs::Device& d = **dev;
  const uint64_t size = d.Size();
  const size_t slots = std::max<uint64_t>(1, inflight / read_size);
  // Touched up front, as a copier reuses its buffers: their first page
  // faults are not the source's cost.
  std::vector<std::vector<uint8_t>> bufs(slots, std::vector<uint8_t>(read_size, 0xFF));
  std::vector<size_t> free_slots;
  for (size_t i = 0; i < slots; ++i) free_slots.push_back(i);

  std::mutex mu;
  std::condition_variable cv;
  size_t running = 0;
  bool failed = false;
  auto start = std::chrono::steady_clock::now();
  for (uint64_t off = 0; off < size; off += read_size) {
    size_t slot;
    {
      std::unique_lock<std::mutex> l(mu);
      cv.wait(l, [&] { return !free_slots.empty(); });
      slot = free_slots.back();
      free_slots.pop_back();
      ++running;
    }
    const size_t len = std::min<uint64_t>(read_size, size - off);
    d.ReadAsync(off, bufs[slot].data(), len, [&, slot](clonefs::Status s) {
      std::lock_guard<std::mutex> l(mu);
      if (!s.ok()) {
        std::fprintf(stderr, "%s\n", s.ToString().c_str());
        failed = true;
      }
      free_slots.push_back(slot);
      --running;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> l(mu);
    cv.wait(l, [&] { return running == 0; });
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (failed) return 1;
  std::printf("clonefs %.1f MiB/s %llu bytes %.3f s\n", size / secs / (1 << 20),
              static_cast<unsigned long long>(size), secs);
  return 0;
}
