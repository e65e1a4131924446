// `lowbit export onnx`: models quantized by `lowbit quantize` (and floating-point ones) exported
// as ONNX graphs and run by ONNX Runtime (tools/ort/run.js: a prompt, then greedy steps through
// past/present key-values) give the logits and greedy tokens lowbit's own forward pass gives;
// the graph's layout (optimum's names, MatMulNBits nodes, act-order's column gather), the folder
// (genai_config.json, config.json, tokenizer files, external data) and the refusals.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/io/protobuf_wire.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::run_cmd;

constexpr int kSteps = 5;  // greedy steps after the prompt, through the KV cache

// Skips (fails under CI=true) when node or ONNX Runtime's npm package is absent.
#define ORT_OR_SKIP()                                                                      \
  do {                                                                                     \
    const bool has_node = run_cmd("node --version").rc == 0;                               \
    const bool has_ort =                                                                   \
        fs::exists(test::source_dir() + "/tools/ort/node_modules/onnxruntime-node");       \
    if (!has_node || !has_ort) {                                                           \
      if (test::in_ci()) FAIL() << "node or tools/ort/node_modules missing (CI=true)";     \
      GTEST_SKIP()                                                                         \
          << "node or tools/ort/node_modules/onnxruntime-node missing (scripts/setup.sh)"; \
    }                                                                                      \
  } while (0)

struct OrtRun {
  std::vector<std::vector<float>> logits;  // last position of each step
  std::vector<int> greedy;
  std::vector<std::string> inputs, outputs;
};

OrtRun run_ort(const std::string& model_onnx, const std::vector<int>& ids, int steps) {
  std::string list;
  for (int id : ids) {
    if (!list.empty()) list += ',';
    list += std::to_string(id);
  }
  const test::CliResult r =
      run_cmd("node " + test::source_dir() + "/tools/ort/run.js " + model_onnx + " --ids " + list +
              " --steps " + std::to_string(steps) + " 2>/dev/null");
  EXPECT_EQ(r.rc, 0) << r.out;
  OrtRun o;
  if (r.rc != 0) return o;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  o.logits = j["logits"].get<std::vector<std::vector<float>>>();
  o.greedy = j["greedy"].get<std::vector<int>>();
  o.inputs = j["inputs"].get<std::vector<std::string>>();
  o.outputs = j["outputs"].get<std::vector<std::string>>();
  return o;
}

// lowbit's own logits for the same feeding: the prompt, then each greedy token; the reference
// path (quantized weights dequantized to fp32, fp32 activations).
struct LowbitRun {
  std::vector<std::vector<float>> logits;
  std::vector<int> greedy;
};

LowbitRun run_lowbit(const std::string& model, const std::vector<int>& ids, int steps) {
  RuntimeOptions rt;
  rt.repack = false;
  const LoadedModel lm = load_model(model, "", false, rt);
  Transformer t(lm.weights, static_cast<int>(ids.size()) + steps + 1);
  const int vocab = lm.weights->cfg.vocab_size;
  LowbitRun o;
  std::vector<int> feed = ids;
  for (int s = 0; s <= steps; ++s) {
    const float* l = t.forward(feed.data(), static_cast<int>(feed.size()));
    o.logits.emplace_back(l, l + vocab);
    o.greedy.push_back(static_cast<int>(std::max_element(l, l + vocab) - l));
    feed = {o.greedy.back()};
  }
  return o;
}

// The fields of a protobuf message (io/protobuf_wire.h; ONNX Runtime, not this reader, is the
// independent check of what the exporter writes).
using pb::Field;

std::vector<Field> fields(std::string_view m) {
  std::vector<Field> out;
  pb::Reader r(m, "model.onnx", "test message");
  Field f;
  while (r.next(&f)) out.push_back(f);
  return out;
}

struct GraphNode {
  std::string op_type, domain;
  std::vector<std::string> inputs;
};

// The nodes of model.onnx's graph (ModelProto.graph = 7, GraphProto.node = 1; NodeProto.input =
// 1, op_type = 4, domain = 7).
std::vector<GraphNode> read_nodes(const std::string& path, std::string* file) {
  *file = test::read_all(path);
  std::vector<GraphNode> nodes;
  for (const Field& g : fields(*file)) {
    if (g.number != 7) continue;
    for (const Field& n : fields(g.bytes)) {
      if (n.number != 1) continue;
      GraphNode node;
      for (const Field& f : fields(n.bytes)) {
        if (f.number == 1) node.inputs.emplace_back(f.bytes);
        if (f.number == 4) node.op_type = f.bytes;
        if (f.number == 7) node.domain = f.bytes;
      }
      nodes.push_back(node);
    }
  }
  return nodes;
}

std::vector<int> prompt_ids(const std::string& model_dir) {
  const nlohmann::json ref = nlohmann::json::parse(test::read_all(model_dir + "/reference.json"));
  return ref["prompts"][0]["ids"].get<std::vector<int>>();
}

struct ExportCase {
  const char* name;
  const char* model;          // under shared/models
  const char* quantize_args;  // "" = the floating-point model itself
  bool act_order;
};

class OnnxExportAgrees : public testing::TestWithParam<ExportCase> {};

TEST_P(OnnxExportAgrees, LogitsAndGreedyIdsMatchLowbit) {
  const ExportCase& c = GetParam();
  LOWBIT_SHARED_OR_SKIP(src, std::string("models/") + c.model);
  ORT_OR_SKIP();
  test::TempDir tmp(std::string("onnx_") + c.name);
  std::string model = src;
  if (c.quantize_args[0] != '\0') {
    model = tmp / "q";
    const test::CliResult q =
        run_cli("quantize --model " + src + " --out " + model + " " + c.quantize_args);
    ASSERT_EQ(q.rc, 0) << q.out;
  }
  const std::string out = tmp / "onnx";
  const test::CliResult e = run_cli("export onnx --model " + model + " --out " + out);
  ASSERT_EQ(e.rc, 0) << e.out;

  // The graph: MatMulNBits for every quantized linear, act-order as a Gather of A's columns.
  std::string file;
  const std::vector<GraphNode> nodes = read_nodes(out + "/model.onnx", &file);
  std::map<std::string, int> ops;
  for (const GraphNode& n : nodes) ++ops[n.op_type];
  const ModelConfig cfg = load_model(model, "", false).weights->cfg;
  const int linears = cfg.n_layers * (cfg.gated_mlp ? 7 : 6);
  if (c.quantize_args[0] != '\0') {
    EXPECT_EQ(ops["MatMulNBits"], linears);
  } else {
    EXPECT_EQ(ops["MatMulNBits"], 0);
  }
  int gathers_of_columns = 0;
  for (const GraphNode& n : nodes) {
    if (n.op_type == "Gather" && n.inputs.at(1).find(".perm") != std::string::npos)
      ++gathers_of_columns;
    if (n.op_type == "MatMulNBits") {
      EXPECT_EQ(n.domain, "com.microsoft");
    }
  }
  EXPECT_EQ(gathers_of_columns > 0, c.act_order);

  const std::vector<int> ids = prompt_ids(src);
  const OrtRun ort = run_ort(out + "/model.onnx", ids, kSteps);
  const LowbitRun ref = run_lowbit(model, ids, kSteps);
  ASSERT_EQ(ort.logits.size(), static_cast<size_t>(kSteps + 1));
  for (int s = 0; s <= kSteps; ++s) {
    const double rel =
        test::max_rel_err(ort.logits[static_cast<size_t>(s)], ref.logits[static_cast<size_t>(s)]);
    EXPECT_LT(rel, 1e-3) << "step " << s;
    RecordProperty("max_rel_err_step" + std::to_string(s), fmt::format("{:.3e}", rel));
  }
  if (c.quantize_args[0] != '\0') {
    // The check has power: the graph's distance to the floating-point model (the quantization
    // error) is far beyond its distance to lowbit's quantized forward pass.
    const LowbitRun fp = run_lowbit(src, ids, 0);
    const double q_err = test::max_rel_err(ort.logits[0], fp.logits[0]);
    RecordProperty("quantization_rel_err", fmt::format("{:.3e}", q_err));
    EXPECT_GT(q_err, 100 * test::max_rel_err(ort.logits[0], ref.logits[0]));
    EXPECT_GT(q_err, 5e-4);
  }
  EXPECT_EQ(ort.greedy, ref.greedy);

  // optimum's names.
  const std::vector<std::string> first = {"input_ids", "attention_mask", "position_ids",
                                          "past_key_values.0.key", "past_key_values.0.value"};
  ASSERT_GE(ort.inputs.size(), first.size());
  EXPECT_EQ(std::vector<std::string>(ort.inputs.begin(), ort.inputs.begin() + 5), first);
  EXPECT_EQ(ort.inputs.size(), 3u + 2u * static_cast<size_t>(cfg.n_layers));
  EXPECT_EQ(ort.outputs.front(), "present.0.key");
  EXPECT_NE(std::find(ort.outputs.begin(), ort.outputs.end(), "logits"), ort.outputs.end());
}

INSTANTIATE_TEST_SUITE_P(
    OnnxExport, OnnxExportAgrees,
    testing::Values(
        ExportCase{"llama_fp", "llama-256", "", false},
        ExportCase{"llama_int4_g32_asym", "llama-256", "--algo rtn --bits 4 -g 32", false},
        ExportCase{"llama_int4_g32_sym", "llama-256", "--algo rtn --bits 4 -g 32 --sym", false},
        ExportCase{"llama_int8_g64", "llama-256", "--algo rtn --bits 8 -g 64", false},
        ExportCase{"llama_gptq_act_order", "llama-256",
                   "--algo gptq --act-order --bits 4 -g 32 --nsamples 8 --seqlen 64", true},
        // Mapped schemes: int3 as 4-bit codes with zeros, per-channel and g48 as power-of-two
        // blocks, int2, int8 with the default zero.
        ExportCase{"llama_int3_g64", "llama-256", "--algo rtn --bits 3 -g 64", false},
        ExportCase{"llama_int4_per_channel", "llama-256", "--algo rtn --bits 4 -g -1", false},
        ExportCase{"llama_int4_g48", "llama-256", "--algo rtn --bits 4 -g 48 --format lowbit",
                   false},
        ExportCase{"llama_int2_g32", "llama-256", "--algo rtn --bits 2 -g 32 --format lowbit",
                   false},
        ExportCase{"llama_int8_g128_sym", "llama-256", "--algo rtn --bits 8 -g 128 --sym", false},
        ExportCase{"gpt2_fp", "gpt2-tiny", "", false},
        ExportCase{"gpt2_int4_g32_asym", "gpt2-tiny", "--algo rtn --bits 4 -g 32", false},
        ExportCase{"gpt2_int4_g32_sym", "gpt2-tiny", "--algo rtn --bits 4 -g 32 --sym", false},
        ExportCase{"gpt2_int8_g32", "gpt2-tiny", "--algo rtn --bits 8 -g 32", false},
        ExportCase{"gpt2_gptq_act_order", "gpt2-tiny",
                   "--algo gptq --act-order --bits 4 -g 32 --nsamples 8 --seqlen 64", true},
        // The same emitter on the other families' features: parallel blocks (falcon, gptj,
        // phi), interleaved (gptj) and partial (gptneox, phi) RoPE, learned positions with an
        // offset (opt).
        ExportCase{"falcon_fp", "falcon-tiny", "", false},
        ExportCase{"gptj_fp", "gptj-tiny", "", false},
        ExportCase{"gptneox_int4_g32", "gptneox-tiny", "--algo rtn --bits 4 -g 32", false},
        ExportCase{"phi_fp", "phi-tiny", "", false},
        ExportCase{"opt_int4_g32_sym", "opt-tiny", "--algo rtn --bits 4 -g 32 --sym", false}),
    [](const testing::TestParamInfo<ExportCase>& i) { return std::string(i.param.name); });

// lowbit reads its own export back (model/onnx_checkpoint.h: norms and embeddings under the
// architecture table's names, linears' nodes named after their modules as optimum names them):
// the ONNX folder gives the source model's logits — floating point, and quantized (MatMulNBits,
// with act-order's Gather) — so export -> import is a round trip. No ONNX Runtime needed.
TEST(OnnxExport, LowbitReadsItsExportBack) {
  LOWBIT_SHARED_OR_SKIP(src, "models/llama-256");
  test::TempDir tmp("onnx_roundtrip");
  const std::vector<int> ids = prompt_ids(src);
  for (const char* args : {"", "--algo rtn --bits 4 -g 32",
                           "--algo gptq --bits 4 -g 32 --act-order --calib tinystories "
                           "--nsamples 8 --seqlen 64"}) {
    std::string model = src;
    if (args[0] != '\0') {
      model = tmp / "q";
      std::filesystem::remove_all(model);
      const test::CliResult q = run_cli("quantize --model " + src + " --out " + model + " " + args);
      ASSERT_EQ(q.rc, 0) << q.out;
    }
    const std::string out = tmp / "onnx";
    std::filesystem::remove_all(out);
    const test::CliResult e = run_cli("export onnx --model " + model + " --out " + out);
    ASSERT_EQ(e.rc, 0) << e.out;
    const LowbitRun a = run_lowbit(model, ids, 3), b = run_lowbit(out, ids, 3);
    ASSERT_EQ(a.logits.size(), b.logits.size());
    for (size_t s = 0; s < a.logits.size(); ++s)
      EXPECT_LT(test::max_rel_err(b.logits[s], a.logits[s]), 1e-6) << args << " step " << s;
    EXPECT_EQ(a.greedy, b.greedy) << args;
  }
}

TEST(OnnxExport, FolderHoldsGenaiConfigTokenizerAndExternalData) {
  LOWBIT_SHARED_OR_SKIP(src, "models/llama-256");
  ORT_OR_SKIP();
  test::TempDir tmp("onnx_folder");
  const std::string q = tmp / "q";
  ASSERT_EQ(run_cli("quantize --model " + src + " --out " + q + " --algo rtn --bits 4 -g 32").rc,
            0);
  const std::string a = tmp / "inline", b = tmp / "external";
  ASSERT_EQ(run_cli("export onnx --model " + q + " --out " + a).rc, 0);
  const test::CliResult e =
      run_cli("export onnx --model " + q + " --out " + b + " --external-data");
  ASSERT_EQ(e.rc, 0) << e.out;
  EXPECT_NE(e.out.find("model.onnx.data"), std::string::npos) << e.out;
  EXPECT_FALSE(fs::exists(a + "/model.onnx.data"));
  ASSERT_TRUE(fs::exists(b + "/model.onnx.data"));
  EXPECT_LT(fs::file_size(b + "/model.onnx"), 200u * 1024u);  // only the graph and small constants
  EXPECT_GT(fs::file_size(b + "/model.onnx.data"), 4u << 20);

  const std::vector<int> ids = prompt_ids(src);
  const OrtRun ra = run_ort(a + "/model.onnx", ids, 2), rb = run_ort(b + "/model.onnx", ids, 2);
  EXPECT_EQ(ra.logits, rb.logits);
  EXPECT_EQ(ra.greedy, rb.greedy);

  const ModelConfig cfg = load_model(src, "", false).weights->cfg;
  const nlohmann::json g = nlohmann::json::parse(test::read_all(a + "/genai_config.json"));
  const auto& d = g["model"]["decoder"];
  EXPECT_EQ(g["model"]["type"], "llama");
  EXPECT_EQ(g["model"]["vocab_size"], cfg.vocab_size);
  EXPECT_EQ(g["model"]["context_length"], cfg.max_seq_len);
  EXPECT_EQ(g["model"]["eos_token_id"], cfg.eos_id);
  EXPECT_EQ(d["head_size"], cfg.head_dim);
  EXPECT_EQ(d["hidden_size"], cfg.dim);
  EXPECT_EQ(d["num_attention_heads"], cfg.n_heads);
  EXPECT_EQ(d["num_key_value_heads"], cfg.n_kv_heads);
  EXPECT_EQ(d["num_hidden_layers"], cfg.n_layers);
  EXPECT_EQ(d["inputs"]["past_key_names"], "past_key_values.%d.key");
  EXPECT_EQ(d["outputs"]["present_value_names"], "present.%d.value");
  EXPECT_EQ(g["search"]["past_present_share_buffer"], false);

  // config.json without the quantization block; the tokenizer files beside it.
  const nlohmann::json c = nlohmann::json::parse(test::read_all(a + "/config.json"));
  EXPECT_EQ(c["architectures"][0], "LlamaForCausalLM");
  EXPECT_FALSE(c.contains("quantization_config"));
  EXPECT_EQ(test::read_all(a + "/tokenizer.json"), test::read_all(src + "/tokenizer.json"));
  EXPECT_TRUE(fs::exists(a + "/tokenizer_config.json"));
}

// Bad requests: one line, exit code 2, nothing written.
void expect_one_line_error(const test::CliResult& r, const std::string& needle) {
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find(needle), std::string::npos) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
}

TEST(OnnxExport, RefusesUnsupportedFamilySchemeActivationsAndOutputOverInput) {
  LOWBIT_SHARED_OR_SKIP(bloom, "models/bloom-tiny");
  LOWBIT_SHARED_OR_SKIP(llama, "models/llama-256");
  test::TempDir tmp("onnx_refuse");
  const test::CliResult fam = run_cli("export onnx --model " + bloom + " --out " + tmp / "b");
  expect_one_line_error(fam, "ALiBi");
  EXPECT_NE(fam.out.find("bloom"), std::string::npos);
  EXPECT_FALSE(fs::exists(tmp / "b"));

  const std::string nf4 = tmp / "nf4";
  ASSERT_EQ(run_cli("quantize --model " + llama + " --out " + nf4 +
                    " --algo rtn --weight-type nf4 -g 32 --format lowbit")
                .rc,
            0);
  const test::CliResult sch = run_cli("export onnx --model " + nf4 + " --out " + tmp / "n");
  expect_one_line_error(sch, "nf4 weights cannot be written as MatMulNBits");
  EXPECT_FALSE(fs::exists(tmp / "n"));

  const std::string g24 = tmp / "g24";
  ASSERT_EQ(run_cli("quantize --model " + llama + " --out " + g24 +
                    " --algo rtn --bits 4 -g 24 --format lowbit")
                .rc,
            0);
  expect_one_line_error(run_cli("export onnx --model " + g24 + " --out " + tmp / "g"),
                        "group size 24");

  const std::string a8 = tmp / "a8";
  ASSERT_EQ(run_cli("quantize --model " + llama + " --out " + a8 +
                    " --algo rtn --bits 4 -g 32 --act int8")
                .rc,
            0);
  expect_one_line_error(run_cli("export onnx --model " + a8 + " --out " + tmp / "a"),
                        "int8 activations cannot be exported");
  EXPECT_FALSE(fs::exists(tmp / "a"));

  expect_one_line_error(run_cli("export onnx --model " + nf4 + " --out " + nf4 + "/onnx"), nf4);
  expect_one_line_error(run_cli("export onnx --model " + nf4 + " --out " + nf4), nf4);
  EXPECT_TRUE(fs::exists(nf4 + "/config.json"));
}

}  // namespace
}  // namespace lowbit
