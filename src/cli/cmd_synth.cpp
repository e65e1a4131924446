// `lowbit synth`: writes a synthetic Hugging Face checkpoint with a real model's shape.
#include <fmt/format.h>

#include <map>
#include <string>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/validators.h"
#include "lowbit/synth/synth.h"

namespace lowbit::cli {

void add_synth(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand(
      "synth", "Write a synthetic checkpoint (random heavy-tailed weights, real shapes)");
  auto opt = std::make_shared<SynthOptions>();
  auto dtype = std::make_shared<std::string>("bf16");
  std::string shapes;
  for (const auto& n : synth_shape_names()) shapes += (shapes.empty() ? "" : "|") + n;
  sub->add_option("--shape", opt->shape, "Model shape: " + shapes)->required();
  sub->add_option("--dtype", *dtype, "Stored dtype: bf16|f16|f32")
      ->check(CLI::IsMember({"bf16", "f16", "f32"}));
  sub->add_option("--out", opt->out_dir, "Output folder (must not exist unless --force)")
      ->required();
  sub->add_option("--seed", opt->seed, "Random seed")->check(int_in(0, INT64_MAX));
  sub->add_option("--layers", opt->layers, "Override the number of layers (quick small versions)")
      ->check(int_in(1, 4096));
  sub->add_option("--tokenizer", opt->tokenizer,
                  "tokenizer.json (or a folder with one) to copy into the output");
  sub->add_flag("--force", opt->force, "Replace the output folder if it exists");
  sub->callback([run, opt, dtype] {
    *run = [opt, dtype] {
      static const std::map<std::string, DType> kTypes = {
          {"bf16", DType::BF16}, {"f16", DType::F16}, {"f32", DType::F32}};
      opt->dtype = kTypes.at(*dtype);
      const SynthResult r = synth_checkpoint(*opt);
      outf(
          "wrote {}: {} ({} layers, {:.3f} B params, {} {}), {:.2f} GB in {} file(s), "
          "{:.1f} s\n",
          opt->out_dir, opt->shape, r.cfg.n_layers, static_cast<double>(r.params) / 1e9, *dtype,
          r.cfg.architecture, static_cast<double>(r.bytes) / 1e9, r.files.size(), r.seconds);
      return 0;
    };
  });
}

}  // namespace lowbit::cli
