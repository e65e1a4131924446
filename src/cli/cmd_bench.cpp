// `lowbit bench` (placeholder until implemented).
#include "cli/commands.h"

namespace lowbit::cli {

void add_bench(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand("bench", "(not yet implemented)");
  sub->callback([run] { *run = [] { return 1; }; });
}

}  // namespace lowbit::cli
