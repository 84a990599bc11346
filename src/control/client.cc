#include "control/client.h"

#include <unistd.h>

#include "control/socket_io.h"

namespace clonefs::control {

Result<Response> CallControl(const std::string& socket_path, const std::vector<std::string>& words,
                             int timeout_ms) {
  Result<std::string> line = EncodeRequest(words);
  if (!line.ok()) return line.status();
  Result<int> fd = ConnectUnix(socket_path);
  if (!fd.ok()) return fd.status();
  const Deadline deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  Status s = WriteAll(*fd, *line, deadline);
  Result<std::string> wire = s.ok() ? ReadAll(*fd, kMaxResponseBytes, deadline)
                                    : Result<std::string>(s);
  close(*fd);
  if (!wire.ok()) return wire.status().WithContext("control request to " + socket_path);
  return DecodeResponse(*wire);
}

}  // namespace clonefs::control
