// SourceSpec: what the SOURCE argument of `clonefs mount` names, parsed once
// at the command line's edge so that everything after it deals with one kind.
//
// Forms (SPEC §9):
//   - a path (anything that does not start with "SCHEME://"): a file or a
//     block device, kFile;
//   - NBD, kNbd, reached through libnbd:
//       nbd://HOST[:PORT]/EXPORT            TCP (port 10809 by default)
//       nbds://HOST[:PORT]/EXPORT           TCP with TLS required
//       nbd+unix:///EXPORT?socket=PATH      Unix socket
//       nbds+unix:///EXPORT?socket=PATH     Unix socket with TLS
//     The export is the URI's path without its leading '/', percent-decoded
//     ("" is the server's default export). libnbd's query parameters
//     (socket=, tls-certificates=, tls-psk-file=) are passed on unchanged.
//   - HTTP(S), kHttp: http://… and https://…, served by an nbdkit curl
//     plugin that clonefs spawns (nbd_device.h);
//   - SSH, kSsh: ssh://[USER[:PASSWORD]@]HOST[:PORT]/PATH, served by the
//     nbdkit ssh plugin. PATH is absolute; "/~/PATH" is relative to the
//     remote user's home directory.
// Scheme names are case-insensitive. A password in the URI is kept in `uri`
// and `nbdkit_password` (memory only: the nbdkit that clonefs starts reads
// it from a pipe on file descriptor kNbdkitPasswordFd, never from its
// command line) and replaced by "***" in `display`, which is what every
// message, Name(), the log, status and the clone's records show.
//
// THREAD SAFETY: pure functions over values; SourceSpec is a value type.
#pragma once

#include <string>
#include <vector>

#include "base/result.h"

namespace clonefs {

struct SourceSpec {
  enum class Kind { kFile, kNbd, kHttp, kSsh };
  Kind kind = Kind::kFile;
  // The argument as given (for kFile, the path); for kNbd with its scheme
  // in lower case (the URI libnbd connects to: it knows no other case).
  std::string uri;
  // For messages and Device::Name(): `uri` with any password redacted.
  std::string display;
  // kNbd: the export name ("" = the server's default export).
  std::string export_name;
  // kHttp, kSsh: the nbdkit command line serving the source on stdin/stdout,
  // argv[0] being "nbdkit" (OpenNbdSource substitutes the configured binary
  // and appends the retry filter's settings). Empty for the other kinds.
  // A password given in the URL never appears in it: the URL is passed
  // without it and "password=-3" (kNbdkitPasswordFd) reads it from a pipe.
  std::vector<std::string> nbdkit_argv;
  // kHttp, kSsh: the URL's password (percent-decoded), "" if none.
  std::string nbdkit_password;

  // True for every kind reached over a network protocol (not kFile).
  bool IsRemote() const { return kind != Kind::kFile; }
};

// The descriptor on which a spawned nbdkit reads `nbdkit_password`.
constexpr int kNbdkitPasswordFd = 3;

// "file", "nbd", "http", "ssh".
const char* SourceKindName(SourceSpec::Kind kind);

// Parses a SOURCE argument. Errors:
//   - InvalidArgument for a malformed URI (the message names the expected
//     form) or an unknown scheme (the message lists the supported ones);
//   - NotSupported for nbds:// or nbds+unix:// when this libnbd was built
//     without TLS.
// A path is not checked here (existence and type are the opener's business).
Result<SourceSpec> ParseSource(const std::string& arg);

// `arg` with the relative file paths in an NBD URI's query (socket=,
// tls-certificates=, tls-psk-file=) made absolute against `cwd` (an
// absolute directory) and percent-encoded, so that the daemon, which runs
// from "/", reaches the files the user named: "nbd+unix:///?socket=n.sock"
// run from /srv becomes "nbd+unix:///?socket=/srv/n.sock". `arg` unchanged
// if it is a path, another scheme, has no such relative value, or does not
// parse (ParseSource reports that).
std::string WithAbsoluteQueryPaths(const std::string& arg, const std::string& cwd);

// `arg` as it may be shown or stored for people: ParseSource(arg).display
// for a URI (password replaced by "***", even when the rest is malformed),
// `arg` itself for a path.
std::string RedactSource(const std::string& arg);

// The identity key stored with a clone for a remote source: the NBD export
// name for kNbd (never a host, port, socket path or URL: those are transport
// details that may change between mounts), "" for kHttp and kSsh (their
// identity is the size and a content fingerprint, computed by the clone
// module), and "" for kFile (identified by its file attributes instead).
std::string SourceIdentityKey(const SourceSpec& spec);

// The identity key as the clone records it (FileIdentity::device_id of a
// remote source): "nbd export 'NAME'" for kNbd (the default export too), ""
// otherwise. The mount and `clonefs check` both use it.
std::string SourceIdentityDeviceId(const SourceSpec& spec);

}  // namespace clonefs
