#include "fuse/unmount_messages.h"

#include <algorithm>

namespace clonefs::fuse {
namespace {

std::string Seconds(uint64_t s) { return std::to_string(s) + " s"; }

// Whole seconds from `since_unix_ns` to `now_unix_ns`; 0 if unknown.
uint64_t SecondsSince(uint64_t since_unix_ns, uint64_t now_unix_ns) {
  if (since_unix_ns == 0 || now_unix_ns <= since_unix_ns) return 0;
  return (now_unix_ns - since_unix_ns) / 1'000'000'000ull;
}

std::string FollowLog(const std::string& log_file) {
  return log_file.empty() ? std::string("its log (syslog)") : "its log: " + log_file;
}

}  // namespace

std::string InUseMessage(const std::string& mp, const std::string& file,
                         const std::vector<std::string>& loops, bool daemon_alive) {
  std::string m = file + " is still in use";
  if (!loops.empty()) {
    std::string list;
    for (const auto& l : loops) list += (list.empty() ? "" : ", ") + l;
    m += " by loop device " + list + "; unmount what is mounted from it, then detach it: ";
    for (const auto& l : loops) m += "losetup -d " + l + "; ";
    m += "then run clonefs unmount " + mp + " again";
  } else {
    m += " (an open file, a VM or a loop device; find loop devices with: losetup -j " + file +
         "); stop its users (e.g. shut the VM down), then run clonefs unmount " + mp + " again";
  }
  if (daemon_alive) {
    m += ". clonefs unmount --force detaches lazily instead (the clone keeps serving its users "
         "and stops when the last one closes the file)";
  } else {
    m += ". Its daemon has died, so nothing serves the file: its users get errors (transport "
         "endpoint is not connected). clonefs unmount --force detaches the mount lazily "
         "instead; the next mount resumes the clone from its last commit";
  }
  return m;
}

std::string UnmountOwnerProblem(const std::string& mp, std::optional<uint32_t> owner,
                                uint32_t euid) {
  if (euid == 0 || !owner || *owner == euid) return "";
  return mp + " is mounted by uid " + std::to_string(*owner) +
         "; only that user or root can unmount it (you are uid " + std::to_string(euid) + ")";
}

std::string StillStoppingMessage(const std::string& mp, int64_t pid, uint32_t waited_s,
                                 const std::string& log_file,
                                 const std::optional<StoppingDaemon>& daemon,
                                 const std::string& why_not, uint64_t now_unix_ns) {
  std::string m = "unmounted " + mp + ", but daemon " + std::to_string(pid) +
                  " has not exited after " + Seconds(waited_s);
  const std::string locked =
      "; until it has, this clone cannot be mounted again (its metadata is locked)";
  if (!daemon) {
    return m + ", and it could not be asked why (" + why_not +
           "). It may be waiting for reads from its source that are still in flight (from a "
           "remote source they give up after the source timeout, --source-timeout, 30 s "
           "unless the clone was mounted with another; from a file, when its storage answers) "
           "or for its final commit to reach the disk. It exits by itself once done" +
           locked + ". Follow it in " + FollowLog(log_file);
  }
  const StoppingDaemon& d = *daemon;
  const bool down = d.source_state == "reconnecting" || d.source_state == "stalled";
  const uint64_t silent = std::max(down ? SecondsSince(d.source_since_unix_ns, now_unix_ns) : 0,
                                   SecondsSince(d.oldest_request_unix_ns, now_unix_ns));
  if (down || silent >= 1) {
    m += ": it is waiting for reads from the source " + d.source + ", which has not answered";
    if (silent >= 1) m += " for " + Seconds(silent);
    if (down) m += " (" + d.source_state;
    if (down && !d.source_last_error.empty()) m += ": " + d.source_last_error;
    if (down) m += ")";
    if (!d.source_is_remote) {
      // A file source's reads in the copier have no deadline: a read the
      // kernel has not answered cannot be abandoned.
      return m +
             ". Nothing is lost: those reads end when the storage of the source (an NFS "
             "server, a disk) answers, then the daemon makes its final commit and exits by "
             "itself" +
             locked + ". Get that storage answering again; if it cannot be, kill -9 " +
             std::to_string(pid) +
             " ends the daemon without losing what it committed (it commits every second), "
             "and the next mount resumes from there. Follow it in " +
             FollowLog(log_file);
    }
    const uint64_t timeout_s = (d.source_timeout_ms + 999) / 1000;
    m += ". Nothing is lost: the hydrations in flight give up on those reads once they have "
         "waited the source timeout (" +
         Seconds(timeout_s);
    if (silent < timeout_s) m += ", about " + Seconds(timeout_s - silent) + " from now";
    m += "), then the daemon makes its final commit and exits by itself" + locked +
         ". To have it finish sooner, get the source answering again (its server or the "
         "network). Follow it in " +
         FollowLog(log_file);
    return m;
  }
  m += ": its source is answering, so it is still finishing ";
  m += d.hydrating_regions != 0 ? std::to_string(d.hydrating_regions) +
                                      (d.hydrating_regions == 1 ? " hydration" : " hydrations") +
                                      " in flight and then its final commit"
                                : std::string("its final commit");
  m += " (flushing dest and writing the metadata, which a slow or busy disk can make long)";
  if (!d.health.empty() && d.health != "ok") m += "; its health: " + d.health;
  m += ". It exits by itself once done" + locked + ". Follow it in " + FollowLog(log_file);
  return m;
}

}  // namespace clonefs::fuse
