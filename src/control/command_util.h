// Helpers shared by the control subcommands (internal to src/control).
#pragma once

#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "base/result.h"
#include "control/commands.h"

namespace clonefs::control {

// The control socket to talk to: `socket_opt` if set, otherwise discovered
// from the mountpoint (ResolveControlSocket). Errors are the user-facing
// messages of ResolveControlSocket, or InvalidArgument if neither is given.
Result<std::string> SocketFor(const std::string& mountpoint, const std::string& socket_opt);

// What to tell the user when a request to the daemon of `mountpoint` failed
// with the transport error `s` (socket gone, nobody listening): looks at the
// mountpoint again and says what it is now (no longer a clonefs mount, a
// dead daemon, ...) and what to do, rather than the bare connect error. With
// no mountpoint (--socket), `s`'s message and a question whether the daemon
// runs. Reads the filesystem.
std::string ExplainUnreachable(const std::string& mountpoint, const Status& s);

// Parses `args` with `desc` and `pos`; on error prints "clonefs CMD: ..." and
// the usage to io.err and returns false. Sets *help when --help was given
// (the usage is then printed to io.out).
bool ParseArgs(const char* cmd, const char* usage_line, const std::vector<std::string>& args,
               const boost::program_options::options_description& desc,
               const boost::program_options::positional_options_description& pos,
               boost::program_options::variables_map* vm, const CommandIo& io, bool* help);

// Sleeps for `seconds` (fractional allowed).
void SleepSeconds(double seconds);

}  // namespace clonefs::control
