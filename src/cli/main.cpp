// lowbit: one CLI over liblowbit. Thin: parsing and printing only.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <new>
#include <string>

#include "cli/commands.h"
#include "cli/output.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/signals.h"

namespace {

// A descriptor of 0, 1 or 2 that is closed would be reused by the next file lowbit opens, and
// results written to "stdout" would land in it. Read-only /dev/null keeps the number taken and
// makes writes to a closed stdout fail (reported) instead of vanishing.
void reserve_std_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) != -1 || errno != EBADF) continue;
    const int n = open("/dev/null", fd == 2 ? O_WRONLY : O_RDONLY);
    if (n >= 0 && n != fd) {
      dup2(n, fd);
      close(n);
    }
  }
}

bool same_destination(int a, int b) {
  struct stat sa {
  }, sb{};
  if (fstat(a, &sa) != 0 || fstat(b, &sb) != 0) return false;
  if (isatty(a) && isatty(b)) return true;
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// One line on stderr, however the message came: newlines folded, very long messages (a huge
// pattern quoted back) shortened in the middle.
void print_error(std::string msg) {
  for (char& c : msg) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  constexpr size_t kMax = 2000;
  if (msg.size() > kMax)
    msg = msg.substr(0, kMax / 2) + " ... " + msg.substr(msg.size() - kMax / 2);
  std::fflush(stdout);
  // A streamed line (generate) going to the same terminal, file or pipe as stderr: end it so
  // that the error starts a line of its own.
  if (lowbit::cli::out_line_open() && same_destination(STDOUT_FILENO, STDERR_FILENO)) {
    std::fputc('\n', stderr);
  }
  std::fprintf(stderr, "lowbit: %s\n", msg.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  reserve_std_fds();
  lowbit::signals::install();
  CLI::App app{"lowbit: quantize, evaluate and run LLMs on a CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lowbit 0.1.0");
  lowbit::cli::Runner run;
  lowbit::cli::add_tokenize(app, &run);
  lowbit::cli::add_generate(app, &run);
  lowbit::cli::add_eval(app, &run);
  lowbit::cli::add_bench(app, &run);
  lowbit::cli::add_synth(app, &run);
  lowbit::cli::add_quantize(app, &run);
  lowbit::cli::add_export(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, exit 2, like every other bad input.
    print_error(std::string(e.what()) + " (see --help)");
    return 2;
  } catch (const lowbit::Error& e) {
    print_error(e.what());
    return 2;
  }
  if (!run) return 0;
  try {
    const int rc = run();
    lowbit::cli::finish_stdout();
    return rc;
  } catch (const lowbit::cli::StdoutClosed&) {
    return 141;  // the reader went away (a pager quit): as if killed by SIGPIPE, quietly
  } catch (const lowbit::Error& e) {
    print_error(e.what());
    return 2;
  } catch (const std::filesystem::filesystem_error& e) {
    const std::string where = e.path1().empty() ? "file system" : e.path1().string();
    print_error(where + ": " + lowbit::errno_text(e.code().value()));
    return 2;
  } catch (const std::bad_alloc&) {
    print_error("out of memory");
    return 2;
  } catch (const std::exception& e) {
    print_error(std::string("internal error: ") + e.what());
    return 1;
  }
}
