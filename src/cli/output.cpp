#include "cli/output.h"

#include <cerrno>
#include <cstdio>

#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit::cli {

namespace {

bool g_line_open = false;

[[noreturn]] void write_failed(int err) {
  if (err == EPIPE) throw StdoutClosed{};
  fail("stdout", "write error: {}", errno_text(err != 0 ? err : EIO));
}

}  // namespace

void out(std::string_view s) {
  if (s.empty()) return;
  errno = 0;
  if (std::fwrite(s.data(), 1, s.size(), stdout) != s.size() || std::ferror(stdout)) {
    write_failed(errno);
  }
  g_line_open = s.back() != '\n';
}

void out_flush() {
  errno = 0;
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) write_failed(errno);
}

bool out_line_open() { return g_line_open; }

void finish_stdout() {
  out_flush();
  errno = 0;
  if (std::fclose(stdout) != 0) write_failed(errno);
}

}  // namespace lowbit::cli
