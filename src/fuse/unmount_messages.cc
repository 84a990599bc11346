#include "fuse/unmount_messages.h"

namespace clonefs::fuse {

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

}  // namespace clonefs::fuse
