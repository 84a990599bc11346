#include "control/message.h"

#include <strings.h>

#include <cstdint>

#include "base/byte_size.h"
#include "control/units.h"
#include "engine/engine.h"

namespace clonefs::control {

const char kMessageUsage[] =
    "  enable_hydration\n"
    "  disable_hydration\n"
    "  hydration_threshold N     (0 .. 4294967295; 0 stops background copying)\n"
    "  hydration_batch_size N    (1 .. 4294967295)\n"
    "  rate BYTES_PER_S          (e.g. 200M, 50M/s, 1048576; K, M, G = 1024, 1024^2, 1024^3;\n"
    "                            0 = unlimited)\n"
    "  copy_on_read on|off       (keep what users read from the source in dest)\n"
    "  read_hints on|off         (hydrate ahead of readers and near recent reads first)\n";

namespace {

struct Spec {
  const char* keyword;
  Message::Kind kind;
  size_t nargs;  // arguments after the keyword
};

constexpr Spec kSpecs[] = {
    {"enable_hydration", Message::Kind::kEnableHydration, 0},
    {"disable_hydration", Message::Kind::kDisableHydration, 0},
    {"hydration_threshold", Message::Kind::kHydrationThreshold, 1},
    {"hydration_batch_size", Message::Kind::kHydrationBatchSize, 1},
    {"rate", Message::Kind::kRate, 1},
    {"copy_on_read", Message::Kind::kCopyOnRead, 1},
    {"read_hints", Message::Kind::kReadHints, 1},
};

Status Invalid(const std::string& what) {
  return Status::InvalidArgument(what + "; accepted messages:\n" + kMessageUsage);
}

}  // namespace

Result<Message> ParseMessage(const std::vector<std::string>& args) {
  if (args.empty()) return Invalid("no message given");
  const Spec* spec = nullptr;
  for (const Spec& s : kSpecs) {
    if (strcasecmp(args[0].c_str(), s.keyword) == 0) {
      spec = &s;
      break;
    }
  }
  if (spec == nullptr) return Invalid("unsupported message '" + args[0] + "'");
  if (args.size() - 1 != spec->nargs) {
    return Invalid("'" + std::string(spec->keyword) + "' takes " + std::to_string(spec->nargs) +
                   (spec->nargs == 1 ? " argument" : " arguments") + ", got " +
                   std::to_string(args.size() - 1));
  }
  Message m;
  m.kind = spec->kind;
  switch (spec->kind) {
    case Message::Kind::kEnableHydration:
    case Message::Kind::kDisableHydration:
      break;
    case Message::Kind::kHydrationThreshold:
    case Message::Kind::kHydrationBatchSize: {
      Result<uint64_t> v = ParseDecimal(args[1], UINT32_MAX);
      if (!v.ok()) {
        return Invalid("invalid value for '" + std::string(spec->keyword) +
                       "': " + v.status().message());
      }
      if (spec->kind == Message::Kind::kHydrationBatchSize && *v == 0) {
        return Invalid("invalid value for 'hydration_batch_size': must be at least 1");
      }
      m.value = *v;
      break;
    }
    case Message::Kind::kRate: {
      Result<uint64_t> v = ParseRate(args[1]);
      if (!v.ok()) return Invalid("invalid value for 'rate': " + v.status().message());
      m.value = *v;
      break;
    }
    case Message::Kind::kCopyOnRead:
    case Message::Kind::kReadHints: {
      if (strcasecmp(args[1].c_str(), "on") == 0) {
        m.value = 1;
      } else if (strcasecmp(args[1].c_str(), "off") == 0) {
        m.value = 0;
      } else {
        return Invalid("invalid value for '" + std::string(spec->keyword) + "': '" + args[1] +
                       "' is neither on nor off");
      }
      break;
    }
  }
  return m;
}

std::string FormatMessage(const Message& m) {
  for (const Spec& s : kSpecs) {
    if (s.kind != m.kind) continue;
    std::string out = s.keyword;
    if (m.kind == Message::Kind::kCopyOnRead || m.kind == Message::Kind::kReadHints) {
      out += m.value ? " on" : " off";
    } else if (s.nargs == 1) {
      out += " " + std::to_string(m.value);
    }
    return out;
  }
  return "";
}

clone::Settings SettingsChangeOf(const Message& m) {
  clone::Settings s;
  switch (m.kind) {
    case Message::Kind::kEnableHydration:
      s.hydration_enabled = true;
      break;
    case Message::Kind::kDisableHydration:
      s.hydration_enabled = false;
      break;
    case Message::Kind::kHydrationThreshold:
      s.hydration_threshold = static_cast<uint32_t>(m.value);
      break;
    case Message::Kind::kHydrationBatchSize:
      s.hydration_batch_size = static_cast<uint32_t>(m.value);
      break;
    case Message::Kind::kRate:
      s.rate_bytes_per_s = m.value;
      break;
    case Message::Kind::kCopyOnRead:
      s.copy_on_read = m.value != 0;
      break;
    case Message::Kind::kReadHints:
      s.read_hints = m.value != 0;
      break;
  }
  return s;
}

std::string ApplyMessage(Engine& engine, const Message& m) {
  switch (m.kind) {
    case Message::Kind::kEnableHydration:
      engine.EnableHydration(true);
      return "background hydration enabled";
    case Message::Kind::kDisableHydration:
      engine.EnableHydration(false);
      return "background hydration disabled";
    case Message::Kind::kHydrationThreshold:
      engine.SetHydrationThreshold(static_cast<uint32_t>(m.value));
      return "hydration_threshold set to " + std::to_string(m.value);
    case Message::Kind::kHydrationBatchSize:
      engine.SetHydrationBatchSize(static_cast<uint32_t>(m.value));
      return "hydration_batch_size set to " + std::to_string(m.value);
    case Message::Kind::kRate:
      engine.SetRate(m.value);
      return m.value == 0 ? "rate set to unlimited"
                          : "rate set to " + std::to_string(m.value) + " bytes/s (" +
                                FormatRate(m.value) + ")";
    case Message::Kind::kCopyOnRead:
      engine.SetCopyOnRead(m.value != 0);
      return m.value ? "copy-on-read on" : "copy-on-read off";
    case Message::Kind::kReadHints:
      engine.SetReadHints(m.value != 0);
      return m.value ? "read hints on" : "read hints off";
  }
  return "";
}

}  // namespace clonefs::control
