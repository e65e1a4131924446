// Results on stdout, checked: a write that fails (disk full, a closed descriptor, a reader that
// went away) ends the command with an error instead of exit 0 (docs/RELIABILITY.md).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace lowbit::cli {

// Thrown when the reader of stdout went away (EPIPE): main ends quietly with exit code 141, as a
// process killed by SIGPIPE would, after cleaning up.
struct StdoutClosed {};

// Writes `s` to stdout. Throws StdoutClosed, or Error("stdout: write error: ...").
void out(std::string_view s);
template <typename... Args>
void outf(fmt::format_string<Args...> f, Args&&... args) {
  out(fmt::format(f, std::forward<Args>(args)...));
}
// Pushes buffered output to the file or pipe (same errors as out).
void out_flush();
// Whether the last character written was not a newline (a streamed line is still open).
bool out_line_open();
// At the end of a successful command: flushes and closes stdout, so that a failure of the last
// write is seen (same errors as out).
void finish_stdout();

}  // namespace lowbit::cli
