// `lowbit export gguf`: a floating-point or lowbit-quantized model as a GGUF file for llama.cpp.
// `lowbit export onnx`: a decoder (FP or quantized) as an ONNX graph for ONNX Runtime.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/output.h"
#include "lowbit/export/gguf_export.h"
#include "lowbit/export/onnx_export.h"
#include "lowbit/io/output_dir.h"
#include "lowbit/model/load.h"
#include "lowbit/util/error.h"

namespace lowbit::cli {

void add_export(CLI::App& app, Runner* run) {
  auto* sub = app.add_subcommand("export", "Write a model in another engine's format");
  sub->require_subcommand(1);
  auto* gg = sub->add_subcommand(
      "gguf",
      "GGUF v3 for llama.cpp (llama, mistral, qwen2), from an FP or lowbit-quantized model");
  auto opt = std::make_shared<GgufExportOptions>();
  auto type = std::make_shared<std::string>("auto");
  auto embd = std::make_shared<std::string>(), output = std::make_shared<std::string>();
  gg->add_option("--model", opt->model,
                 "Model: HF folder, llama2.c file, f32/f16/bf16 GGUF, or a folder lowbit quantized")
      ->required();
  gg->add_option("--out", opt->out, "The .gguf file to write")->required();
  gg->add_option("--type", *type,
                 "Matrices: f32|f16|bf16|q4_0|q4_1|q5_0|q5_1|q8_0|q4_k|q5_k|q6_k|iq4_nl, or auto "
                 "(default: f16 for float matrices, quantized linears in the type holding their "
                 "codes)");
  gg->add_option("--token-embedding-type", *embd, "Type of token_embd (default: as --type)");
  gg->add_option("--output-tensor-type", *output, "Type of output (default: as --type)");
  gg->add_option("--tokenizer", opt->tokenizer, "Tokenizer (default: the one beside the model)");
  gg->callback([run, opt, type, embd, output] {
    *run = [opt, type, embd, output] {
      auto parse = [](const char* flag, const std::string& name) {
        gguf::GgmlType t;
        if (!gguf::parse_type(name.c_str(), &t))
          fail(flag,
               "unknown GGUF type '{}' (expected f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, "
               "q4_k, q5_k, q6_k, iq4_nl)",
               name);
        return t;
      };
      if (*type != "auto") opt->type = parse("--type", *type);
      if (!embd->empty()) opt->embedding_type = parse("--token-embedding-type", *embd);
      if (!output->empty()) opt->output_type = parse("--output-tensor-type", *output);
      check_output_path(opt->out, model_input_paths(opt->model, opt->tokenizer), false);
      const GgufExportResult r = export_gguf(*opt);
      std::string types;
      for (const auto& [name, n] : r.types)
        types += fmt::format("{}{} {}", types.empty() ? "" : ", ", n, name);
      outf(
          "wrote {}: GGUF v3, architecture {}, {} tensors ({}), vocabulary {} from {}, {:.2f} GB, "
          "{:.1f} s\n",
          opt->out, r.arch, r.tensors, types, r.vocab, r.vocab_file,
          static_cast<double>(r.bytes) / 1e9, r.seconds);
      if (r.exact + r.min_rounded + r.requantized > 0) {
        outf(
            "quantized linears: {} written from their codes ({} with the minimum rounded to f16, "
            "max |Δw| {:.3g}), {} dequantized and re-encoded\n",
            r.exact + r.min_rounded, r.min_rounded, r.max_mapping_error, r.requantized);
      }
      return 0;
    };
  });
  auto* ox = sub->add_subcommand(
      "onnx",
      "ONNX graph (optimum's decoder-with-past layout) for ONNX Runtime; quantized linears as "
      "com.microsoft MatMulNBits");
  auto oopt = std::make_shared<OnnxExportOptions>();
  ox->add_option("--model", oopt->model,
                 "Model (HF folder, llama2.c file, or a lowbit/GPTQ quantized folder)")
      ->required();
  ox->add_option("--out", oopt->out,
                 "Output folder (model.onnx, genai_config.json, config, tokenizer)")
      ->required();
  ox->add_flag("--external-data", oopt->external_data,
               "Initializers in model.onnx.data (automatic beyond 1.5 GiB)");
  ox->add_flag("--force", oopt->force, "Replace an output folder lowbit wrote");
  ox->callback([run, oopt] {
    *run = [oopt] {
      const OnnxExportResult r = export_onnx(*oopt);
      outf(
          "wrote {}: ONNX opset 17 + com.microsoft, family {}, {} nodes, {} MatMulNBits and {} "
          "MatMul linears, {:.1f} MB of initializers{}, {:.1f} s\n",
          oopt->out, r.family, r.nodes, r.quantized_linears, r.float_linears,
          static_cast<double>(r.initializer_bytes) / 1e6,
          r.external_data ? " (in model.onnx.data)" : "", r.seconds);
      return 0;
    };
  });
}

}  // namespace lowbit::cli
