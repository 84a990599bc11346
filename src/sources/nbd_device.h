// NbdDevice: a remote source (SPEC §9) as a read-only Device, over libnbd.
//
// WHAT IT SERVES. An NBD export (nbd://, nbds://, nbd+unix://, nbds+unix://)
// reached directly, or an HTTP(S) or SSH URL served by an nbdkit that each
// connection spawns as its own child (nbdkit_child.h: its standard error on
// a pipe, a password on a descriptor), connected with nbd_aio_connect_socket:
//
//   nbdkit -r -s --exit-with-parent --filter=retry curl url=URL protocols=http,https
//          [user=U password=-3]
//   nbdkit -r -s --exit-with-parent --filter=retry ssh host=H path=P [user=U] [port=N]
//          [password=-3]
//
// followed by retry-exponential=no retry-delay=1 retries=<timeout in s>.
// -s serves one NBD connection on the child's stdin/stdout, so nbd_close
// ends it; --exit-with-parent ends it if clonefs dies (the "parent" of
// PR_SET_PDEATHSIG is the forking thread: every connect is made by the
// connection's own I/O thread, which lives as long as the connection). A
// dead nbdkit is a dropped connection, replaced by the reconnect logic.
// Filters: retry, because an HTTP or SSH session that drops (a web server or
// sshd restarting, a NAT timeout) is then reopened inside nbdkit and the
// request retried once a second, up to the source timeout, instead of
// failing to clonefs, which would only retry for a second or so. Not
// readahead or cache: clonefs hydrates into dest itself and keeps its own
// bytes in flight (the copier's pipelining), so a cache would hold a second
// copy of what dest already holds and readahead would fetch bytes twice or
// fetch bytes nobody asked for, competing with the copier for the link.
// nbdkit 1.32's curl and ssh plugins serialize requests
// (thread_model=serialize_requests), so a spawned source opens
// `spawned_connections` connections (one nbdkit each) for reads to overlap.
//
// CONNECTIONS. `max_connections` connections when the server advertises
// multi-conn, else one; each has one nbd_handle and one I/O thread running
// its own poll loop (nbd_aio_get_fd/get_direction/notify_read/notify_write,
// plus an eventfd that callers write to after queueing work). Only that
// thread calls libnbd on its handle, so libnbd's callbacks (which run with
// the handle lock held) run there too: they only record a result; copies
// and user callbacks run after libnbd returns. With several connections,
// ReadAsync (the copier's) does not use the first one, so a user's Read
// (and block status) is not queued behind the copier's bytes in flight --
// unless the first is the only one up. A connection that is down after
// having been up hands the pieces waiting on it (those in flight when it
// dropped, those queued since) to one that is up; it keeps them only while
// none is. So a server that comes back with fewer client slots than it had
// (another client took one, a lower limit) serves every read through the
// connections it took, while the others keep trying to reconnect.
//
// REQUESTS. A Read or ReadAsync is split into pieces of at most the request
// size (max_request_bytes, or spawned_request_bytes for http/ssh; never
// above the server's maximum block size, nor libnbd's 64 MiB), aligned to
// the server's minimum block size (the last one of an export whose size is
// not a multiple of it ends at the export's end: libnbd's own alignment
// check is off, and the server serves or refuses it), spread over the
// connections (the one
// with the fewest pieces outstanding, preferring connected ones), with up
// to 64 MiB (at least 64 pieces) in flight per connection; more wait in
// the connection's queue. A Read's pieces read into buffers they own
// (reused through a pool), copied into the caller's buffer only while the
// caller still waits; a caller that gave up (timeout, interrupt) gets
// its buffer back untouched, and the piece's late answer is dropped. A
// ReadAsync of whole server blocks (the copier's) is read straight into the
// caller's buffer, with no copy; its done is called once libnbd is finished
// with every piece (nbd_request.h, BUFFERS).
//   - Deadline: every request has one, `timeout_ns` after it was issued.
//     Read waits until then (ETIMEDOUT, naming the source and the timeout)
//     and polls the thread's CancelToken every 50 ms (EINTR, "read
//     interrupted"). ReadAsync's done gets the same ETIMEDOUT from the I/O
//     thread, so a copier never waits forever: a connection holding a
//     direct piece past its deadline is closed (and reconnected), which
//     is what frees the caller's buffer.
//   - Server errors: a piece the server failed is retried after 100, 200
//     and 400 ms while the deadline allows, then fails with the server's
//     errno (EIO, ...). EINVAL, EPERM, ENOTSUP, EOPNOTSUPP and ERANGE are
//     not retried (the server refused the request itself). A read the
//     server answered as a success whose chunks do not fill it (they
//     overlap, or are missing: libnbd checks neither, and the buffer is not
//     zeroed first) is such a failure too, with EIO: its bytes are never
//     passed on.
//   - Reconnect: when a connection dies (EOF, socket error, nbdkit gone, a
//     failed notify, or an answer that says the link is over: ESHUTDOWN
//     from a server shutting down, ENOTCONN, ECONNRESET, EPIPE...; those
//     pieces are reissued, never failed with that errno), its I/O thread reports kReconnecting
//     (since: the wall clock at the drop), connects again with backoff (100 ms doubling to 2 s, for
//     as long as the device lives; asynchronously, so destruction never waits for a connect; an
//     attempt that does not finish within the timeout is abandoned and retried; the delay starts
//     again at 100 ms only after a connection that stayed ready for 3 s, so a server that
//     completes the handshake and drops the connection at once sees it grow too), checks that the
//     size is unchanged and then reissues every piece that was in flight and is still wanted
//     (Health().retries counts reissued and retried pieces, .reconnects the
//     re-established connections). Requests keep their deadlines meanwhile.
//     If the size changed, every request fails with Mismatch ("source size
//     changed from A to B bytes") from then on, and CheckUnchanged says so.
//     With an identity check set, the fingerprints are checked too before
//     the pieces are reissued (IDENTITY).
//     Name resolution of nbd:// hosts happens inside libnbd's connect and
//     may block the connection's thread for as long as the resolver takes.
//
// HOLES. The handle asks for the "base:allocation" meta context. NextData
// and NextHole answer from NBD block status, queried up to 1 GiB at a time
// and cached for the device's lifetime (the source is read-only). An extent
// flagged NBD_STATE_ZERO reads as zeros and counts as a hole (never read);
// NBD_STATE_HOLE alone does not: the NBD protocol only promises that such a
// block is unallocated, not that it reads as zeros, and clonefs hydrates a
// hole by zeroing dest. A server without base:allocation answers "all data"
// (NextData(off) == off, NextHole(off) == Size()). Errors (timeouts
// included) are returned as Status; callers treat them as "data".
//
// IDENTITY. SetIdentityCheck (device.h) gives the device the mount's own
// identity check (clone::RemoteIdentityCheck). It runs:
//   - after every reconnect that found the size unchanged, through that
//     connection only (a PinnedView), before it serves anything
//     (nbd_connection.h, VERIFYING);
//   - from CheckUnchanged, at most every identity_recheck_ns (2 s after a
//     source error, if sooner), on a thread of its own, while every
//     connection is up: for NBD through the device's connections, and when
//     that fails (an export that shrank answers reads past its new end with
//     errors) through a fresh connection, closed after; for a spawned
//     source always through a fresh nbdkit. A fresh connection's handshake
//     gives the source's current size (an NBD server says it once per
//     connection, the curl plugin learns it once, at its start).
// For an http(s):// source whose server gave a validator at open
// (http_validator.h; every nbdkit then sends it as a precondition, so a
// replaced file is refused, 412), the re-check first asks for the
// validator again, and a changed one is a Mismatch; this part runs even
// while connections are down (a replaced file fails their reconnects).
// A Mismatch from either makes the source fatal as a size change does
// (every request, every answer still to arrive and CheckUnchanged fail with
// it; the cached extents are dropped; a connection with pieces in flight is
// closed, retiring them, and none that is down is connected again); an error that says nothing (a
// read of the check failed) drops the reconnected connection, or is logged for a periodic check.
// One check reads 35 samples (320 KiB), issued at once.
//
// RANGE CHECK (http(s):// only; range_check.h). nbdkit's curl plugin hands
// on the first bytes of whatever body the web server sends, so a server
// that answers a Range request with the whole file (200) makes a read at
// any offset return the file's first bytes. OpenNbdSource reads the first
// 64 KiB; from then on a piece (one HTTP request) at a non-zero offset
// whose answer starts with them is only passed on once a one-byte probe
// read shows the server honours Range (a genuine copy of those bytes);
// otherwise the Read or ReadAsync fails with EIO ("... ignores HTTP Range
// requests ...", also the source's last error). Not armed when the first
// 64 KiB are one byte value (all zeros, say).
//
// OTHER CALLS. Size() is the server's size at open. Name() is the display
// URI (password redacted). SpliceFd() is -1. Write, Zero and Flush fail
// with Permission (read-only). AsyncReads() is true; SharesReadQueue() is
// true with one connection (a user's Read then queues behind the copier's
// ReadAsyncs: BackgroundCopier, SHARED LINK). Health() reports
// kChanged (since the change was found, with what differs) once the source
// is fatal (a size or identity mismatch, REQUESTS and IDENTITY), else
// kReconnecting while no connection is up (since the last one dropped),
// else kStalled while any
// piece has been in flight longer than the timeout, else kConnected;
// oldest_request_unix_ns is when the oldest piece in flight on a ready
// connection was sent; its counters include bytes_read (successful bytes
// from the server) and requests (pieces sent, including retries and block
// status queries).
//
// RELEASE. Release() (the clone became complete) stops new requests (they
// fail with EIO, "released"), waits for the Reads and block status queries
// in progress (they end by their deadline at the latest), then stops every
// connection -- handles closed, spawned nbdkits ended, no reconnect -- so
// the server can shut down. Health() reports kReleased from then on.
//
// THREAD SAFETY: every method may be called from any thread concurrently.
// ReadAsync's done runs on an I/O thread (or on the caller's thread when the
// request fails before it was queued: a bad range, a size change, a device
// being destroyed); done may issue new requests (ReadAsync) but must not
// block for long (it delays every other piece on that connection), call
// Read, NextData or NextHole (they would wait for an I/O thread), nor
// destroy the device.
//
// LIFECYCLE. OpenNbdSource connects the first connection before returning
// (no reconnect loop at open: a source that cannot be reached fails at
// once), then the others, keeping those whose handshake ends within 2 s
// (4 times what the first took, if longer; the timeout at most): a server
// that offers multi-conn may still take fewer clients (a warning is
// logged).
// The destructor stops the I/O threads: requests not yet answered fail
// with Aborted (each done is called exactly once, from its I/O thread),
// spawned nbdkit processes are killed and reaped, handles closed. No Read
// may be in progress when the device is destroyed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "devices/device.h"
#include "sources/source_spec.h"

namespace clonefs {

struct NbdSourceOptions {
  // How long a request may wait for its answer (see REQUESTS), and how long
  // connecting may take at open. Default: 30 s.
  uint64_t timeout_ns = 30'000'000'000;
  // Connections to an NBD server that advertises multi-conn (one
  // otherwise). Default: 4.
  int max_connections = 4;
  // Connections (nbdkit processes) for an http(s):// or ssh:// source,
  // whose plugins serialize requests. Default: 8.
  int spawned_connections = 8;
  // Largest request sent to an NBD server; lowered to the server's maximum
  // block size and to libnbd's 64 MiB, rounded down to the server's
  // minimum block size. NBD pipelines requests, so small ones cost no round
  // trips, and nbdkit serves 256 KiB requests 3-4x faster than 4 MiB ones
  // (it allocates and faults in a fresh buffer per request); nbdcopy's
  // default too (bench/sources/run.sh). Default: 256 KiB.
  size_t max_request_bytes = size_t{256} << 10;
  // The same for an http(s):// or ssh:// source: its plugin serializes
  // requests and each costs a round trip to the web or SSH server, so
  // requests are large. Default: 4 MiB.
  size_t spawned_request_bytes = size_t{4} << 20;
  // How often the source's identity is re-checked without a reconnect once
  // an identity check is set (IDENTITY), while the device is in use (the
  // re-check starts from CheckUnchanged); 2 s after a source error if that
  // is sooner. 0 = only after reconnects. Default: 10 s.
  uint64_t identity_recheck_ns = 10'000'000'000;
  // The nbdkit binary for http(s):// and ssh:// sources, looked up in PATH
  // if it has no '/'. Default: "" = $CLONEFS_NBDKIT if set, else "nbdkit".
  std::string nbdkit_path;
};

// Opens a kNbd, kHttp or kSsh source. Errors: InvalidArgument for a kFile
// spec; NotFound if the nbdkit binary for http/ssh cannot be found; IoError
// "cannot connect to SOURCE: <libnbd's error>; check that the server is
// running and the URI is right" when the first connection fails or does
// not finish within the timeout (for http/ssh the message says nbdkit's plugin could
// not open the URL, with the last lines nbdkit wrote on its standard error
// -- an HTTP status, "server does not support 'range'" -- and, for
// http(s), what to do about it); IoError if the connections disagree about
// the size. For http(s):// it first asks the server for the file's
// validator (FetchHttpValidator, within the timeout) and gives each nbdkit
// its precondition; a server that gives none, or a HEAD that fails, is
// logged and the source opened without one.
Result<std::unique_ptr<Device>> OpenNbdSource(const SourceSpec& spec,
                                              const NbdSourceOptions& options);

}  // namespace clonefs
