// `lowbit generate` (placeholder until implemented).
#include "cli/commands.h"

namespace lowbit::cli {

void add_generate(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand("generate", "(not yet implemented)");
  sub->callback([run] { *run = [] { return 1; }; });
}

}  // namespace lowbit::cli
