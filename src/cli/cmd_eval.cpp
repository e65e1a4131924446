// `lowbit eval` (placeholder until implemented).
#include "cli/commands.h"

namespace lowbit::cli {

void add_eval(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand("eval", "(not yet implemented)");
  sub->callback([run] { *run = [] { return 1; }; });
}

}  // namespace lowbit::cli
