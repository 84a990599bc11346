// trace_replay: replays a read trace against a file at queue depth 1, as a
// booting machine reads its disk, and prints how long it took.
//
//   trace_replay TRACE FILE [--json] [--verify REFERENCE] [--timeline OUT]
//
// TRACE is text, one read per line: "OFFSET LENGTH" (decimal bytes; blank
// lines and lines starting with '#' are skipped), replayed in order. Each
// read is widened to 4 KiB boundaries and issued as one pread on FILE opened
// with O_DIRECT (a short read is continued; reading at or past the end of
// FILE ends that request). Prints the elapsed seconds, or with --json
// {"elapsed_s", "requests", "bytes", "p50_ms", "p99_ms", "max_ms"}.
// --verify: after each read, the same bytes are read from REFERENCE (the
// image the clone is made of) and compared; the time that takes is left out
// of the elapsed time, and mismatches are counted ("mismatches" in --json;
// any mismatch makes the exit status 3).
// --timeline: writes one line per request to OUT, "START_MS LATENCY_MS OFFSET
// LENGTH" (start relative to the first request, verification time left out),
// to see where a replay waits.
// Exit status: 0, 1 on an I/O error, 2 on bad arguments or a bad trace.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr uint64_t kAlign = 4096;

struct Read {
  uint64_t offset;
  uint64_t length;
};

bool LoadTrace(const char* path, std::vector<Read>* out) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "trace_replay: cannot open %s: %s\n", path, std::strerror(errno));
    return false;
  }
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    std::istringstream fields(line);
    Read r{};
    if (!(fields >> r.offset >> r.length) || r.length == 0) {
      std::fprintf(stderr, "trace_replay: %s:%d: expected \"OFFSET LENGTH\"\n", path, lineno);
      return false;
    }
    out->push_back(r);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  bool json = false;
  const char* verify = nullptr;
  const char* timeline = nullptr;
  std::vector<const char*> args;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (std::strcmp(argv[i], "--verify") == 0 && i + 1 < argc) {
      verify = argv[++i];
    } else if (std::strcmp(argv[i], "--timeline") == 0 && i + 1 < argc) {
      timeline = argv[++i];
    } else {
      args.push_back(argv[i]);
    }
  }
  if (args.size() != 2) {
    std::fprintf(stderr, "usage: trace_replay TRACE FILE [--json] [--verify REFERENCE] [--timeline OUT]\n");
    return 2;
  }
  std::vector<Read> trace;
  if (!LoadTrace(args[0], &trace)) return 2;

  int fd = open(args[1], O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "trace_replay: cannot open %s with O_DIRECT: %s\n", args[1],
                 std::strerror(errno));
    return 1;
  }
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    std::fprintf(stderr, "trace_replay: fstat %s: %s\n", args[1], std::strerror(errno));
    return 1;
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  int ref = -1;
  if (verify != nullptr && (ref = open(verify, O_RDONLY | O_CLOEXEC)) < 0) {
    std::fprintf(stderr, "trace_replay: cannot open %s: %s\n", verify, std::strerror(errno));
    return 1;
  }

  uint64_t biggest = kAlign;
  for (auto& r : trace) {
    uint64_t start = r.offset / kAlign * kAlign;
    uint64_t end = (r.offset + r.length + kAlign - 1) / kAlign * kAlign;
    r = {start, end - start};
    biggest = std::max(biggest, r.length);
  }
  void* buf = nullptr;
  if (posix_memalign(&buf, kAlign, biggest) != 0) {
    std::fprintf(stderr, "trace_replay: cannot allocate %llu bytes\n",
                 static_cast<unsigned long long>(biggest));
    return 1;
  }
  std::memset(buf, 0, biggest);
  std::vector<char> want(verify != nullptr ? biggest : 0);

  using Clock = std::chrono::steady_clock;
  std::vector<double> lat_ms;
  std::vector<double> start_ms;
  lat_ms.reserve(trace.size());
  start_ms.reserve(trace.size());
  uint64_t bytes = 0;
  uint64_t mismatches = 0;
  Clock::duration verifying{};
  const auto t0 = Clock::now();
  for (const auto& r : trace) {
    const auto r0 = Clock::now();
    start_ms.push_back(std::chrono::duration<double, std::milli>(r0 - t0 - verifying).count());
    uint64_t done = 0;
    while (done < r.length && r.offset + done < file_size) {
      ssize_t n = pread(fd, static_cast<char*>(buf) + done, r.length - done,
                        static_cast<off_t>(r.offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        std::fprintf(stderr, "trace_replay: pread %s at %llu (%llu bytes): %s\n", args[1],
                     static_cast<unsigned long long>(r.offset + done),
                     static_cast<unsigned long long>(r.length - done), std::strerror(errno));
        return 1;
      }
      if (n == 0) break;
      done += static_cast<uint64_t>(n);
    }
    bytes += done;
    const auto r1 = Clock::now();
    lat_ms.push_back(std::chrono::duration<double, std::milli>(r1 - r0).count());
    if (ref >= 0) {
      ssize_t n = pread(ref, want.data(), done, static_cast<off_t>(r.offset));
      if (n != static_cast<ssize_t>(done) || std::memcmp(want.data(), buf, done) != 0) {
        if (mismatches++ == 0) {
          std::fprintf(stderr, "trace_replay: %s differs from %s in [%llu, +%llu)\n", args[1],
                       verify, static_cast<unsigned long long>(r.offset),
                       static_cast<unsigned long long>(done));
        }
      }
      verifying += Clock::now() - r1;
    }
  }
  const double elapsed =
      std::chrono::duration<double>(Clock::now() - t0 - verifying).count();
  close(fd);
  if (ref >= 0) close(ref);
  std::free(buf);
  const int status = mismatches != 0 ? 3 : 0;
  if (timeline != nullptr) {
    FILE* out = std::fopen(timeline, "w");
    if (out == nullptr) {
      std::fprintf(stderr, "trace_replay: cannot write %s: %s\n", timeline, std::strerror(errno));
      return 1;
    }
    for (size_t i = 0; i < lat_ms.size(); ++i) {
      std::fprintf(out, "%.3f %.3f %llu %llu\n", start_ms[i], lat_ms[i],
                   static_cast<unsigned long long>(trace[i].offset),
                   static_cast<unsigned long long>(trace[i].length));
    }
    std::fclose(out);
  }

  if (!json) {
    std::printf("%.3f\n", elapsed);
    return status;
  }
  std::sort(lat_ms.begin(), lat_ms.end());
  auto pct = [&](double p) {
    if (lat_ms.empty()) return 0.0;
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(lat_ms.size() - 1) + 0.5);
    return lat_ms[std::min(i, lat_ms.size() - 1)];
  };
  std::printf(
      "{\"elapsed_s\": %.3f, \"requests\": %zu, \"bytes\": %llu, \"p50_ms\": %.3f, "
      "\"p99_ms\": %.3f, \"max_ms\": %.3f%s",
      elapsed, trace.size(), static_cast<unsigned long long>(bytes), pct(50), pct(99),
      lat_ms.empty() ? 0.0 : lat_ms.back(), ref >= 0 ? "" : "}\n");
  if (ref >= 0) std::printf(", \"mismatches\": %llu}\n", static_cast<unsigned long long>(mismatches));
  return status;
}
