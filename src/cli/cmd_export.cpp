// `lowbit export gguf`: a floating-point model as a GGUF file for llama.cpp.
#include <map>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/output.h"
#include "lowbit/export/gguf_export.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/model/load.h"

namespace lowbit::cli {

void add_export(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand("export", "Write a model in another engine's format");
  sub->require_subcommand(1);
  auto* gg = sub->add_subcommand(
      "gguf", "GGUF v3 for llama.cpp (llama, mistral, qwen2; f32, f16 or bf16 matrices)");
  auto opt = std::make_shared<GgufExportOptions>();
  auto type = std::make_shared<std::string>("f16");
  gg->add_option("--model", opt->model,
                 "Floating-point model (HF folder, llama2.c file or f32/f16/bf16 GGUF)")
      ->required();
  gg->add_option("--out", opt->out, "The .gguf file to write")->required();
  gg->add_option("--type", *type, "Type of the matrices: f32|f16|bf16 (norms stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  gg->add_option("--tokenizer", opt->tokenizer, "Tokenizer (default: the one beside the model)");
  gg->callback([run, opt, type] {
    *run = [opt, type] {
      static const std::map<std::string, gguf::GgmlType> kTypes = {{"f32", gguf::GgmlType::kF32},
                                                                   {"f16", gguf::GgmlType::kF16},
                                                                   {"bf16", gguf::GgmlType::kBF16}};
      opt->type = kTypes.at(*type);
      check_output_path(opt->out, model_input_paths(opt->model, opt->tokenizer), false);
      const GgufExportResult r = export_gguf(*opt);
      outf(
          "wrote {}: GGUF v3, architecture {}, {} tensors ({}), vocabulary {} from {}, {:.2f} GB, "
          "{:.1f} s\n",
          opt->out, r.arch, r.tensors, *type, r.vocab, r.vocab_file,
          static_cast<double>(r.bytes) / 1e9, r.seconds);
      return 0;
    };
  });
}

}  // namespace lowbit::cli
