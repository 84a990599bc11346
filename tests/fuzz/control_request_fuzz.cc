// A control request as the daemon receives it from any process of the uid:
// one line, split (SplitRequest), answered (HandleRequest over a fake
// engine), and the answer encoded for the wire.
// Checks: the words re-encode (EncodeRequest) and split back to themselves;
// the response decodes (DecodeResponse) to what was sent.
#include <string>
#include <vector>

#include "base/log.h"
#include "control/fake_engine.h"
#include "control/protocol.h"
#include "control/request_handler.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {

void FuzzOne(std::string_view input) {
  static const bool quiet = [] {
    SetLogLevel(LogLevel::kError);
    return true;
  }();
  (void)quiet;
  using namespace control;
  Result<std::vector<std::string>> words = SplitRequest(input);
  if (!words.ok()) return;
  Result<std::string> line = EncodeRequest(*words);
  FUZZ_CHECK(line.ok());
  FUZZ_CHECK(!line->empty() && line->back() == '\n');
  Result<std::vector<std::string>> again = SplitRequest(line->substr(0, line->size() - 1));
  FUZZ_CHECK(again.ok() && *again == *words);

  control::testing::FakeEngineForControlTests engine;
  ControlInfo info;
  info.mountpoint = "/mnt/clone";
  RequestContext ctx;
  ctx.engine = &engine;
  ctx.info = &info;
  Response r = HandleRequest(ctx, *words);
  Result<Response> back = DecodeResponse(EncodeResponse(r));
  FUZZ_CHECK(back.ok());
  FUZZ_CHECK(back->ok == r.ok);
  // An ok payload travels as lines: a text without its final '\n' gains one.
  std::string sent = r.text;
  if (r.ok && !sent.empty() && sent.back() != '\n') sent += '\n';
  FUZZ_CHECK(back->text == sent);
}

}  // namespace clonefs::fuzz
