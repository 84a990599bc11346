// IdentityDifferences (metadata.h): the one place that decides whether a
// recorded file identity and an observed one are the same file. Used by
// Metadata::Open and by `clonefs check`, so both give the same verdict.
#include "base/hex.h"

#include "metadata/metadata.h"

namespace clonefs::metadata {
namespace {

std::string Hex(uint64_t v) { return FingerprintHex(v); }

bool Differ(uint64_t recorded, uint64_t observed) {
  return recorded != 0 && observed != 0 && recorded != observed;
}

}  // namespace

std::vector<std::string> IdentityDifferences(const std::string& which,
                                             const FileIdentity& recorded,
                                             const FileIdentity& observed) {
  std::vector<std::string> diffs;
  const std::string& w = which;
  if (Differ(recorded.size, observed.size)) {
    diffs.push_back(w + " size: metadata has " + std::to_string(recorded.size) + ", file has " +
                    std::to_string(observed.size));
  }
  const bool by_device_id = !recorded.device_id.empty() && !observed.device_id.empty();
  const bool both_remote = (recorded.flags & observed.flags & FileIdentity::kRemote) != 0;
  if (by_device_id && both_remote && recorded.device_id != observed.device_id) {
    diffs.push_back(w + " export: metadata has '" + recorded.device_id + "', server has '" +
                    observed.device_id + "' (another export)");
  } else if (by_device_id && recorded.device_id != observed.device_id) {
    diffs.push_back(w + " device: metadata has '" + recorded.device_id + "', device has '" +
                    observed.device_id + "' (another disk or backing file behind this device)");
  }
  if (!by_device_id && Differ(recorded.inode, observed.inode)) {
    diffs.push_back(w + " inode: metadata has " + std::to_string(recorded.inode) +
                    ", file has " + std::to_string(observed.inode) + " (a different file)");
  }
  if (Differ(static_cast<uint64_t>(recorded.btime_ns), static_cast<uint64_t>(observed.btime_ns))) {
    diffs.push_back(w + " birth time: metadata has " + std::to_string(recorded.btime_ns) +
                    " ns, file has " + std::to_string(observed.btime_ns) +
                    " ns (the file was removed and created again)");
  }
  if ((recorded.flags & observed.flags & FileIdentity::kGeneration) != 0 &&
      recorded.generation != observed.generation) {
    diffs.push_back(w + " inode generation: metadata has " + std::to_string(recorded.generation) +
                    ", file has " + std::to_string(observed.generation) +
                    " (the file was removed and created again since the clone last used it, "
                    "under the same inode number)");
  }
  const bool mtime_meaningful =
      ((recorded.flags | observed.flags) & FileIdentity::kMtimeUnstable) == 0;
  if (mtime_meaningful && Differ(static_cast<uint64_t>(recorded.mtime_ns),
                                 static_cast<uint64_t>(observed.mtime_ns))) {
    diffs.push_back(w + " mtime: metadata has " + std::to_string(recorded.mtime_ns) +
                    " ns, file has " + std::to_string(observed.mtime_ns) +
                    " ns (the file was modified)");
  }
  const char* fps[2] = {" fingerprint", " wide fingerprint"};
  const uint64_t rec[2] = {recorded.fingerprint, recorded.fingerprint2};
  const uint64_t obs[2] = {observed.fingerprint, observed.fingerprint2};
  for (int i = 0; i < 2; ++i) {
    if (!Differ(rec[i], obs[i])) continue;
    diffs.push_back(w + fps[i] + " differs: the " + w +
                    " file was replaced or modified (metadata has " + Hex(rec[i]) +
                    ", file has " + Hex(obs[i]) + ")");
  }
  return diffs;
}

}  // namespace clonefs::metadata
