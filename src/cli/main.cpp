// lowbit: one CLI over liblowbit. Thin: parsing and printing only.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <new>

#include "cli/commands.h"
#include "lowbit/util/error.h"

int main(int argc, char** argv) {
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
    std::fprintf(stderr, "lowbit: %s (see --help)\n", e.what());
    return 2;
  } catch (const lowbit::Error& e) {
    std::fprintf(stderr, "lowbit: %s\n", e.what());
    return 2;
  }
  if (!run) return 0;
  try {
    return run();
  } catch (const lowbit::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nlowbit: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "lowbit: out of memory\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lowbit: internal error: %s\n", e.what());
    return 1;
  }
}
