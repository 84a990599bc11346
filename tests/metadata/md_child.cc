// Helper process for the metadata tests (exec'd, never forked without exec:
// RocksDB's thread pools do not survive fork).
//
//   md_child hold <dir> <nr_regions>      open, print "READY\n", hold until
//                                         stdin closes
//   md_child tryopen <dir> <nr_regions>   open once; print the status; exit 0
//                                         if it was Busy, 1 otherwise
//   md_child workload <dir> <seed>        the crash workload: for k = 1, 2, ...
//                                         apply CommitOps, print "B k\n",
//                                         Commit(), print "E k\n"; runs until
//                                         killed (or 100000 commits)
//   md_child opens - <nr_regions>         for each stdin line "rw DIR" (Open
//                                         read-write, as a mount) or "ro DIR"
//                                         (ReadSuperblock, then Open read-only,
//                                         as clonefs check and info), open and
//                                         close DIR and print one line: "OK N"
//                                         (N hydrated regions) or the status
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "crash_workload.h"
#include "metadata/metadata.h"

using namespace clonefs::metadata;

namespace {

void Say(const std::string& s) {
  const char* p = s.data();
  size_t n = s.size();
  while (n > 0) {
    const ssize_t w = write(1, p, n);
    if (w <= 0) _exit(3);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

MetadataOptions Opts(const char* dir, uint64_t nr_regions) {
  MetadataOptions o;
  o.dir = dir;
  o.region_size = 4096;
  o.image_size = nr_regions * 4096;
  o.block_cache_bytes = 1 << 20;
  o.write_buffer_bytes = 256 << 10;
  return o;
}

int Workload(const char* dir, uint64_t seed) {
  auto md = Metadata::Open(testing::CrashOptions(dir));
  if (!md.ok()) {
    Say("X " + md.status().ToString() + "\n");
    return 2;
  }
  std::mt19937_64 rng(seed);
  for (uint64_t k = 1; k <= 100000; ++k) {
    for (const auto& op : testing::CommitOps(rng, testing::kCrashRegions)) {
      const clonefs::Status s = op.count == 1 ? (*md)->SetRegionHydrated(op.start)
                                              : (*md)->CondSetRange(op.start, op.count);
      if (!s.ok()) {
        Say("X " + s.ToString() + "\n");
        return 2;
      }
    }
    Say("B " + std::to_string(k) + "\n");
    const clonefs::Status s = (*md)->Commit();
    if (!s.ok()) {
      Say("X " + s.ToString() + "\n");
      return 2;
    }
    Say("E " + std::to_string(k) + "\n");
  }
  return 0;
}

// A mount's open (rw) or clonefs check's and info's (ReadSuperblock, then a
// read-only Open without identities).
clonefs::Result<std::unique_ptr<Metadata>> OpenAs(bool rw, const std::string& dir,
                                                  uint64_t nr_regions) {
  MetadataOptions o = Opts(dir.c_str(), nr_regions);
  if (!rw) {
    auto sb = Metadata::ReadSuperblock(dir);
    if (!sb.ok()) return sb.status();
    o.create_if_missing = false;
    o.read_only = true;
    o.verify_identities = false;
  }
  return Metadata::Open(o);
}

// One open per stdin line, so that a test can tell which damaged store made
// RocksDB abort the process (the line it got no answer to).
int Opens(uint64_t nr_regions) {
  std::string line;
  char c;
  while (read(0, &c, 1) == 1) {
    if (c != '\n') {
      line.push_back(c);
      continue;
    }
    auto md = OpenAs(line.rfind("rw ", 0) == 0, line.substr(3), nr_regions);
    line.clear();
    Say(md.ok() ? "OK " + std::to_string((*md)->NrHydratedRegions()) + "\n"
                : md.status().ToString() + "\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: md_child hold|tryopen|workload|opens DIR ARG\n");
    return 64;
  }
  const std::string mode = argv[1];
  if (mode == "workload") return Workload(argv[2], strtoull(argv[3], nullptr, 0));
  if (mode == "opens") return Opens(strtoull(argv[3], nullptr, 0));
  auto md = Metadata::Open(Opts(argv[2], strtoull(argv[3], nullptr, 0)));
  if (mode == "tryopen") {
    Say((md.ok() ? std::string("OK") : md.status().ToString()) + "\n");
    return !md.ok() && md.status().IsBusy() ? 0 : 1;
  }
  if (mode == "hold") {
    if (!md.ok()) {
      Say("X " + md.status().ToString() + "\n");
      return 2;
    }
    Say("READY\n");
    char c;
    while (read(0, &c, 1) > 0) {
    }
    return 0;
  }
  return 64;
}
