// Each `lowbit <command>` lives in its own cmd_<name>.cpp and registers itself here: it adds its
// subcommand and options to `app`, and when the subcommand is chosen its parse callback stores the
// work to do in `*run` (which returns the exit code). lowbit::Error thrown by the work becomes
// "lowbit: <message>" on stderr and exit code 2 (see main.cpp).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>

namespace lowbit::cli {

using Runner = std::function<int()>;
void add_tokenize(CLI::App& app, Runner* run);
void add_generate(CLI::App& app, Runner* run);
void add_eval(CLI::App& app, Runner* run);
void add_bench(CLI::App& app, Runner* run);
void add_synth(CLI::App& app, Runner* run);
void add_quantize(CLI::App& app, Runner* run);
void add_export(CLI::App& app, Runner* run);

}  // namespace lowbit::cli
