// Text from users and file systems (file names, paths) as it may be shown on
// a terminal or in a log line.
//
// THREAD SAFETY: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace clonefs {

// `s` with each control character (bytes 0x00-0x1f and 0x7f) written as
// \xNN, so that printing it can neither move the cursor, change colours nor
// start a new line. Other bytes (UTF-8 included) are kept.
std::string Printable(std::string_view s);

// True if `s` holds a control character (one Printable would escape).
bool HasControlCharacter(std::string_view s);

// `v` as one word for a POSIX shell, to paste into a command: bare when it
// holds only letters, digits and _-.,/:=+@%, else single-quoted (a ' as '\'').
// "" is ''.
std::string ShellWord(std::string_view v);

}  // namespace clonefs
