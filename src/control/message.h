// Control messages: dm-clone's messages plus clonefs's own, parsed by one pure
// function that the client (before sending) and the server (on receipt) both
// use.
//
// Accepted (keywords case-insensitive, exact argument counts):
//   enable_hydration                 0 arguments
//   disable_hydration                0 arguments
//   hydration_threshold N            N: decimal, 0 .. 2^32-1 (0 stops
//                                    background copying, as in dm-clone)
//   hydration_batch_size N           N: decimal, 1 .. 2^32-1
//   rate BYTES_PER_S                 a rate as base/byte_size.h ParseRate
//                                    reads it (binary units); 0 = unlimited
//
// Each message is also stored with the clone (SettingsChangeOf; the control
// server does it), so a later mount keeps it.
//
// THREAD SAFETY: ParseMessage, FormatMessage and SettingsChangeOf are pure. ApplyMessage calls
// Engine setters, which are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/status.h"
#include "clone/settings.h"

namespace clonefs {
class Engine;
}

namespace clonefs::control {

struct Message {
  enum class Kind {
    kEnableHydration,
    kDisableHydration,
    kHydrationThreshold,
    kHydrationBatchSize,
    kRate,
    kCopyOnRead,  // value: 1 on, 0 off
    kReadHints,   // value: 1 on, 0 off
  };
  Kind kind = Kind::kEnableHydration;
  // The argument of the valued messages (on = 1, off = 0); 0 for the others.
  uint64_t value = 0;

  bool operator==(const Message&) const = default;
};

// Parses a message given as words (argv style: args[0] is the keyword).
// Errors: InvalidArgument with a message that says what is wrong and lists
// what is accepted (kMessageUsage).
Result<Message> ParseMessage(const std::vector<std::string>& args);

// The canonical wire form, e.g. "hydration_threshold 64" or "rate 1048576";
// ParseMessage(split(FormatMessage(m))) == m.
std::string FormatMessage(const Message& m);

// Applies `m` to the engine and returns a one-line description of the new
// setting ("hydration_threshold set to 64").
std::string ApplyMessage(Engine& engine, const Message& m);

// The stored-settings change that `m` makes (rate -> rate_bytes_per_s,
// enable/disable_hydration -> hydration_enabled, ...): what a message stores
// with the clone.
clone::Settings SettingsChangeOf(const Message& m);

// The accepted messages, one per line, for error text and --help.
extern const char kMessageUsage[];

}  // namespace clonefs::control
