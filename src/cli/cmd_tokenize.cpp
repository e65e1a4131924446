// `lowbit tokenize` (placeholder until implemented).
#include "cli/commands.h"

namespace lowbit::cli {

void add_tokenize(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand("tokenize", "(not yet implemented)");
  sub->callback([run] { *run = [] { return 1; }; });
}

}  // namespace lowbit::cli
