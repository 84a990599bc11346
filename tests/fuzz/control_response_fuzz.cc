// A control response as the client reads it from the socket (a daemon of the
// same uid, or whatever listens at the socket path).
// Checks: a decoded response re-encodes (EncodeResponse) and decodes back to
// itself.
#include "control/protocol.h"
#include "fuzz_check.h"

namespace clonefs::fuzz {

void FuzzOne(std::string_view input) {
  using namespace control;
  Result<Response> r = DecodeResponse(input);
  if (!r.ok()) return;
  Result<Response> again = DecodeResponse(EncodeResponse(*r));
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->ok == r->ok);
  FUZZ_CHECK(again->text == r->text);
}

}  // namespace clonefs::fuzz
