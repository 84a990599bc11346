// clonefs message MOUNTPOINT KEYWORD [ARG]
#include <ostream>

#include "control/client.h"
#include "control/command_util.h"
#include "control/commands.h"
#include "control/message.h"

namespace po = boost::program_options;

namespace clonefs::control {
namespace {

constexpr char kUsage[] = "clonefs message MOUNTPOINT KEYWORD [ARG]   (--socket PATH to skip discovery)";

}  // namespace

int RunMessageCommand(const std::vector<std::string>& args, const CommandIo& io) {
  // Options may only come before MOUNTPOINT: message words are passed through
  // untouched (so "rate -1" is refused by the message parser, not taken for
  // an option).
  size_t first_word = 0;
  while (first_word < args.size() && !args[first_word].empty() && args[first_word][0] == '-') {
    if (args[first_word] == "--socket" && first_word + 1 < args.size()) first_word++;
    first_word++;
  }
  std::vector<std::string> opts(args.begin(), args.begin() + static_cast<long>(first_word));
  std::string socket;
  po::options_description desc("Options");
  desc.add_options()
      ("help,h", "show this help and the accepted messages")
      ("socket", po::value(&socket), "talk to this control socket instead of discovering it");
  po::variables_map vm;
  bool help = false;
  if (!ParseArgs("message", kUsage, opts, desc, po::positional_options_description(), &vm, io,
                 &help))
    return kExitUsage;
  if (help) {
    io.out << "Messages:\n" << kMessageUsage << "\n" << ExitCodesHelp(kMessageExitCodes);
    return kExitOk;
  }
  std::string mountpoint;
  std::vector<std::string> words(args.begin() + static_cast<long>(first_word), args.end());
  if (socket.empty()) {
    if (words.empty()) {
      io.err << "clonefs message: MOUNTPOINT is required\nusage: " << kUsage << "\n";
      return kExitUsage;
    }
    mountpoint = words.front();
    words.erase(words.begin());
  }
  Result<Message> m = ParseMessage(words);
  if (!m.ok()) {
    io.err << "clonefs message: " << m.status().message();
    return kExitUsage;
  }
  Result<std::string> sock = SocketFor(mountpoint, socket);
  if (!sock.ok()) {
    io.err << "clonefs message: " << sock.status().message() << "\n";
    return kExitFailure;
  }
  std::vector<std::string> request = {"message"};
  request.insert(request.end(), words.begin(), words.end());
  Result<Response> r = CallControl(*sock, request);
  if (!r.ok()) {
    io.err << "clonefs message: " << ExplainUnreachable(mountpoint, r.status()) << "\n";
    return kExitFailure;
  }
  if (!r->ok) {
    io.err << "clonefs message: " << r->text << (r->text.ends_with('\n') ? "" : "\n");
    return kExitFailure;
  }
  io.out << r->text;
  return 0;
}

}  // namespace clonefs::control
