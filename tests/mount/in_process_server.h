// Ending an in-process FuseServer in the mount-tier tests that mount one
// over a test engine (fuse_layer_test, uring_transport_test).
#pragma once

#include <unistd.h>

#include "base/status.h"
#include "fuse/fuse_server.h"

namespace clonefs::testing {

// Unmounts `server` once the exposed file is no longer open: the kernel
// may still be releasing a descriptor a test just closed, so a Busy refusal
// is retried for up to 2 s. Returns the last RequestUnmount status.
inline Status UnmountWhenIdle(fuse::FuseServer* server) {
  Status u;
  for (int i = 0; i < 100; ++i) {
    u = server->RequestUnmount();
    if (!u.IsBusy()) break;
    usleep(20000);
  }
  return u;
}

}  // namespace clonefs::testing
