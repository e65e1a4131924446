// ONNX decoders in (io/onnx_model, model/onnx_checkpoint) and quantized ONNX out
// (quant/quantize_onnx, export/onnx_quantized): the shared optimum exports reproduce their source
// models' reference logits, the quantized graphs lowbit writes run in ONNX Runtime (through
// tools/ort/run.js) with lowbit's own logits, read back into lowbit unchanged, and hostile files
// give one-line errors.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lowbit/eval/perplexity.h"
#include "lowbit/eval/text_sets.h"
#include "lowbit/eval/windows.h"
#include "lowbit/export/onnx_edit.h"
#include "lowbit/io/onnx_model.h"
#include "lowbit/model/load.h"
#include "lowbit/model/onnx_checkpoint.h"
#include "lowbit/model/sampler.h"
#include "lowbit/model/transformer.h"
#include "lowbit/tokenizer/tokenizer.h"
#include "lowbit/util/file.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Case {
  const char* onnx;    // under models/onnx/
  const char* source;  // under models/
};

const Case kCases[] = {{"llama-256-optimum", "llama-256"}, {"gpt2-tiny-optimum", "gpt2-tiny"}};

// Whether node and run.js's onnxruntime-node are here; skips (fails under CI=true) otherwise.
#define LOWBIT_ORT_OR_SKIP()                                                                      \
  if (!fs::exists(test::source_dir() + "/tools/ort/node_modules/onnxruntime-node") ||             \
      test::run_cmd("node --version").rc != 0) {                                                  \
    if (test::in_ci()) FAIL() << "node or tools/ort/node_modules missing (CI=true)";              \
    GTEST_SKIP() << "node or tools/ort/node_modules/onnxruntime-node missing (scripts/setup.sh)"; \
  }

double max_abs_diff(const float* a, const float* b, int n) {
  double m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(double(a[i]) - b[i]));
  return m;
}

// The prompt's last logits and `steps` greedy steps' logits (steps + 1 rows), and the greedy ids.
struct Logits {
  std::vector<std::vector<float>> logits;
  std::vector<int> greedy;
};

Logits run_lowbit(const LoadedModel& m, const std::vector<int>& ids, int steps) {
  Logits r;
  const int vocab = m.weights->cfg.vocab_size;
  Transformer tf(m.weights, static_cast<int>(ids.size()) + steps + 1);
  const float* logits = tf.forward(ids.data(), static_cast<int>(ids.size()));
  for (int s = 0; s <= steps; ++s) {
    r.logits.emplace_back(logits, logits + vocab);
    const int next = argmax(logits, vocab);
    r.greedy.push_back(next);
    if (s < steps) logits = tf.forward(&next, 1);
  }
  return r;
}

Logits run_ort(const std::string& onnx, const std::vector<int>& ids, int steps) {
  std::string list;
  for (int id : ids) {
    if (!list.empty()) list += ',';
    list += std::to_string(id);
  }
  const test::CliResult c =
      test::run_cmd("node " + test::source_dir() + "/tools/ort/run.js " + onnx + " --ids " + list +
                    " --steps " + std::to_string(steps));
  Logits r;
  EXPECT_EQ(c.rc, 0) << c.out;
  if (c.rc != 0) return r;
  const json j = json::parse(c.out);
  for (const json& row : j["logits"]) r.logits.push_back(row.get<std::vector<float>>());
  r.greedy = j["greedy"].get<std::vector<int>>();
  return r;
}

// max |a - b| / max |b| over all steps.
double rel_diff(const Logits& a, const Logits& b) {
  double num = 0, den = 0;
  for (size_t s = 0; s < std::min(a.logits.size(), b.logits.size()); ++s) {
    const int n = static_cast<int>(b.logits[s].size());
    num = std::max(num, max_abs_diff(a.logits[s].data(), b.logits[s].data(), n));
    for (float v : b.logits[s]) den = std::max(den, double(std::fabs(v)));
  }
  return num / den;
}

class OnnxImportShared : public ::testing::TestWithParam<Case> {};

// The export reproduces transformers' logits, greedy ids and perplexity, and equals loading the
// source HF folder.
TEST_P(OnnxImportShared, ReproducesTheSourceModelsReference) {
  const Case& k = GetParam();
  LOWBIT_SHARED_OR_SKIP(dir, std::string("models/onnx/") + k.onnx);
  LOWBIT_SHARED_OR_SKIP(src, std::string("models/") + k.source);
  const json ref = json::parse(test::read_all(src + "/reference.json"));
  const LoadedModel m = load_model(dir);
  const LoadedModel hf = load_model(src);
  const int vocab = m.weights->cfg.vocab_size;
  for (const json& p : ref["prompts"]) {
    const std::string text = p["text"];
    SCOPED_TRACE(text);
    const std::vector<int> ids = m.tokenizer->encode(text, /*add_special=*/true);
    ASSERT_EQ(ids, p["ids"].get<std::vector<int>>());
    Transformer tf(m.weights, static_cast<int>(ids.size()) + 40);
    Transformer tf_hf(hf.weights, static_cast<int>(ids.size()) + 1);
    const float* logits = tf.forward(ids.data(), static_cast<int>(ids.size()));
    const std::vector<float> want = p["last_logits"].get<std::vector<float>>();
    ASSERT_EQ(static_cast<int>(want.size()), vocab);
    const double err = max_abs_diff(logits, want.data(), vocab);
    EXPECT_LT(err, 1e-4) << "max |logit - reference|";
    const float* hf_logits = tf_hf.forward(ids.data(), static_cast<int>(ids.size()));
    const double err_hf = max_abs_diff(logits, hf_logits, vocab);
    EXPECT_LT(err_hf, 1e-5) << "max |logit(onnx) - logit(HF folder)|";
    std::cout << "[ onnx      ] " << k.onnx << ": max |logit - transformers| " << err
              << ", vs the HF folder " << err_hf << "\n";
    std::vector<int> got;
    for (int step = 0; step < 40; ++step) {
      const int next = argmax(logits, vocab);
      got.push_back(next);
      if (step + 1 < 40) logits = tf.forward(&next, 1);
    }
    EXPECT_EQ(got, p["greedy"]["new_ids"].get<std::vector<int>>());
  }
  const json& pj = ref["perplexity"];
  const std::vector<int> tokens = m.tokenizer->encode(load_text_set("tinystories"), false);
  const WindowPlan plan = plan_windows(Convention::kGptq, static_cast<int64_t>(tokens.size()),
                                       pj["window"].get<int>(), pj["windows"].get<int64_t>());
  Transformer tf(m.weights, plan.ctx), tf_hf(hf.weights, plan.ctx);
  const double ppl = perplexity(tf, tokens, plan, m.tokenizer->bos_id()).ppl;
  const double ppl_hf = perplexity(tf_hf, tokens, plan, hf.tokenizer->bos_id()).ppl;
  EXPECT_LT(std::fabs(ppl - pj["ppl"].get<double>()) / ppl, 1e-5);
  EXPECT_LT(std::fabs(ppl - ppl_hf) / ppl, 1e-6);
  std::cout << "[ onnx      ] " << k.onnx << ": perplexity " << ppl << " (HF folder " << ppl_hf
            << ", transformers " << pj["ppl"].get<double>() << ")\n";
}

INSTANTIATE_TEST_SUITE_P(OnnxImport, OnnxImportShared, ::testing::ValuesIn(kCases),
                         [](const auto& info) {
                           std::string n = info.param.source;
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

struct QuantCase {
  const char* onnx;
  const char* flags;
  const char* label;
};

class OnnxImportQuantized : public ::testing::TestWithParam<QuantCase> {};

// quantize (ONNX in -> ONNX out) runs in ONNX Runtime with lowbit's logits for the same quantized
// model (quantized again into lowbit's layout with the same options), and reads back into lowbit
// with the same logits.
TEST_P(OnnxImportQuantized, RunsInOnnxRuntimeAndReadsBack) {
  const QuantCase& k = GetParam();
  LOWBIT_SHARED_OR_SKIP(dir, std::string("models/onnx/") + k.onnx);
  LOWBIT_ORT_OR_SKIP();
  test::TempDir tmp(std::string("onnx_q_") + k.label);
  // One thread: the two runs below (ONNX out, lowbit's layout out) must quantize identically, and
  // calibration sums split over a varying number of threads round differently.
  const std::string flags = std::string(k.flags) + " --bits 4 --group-size 32 -t 1";
  test::CliResult r =
      test::run_cli("quantize --model " + dir + " --out " + tmp / "onnx" + " " + flags);
  ASSERT_EQ(r.rc, 0) << r.out;
  r = test::run_cli("quantize --model " + dir + " --out " + tmp / "lowbit" + " --format lowbit " +
                    flags);
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string onnx = tmp / "onnx/model.onnx";
  ASSERT_TRUE(fs::exists(onnx));
  EXPECT_LT(fs::file_size(onnx), fs::file_size(dir + "/model.onnx"));

  // The graph holds MatMulNBits nodes and no float weight of a replaced linear.
  const auto written = OnnxModel::open(onnx);
  int nbits = 0;
  for (const OnnxNode& n : written->nodes()) nbits += n.op_type == "MatMulNBits";
  EXPECT_GT(nbits, 0);
  EXPECT_EQ(written->opset("com.microsoft"), 1);
  EXPECT_EQ(written->opset(""), OnnxModel::open(dir + "/model.onnx")->opset(""));

  // lowbit's reference path (dequantized weights, fp32 activations: what MatMulNBits computes);
  // the default kernels quantize activations to int8 and differ by that rounding.
  RuntimeOptions deq;
  deq.repack = false;
  const LoadedModel ref = load_model(tmp / "lowbit", "", true, deq);
  const LoadedModel back = load_model(tmp / "onnx", "", true, deq);
  const std::vector<int> ids = ref.tokenizer->encode("Once upon a time, there was", true);
  const int steps = 6;
  const Logits want = run_lowbit(ref, ids, steps);
  const Logits ort = run_ort(onnx, ids, steps);
  ASSERT_EQ(ort.logits.size(), want.logits.size());
  const double rel = rel_diff(ort, want);
  EXPECT_LT(rel, 1e-3) << "ONNX Runtime vs lowbit";
  EXPECT_EQ(ort.greedy, want.greedy);
  const Logits rt = run_lowbit(back, ids, steps);
  const double rel_back = rel_diff(rt, want);
  EXPECT_LT(rel_back, 1e-6) << "read back vs lowbit's quantized model";
  EXPECT_EQ(rt.greedy, want.greedy);
  // On the quantized kernels, the model read back from ONNX equals the lowbit folder too.
  const Logits k_ref = run_lowbit(load_model(tmp / "lowbit"), ids, steps);
  const Logits k_back = run_lowbit(load_model(tmp / "onnx"), ids, steps);
  EXPECT_LT(rel_diff(k_back, k_ref), 1e-6);
  EXPECT_EQ(k_back.greedy, k_ref.greedy);
  std::cout << "[ onnx q    ] " << k.onnx << " " << flags << ": " << nbits
            << " MatMulNBits, ONNX Runtime vs lowbit rel " << rel << ", read back rel " << rel_back
            << ", " << fs::file_size(onnx) << " bytes (float graph "
            << fs::file_size(dir + "/model.onnx") << ")\n";
}

const QuantCase kQuantCases[] = {
    {"llama-256-optimum", "--algo rtn", "llama_rtn"},
    {"gpt2-tiny-optimum", "--algo rtn", "gpt2_rtn"},
    {"llama-256-optimum", "--algo gptq --calib tinystories --nsamples 8 --seqlen 128",
     "llama_gptq"},
    {"gpt2-tiny-optimum", "--algo gptq --act-order --calib tinystories --nsamples 8 --seqlen 128",
     "gpt2_gptq_act_order"},
    // AWQ folds its scales into the norms (and GPT-2's biases): those initializers are rewritten.
    {"llama-256-optimum", "--algo awq --calib tinystories --nsamples 8 --seqlen 128", "llama_awq"},
    {"gpt2-tiny-optimum", "--algo awq --calib tinystories --nsamples 8 --seqlen 128", "gpt2_awq"},
};

INSTANTIATE_TEST_SUITE_P(OnnxImport, OnnxImportQuantized, ::testing::ValuesIn(kQuantCases),
                         [](const auto& info) { return std::string(info.param.label); });

// --- hostile files -------------------------------------------------------------------------

// A folder with the llama export's config and tokenizer and `model` as model.onnx.
std::string hostile_folder(const test::TempDir& tmp, const std::string& src,
                           const std::string& model) {
  fs::create_directories(tmp.path / "m");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(src + "/" + f, tmp.path / "m" / f);
  write_file_atomic(tmp / "m/model.onnx", model);
  return tmp / "m";
}

// Runs generate on `dir`: exit code 2 and one line naming model.onnx containing `what`.
void expect_refused(const std::string& dir, const std::string& what) {
  const test::CliResult r = test::run_cli("generate --model " + dir + " --prompt hi -n 1");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  EXPECT_NE(r.out.find("model.onnx"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(what), std::string::npos) << r.out;
}

// A float tensor [dims] named `name` whose data lies in an external file: `entries` are its
// external_data (location, offset, length).
onnx::TensorProto external_tensor(const std::string& name, const std::vector<int64_t>& dims,
                                  const std::vector<std::pair<std::string, std::string>>& entries) {
  onnx::TensorProto t;
  for (int64_t d : dims) t.add_dims(d);
  t.set_data_type(onnx::TensorProto_DataType_FLOAT);
  t.set_name(name);
  for (const auto& [k, v] : entries) {
    onnx::StringStringEntryProto* e = t.add_external_data();
    e->set_key(k);
    e->set_value(v);
  }
  t.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
  return t;
}

// A one-initializer model holding `tensor`.
std::string tiny_model(const onnx::TensorProto& tensor) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  *m.mutable_graph()->add_initializer() = tensor;
  return m.SerializeAsString();
}

TEST(OnnxImportHostile, TruncatedOrNotProtobuf) {
  LOWBIT_SHARED_OR_SKIP(src, "models/onnx/llama-256-optimum");
  const std::string bytes = test::read_all(src + "/model.onnx");
  {
    test::TempDir tmp("onnx_trunc");
    expect_refused(hostile_folder(tmp, src, bytes.substr(0, bytes.size() / 2)),
                   "not a valid protobuf message");
  }
  {
    test::TempDir tmp("onnx_text");
    expect_refused(hostile_folder(tmp, src, "this is not a model\n"), "not");
  }
}

TEST(OnnxImportHostile, ExternalDataMustStayInTheFolder) {
  LOWBIT_SHARED_OR_SKIP(src, "models/onnx/llama-256-optimum");
  for (const std::string loc : {"../x", "/etc/passwd", "sub/../../x"}) {
    SCOPED_TRACE(loc);
    test::TempDir tmp("onnx_ext");
    write_file_atomic(tmp / "x", std::string(1024, '\0'));
    const onnx::TensorProto t = external_tensor("model.norm.weight", {256}, {{"location", loc}});
    expect_refused(hostile_folder(tmp, src, tiny_model(t)), "is not a file inside");
  }
  // Inside the folder but beyond the file's end.
  test::TempDir tmp("onnx_ext_range");
  const std::string dir = hostile_folder(tmp, src, "");
  write_file_atomic(dir + "/w.bin", std::string(100, '\0'));
  const onnx::TensorProto t =
      external_tensor("model.norm.weight", {256}, {{"location", "w.bin"}, {"offset", "64"}});
  write_file_atomic(dir + "/model.onnx", tiny_model(t));
  expect_refused(dir, "lies outside");
}

// Initializers in an external data file inside the folder are read from it (at their offsets).
TEST(OnnxImportWire, ExternalDataInsideTheFolder) {
  LOWBIT_SHARED_OR_SKIP(src, "models/onnx/llama-256-optimum");
  const auto m = OnnxModel::open(src + "/model.onnx");
  test::TempDir tmp("onnx_ext_ok");
  OnnxEdit e;
  std::string data(64, '\x7f');  // padding before the first tensor
  for (const char* name : {"model.norm.weight", "model.embed_tokens.weight"}) {
    const TensorInfo* t = m->find(name);
    ASSERT_NE(t, nullptr);
    e.replace_initializers[name] = external_tensor(name, t->shape,
                                                   {{"location", "sub/weights.bin"},
                                                    {"offset", std::to_string(data.size())},
                                                    {"length", std::to_string(t->nbytes)}});
    data.append(reinterpret_cast<const char*>(t->data), t->nbytes);
  }
  const std::string dir = hostile_folder(tmp, src, edited_onnx(*m, e));
  fs::create_directories(dir + "/sub");
  write_file_atomic(dir + "/sub/weights.bin", data);
  const LoadedModel a = load_model(src), b = load_model(dir);
  const std::vector<int> ids = a.tokenizer->encode("Once upon a time", true);
  const Logits la = run_lowbit(a, ids, 3), lb = run_lowbit(b, ids, 3);
  // Not bit-identical: the thread split of a reduction follows the machine's load.
  EXPECT_LT(rel_diff(lb, la), 1e-6);
  EXPECT_EQ(lb.greedy, la.greedy);
  EXPECT_EQ(OnnxModel::open(dir + "/model.onnx")->find("model.norm.weight")->file,
            dir + "/sub/weights.bin");
}

TEST(OnnxImportHostile, WrongSizeWrongShapeMissingTensor) {
  LOWBIT_SHARED_OR_SKIP(src, "models/onnx/llama-256-optimum");
  const auto m = OnnxModel::open(src + "/model.onnx");
  const std::vector<float> ones(256, 1.0f);
  {
    test::TempDir tmp("onnx_size");
    OnnxEdit e;  // dims say 256 floats, 100 bytes given
    e.replace_initializers["model.norm.weight"] =
        onnx_tensor("model.norm.weight", DType::F32, {256}, ones.data(), 100);
    expect_refused(hostile_folder(tmp, src, edited_onnx(*m, e)), "holds 100 bytes");
  }
  {
    test::TempDir tmp("onnx_shape");
    OnnxEdit e;
    e.replace_initializers["model.norm.weight"] =
        onnx_tensor("model.norm.weight", DType::F32, {128}, ones.data(), 512);
    expect_refused(hostile_folder(tmp, src, edited_onnx(*m, e)), "has shape [128], expected [256]");
  }
  {
    test::TempDir tmp("onnx_missing");
    OnnxEdit e;
    e.drop_initializers.insert("model.norm.weight");
    expect_refused(hostile_folder(tmp, src, edited_onnx(*m, e)),
                   "missing tensor model.norm.weight");
  }
  {
    test::TempDir tmp("onnx_nan");
    std::vector<float> bad = ones;
    bad[7] = std::nanf("");
    OnnxEdit e;
    e.replace_initializers["model.norm.weight"] =
        onnx_tensor("model.norm.weight", DType::F32, {256}, bad.data(), 1024);
    expect_refused(hostile_folder(tmp, src, edited_onnx(*m, e)), "model.norm.weight");
  }
}

// What MatMulNBits cannot hold is refused before any work; a quantized graph is not quantized
// again; nothing is left behind.
TEST(OnnxImportHostile, QuantizeRefusals) {
  LOWBIT_SHARED_OR_SKIP(src, "models/onnx/llama-256-optimum");
  test::TempDir tmp("onnx_refuse");
  const std::string base = "quantize --model " + src + " --algo rtn --out " + tmp / "o";
  for (const auto& [flags, what] : std::vector<std::pair<std::string, std::string>>{
           {" --weight-type nf4", "integer codes only"},
           {" --group-size 24", "group size 24 is not a multiple of 16"},
           {" --bits 8 --act int8", "activation quantization"}}) {
    SCOPED_TRACE(flags);
    const test::CliResult r = test::run_cli(base + flags);
    EXPECT_EQ(r.rc, 2) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_NE(r.out.find(what), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(tmp / "o"));
  }
  ASSERT_EQ(test::run_cli(base + " --group-size 32").rc, 0);
  const test::CliResult r =
      test::run_cli("quantize --model " + tmp / "o" + " --algo rtn --out " + tmp / "o2");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("already quantized"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(tmp / "o2"));
}

// An unedited round trip through edited_onnx (libonnx parse + serialize) gives the same model:
// the same size (optimum wrote it with protobuf too) and the same nodes and initializers.
TEST(OnnxImportWire, EmptyEditKeepsTheGraph) {
  LOWBIT_SHARED_OR_SKIP(src, "models/onnx/gpt2-tiny-optimum");
  const auto m = OnnxModel::open(src + "/model.onnx");
  const std::string again = edited_onnx(*m, {});
  EXPECT_EQ(again.size(), m->bytes().size());
  const auto m2 = OnnxModel::from_bytes("again.onnx", again, false);
  ASSERT_EQ(m2->nodes().size(), m->nodes().size());
  ASSERT_EQ(m2->initializers().size(), m->initializers().size());
  for (size_t i = 0; i < m->initializers().size(); ++i) {
    const TensorInfo& a = m->initializers()[i];
    const TensorInfo& b = m2->initializers()[i];
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.shape, b.shape);
    ASSERT_EQ(a.nbytes, b.nbytes);
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << a.name;
  }
  // The tied lm_head reads the embeddings; every linear's weight is found by name.
  const OnnxCheckpoint ck = read_onnx_checkpoint(m);
  EXPECT_NE(ck.linear("transformer.h.0.attn.c_attn"), nullptr);
  EXPECT_NE(ck.linear("transformer.h.3.mlp.c_proj"), nullptr);
}

// Appends a length-delimited field `field` holding `payload`, as protobuf writes it.
void append_len_field(std::string* out, int field, const std::string& payload) {
  google::protobuf::io::StringOutputStream stream(out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteTag(static_cast<uint32_t>(field) << 3 | 2);
  coded.WriteVarint32(static_cast<uint32_t>(payload.size()));
  coded.WriteString(payload);
}

// A ModelProto (ir_version 7) around the serialized GraphProto `graph`.
std::string model_with_graph(const std::string& graph) {
  std::string model;
  {
    google::protobuf::io::StringOutputStream stream(&model);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.WriteTag(1 << 3);  // ModelProto.ir_version
    coded.WriteVarint64(7);
  }
  append_len_field(&model, 7, graph);  // ModelProto.graph
  return model;
}

// Typed fields (float_data, int64_data, packed or not) read like raw_data.
TEST(OnnxImportWire, TypedFieldsAndErrors) {
  const float vals[3] = {1.5f, -2.0f, 3.25f};
  onnx::TensorProto t;  // float_data, packed (as libonnx writes it)
  t.add_dims(3);
  t.set_data_type(onnx::TensorProto_DataType_FLOAT);
  t.set_name("f");
  for (float v : vals) t.add_float_data(v);
  onnx::TensorProto i64;
  i64.add_dims(2);
  i64.set_data_type(onnx::TensorProto_DataType_INT64);
  i64.set_name("i");
  // int64_data not packed: one varint field per value, as older writers put them.
  std::string i64_bytes = i64.SerializeAsString();
  {
    google::protobuf::io::StringOutputStream out(&i64_bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    for (int64_t v : {int64_t{-5}, int64_t{9}}) {
      coded.WriteTag(7 << 3);  // int64_data, varint
      coded.WriteVarint64(static_cast<uint64_t>(v));
    }
  }
  ASSERT_TRUE(i64.ParseFromString(i64_bytes));
  ASSERT_EQ(i64.int64_data_size(), 2);
  // The graph: t as libonnx writes it, then the unpacked int64 tensor's bytes as they are.
  onnx::GraphProto graph;
  *graph.add_initializer() = t;
  std::string graph_bytes = graph.SerializeAsString();
  append_len_field(&graph_bytes, 5, i64_bytes);  // GraphProto.initializer
  const std::string model_bytes = model_with_graph(graph_bytes);
  const auto m = OnnxModel::from_bytes("t.onnx", model_bytes, false);
  const TensorInfo* f = m->find("f");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(std::memcmp(f->data, vals, 12), 0);
  const TensorInfo* i = m->find("i");
  ASSERT_NE(i, nullptr);
  int64_t iv[2];
  std::memcpy(iv, i->data, 16);
  EXPECT_EQ(iv[0], -5);
  EXPECT_EQ(iv[1], 9);
  // A field of the wrong wire type is not that field, wherever it stands (protobuf keeps it as an
  // unknown field, and libonnx re-emits it after the known ones): here a varint "name" after the
  // real one, and a varint "float_data".
  {
    std::string bytes = t.SerializeAsString();
    {
      google::protobuf::io::StringOutputStream out(&bytes);
      google::protobuf::io::CodedOutputStream coded(&out);
      coded.WriteTag(8 << 3);
      coded.WriteVarint64(0);
      coded.WriteTag(4 << 3);
      coded.WriteVarint64(7);
    }
    onnx::TensorProto odd_t;  // protobuf's reading: the odd fields are unknown ones
    ASSERT_TRUE(odd_t.ParseFromString(bytes));
    EXPECT_EQ(odd_t.name(), "f");
    EXPECT_EQ(odd_t.float_data_size(), 3);
    std::string g_bytes;
    append_len_field(&g_bytes, 5, bytes);  // GraphProto.initializer
    const std::string m_bytes = model_with_graph(g_bytes);
    const auto om = OnnxModel::from_bytes("t.onnx", m_bytes, false);
    const TensorInfo* of = om->find("f");
    ASSERT_NE(of, nullptr);
    EXPECT_EQ(std::memcmp(of->data, vals, 12), 0);
  }
  // Too few values for the shape, a second definition, no graph.
  onnx::TensorProto short_t = t;
  short_t.set_dims(0, 4);
  short_t.set_name("s");
  EXPECT_NE(test::error_of([&] {
              OnnxModel::from_bytes("t.onnx", tiny_model(short_t), false);
            }).find("t.onnx: initializer s holds fewer values than its shape [4] needs"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] {
              onnx::ModelProto twice;
              twice.set_ir_version(7);
              *twice.mutable_graph()->add_initializer() = t;
              *twice.mutable_graph()->add_initializer() = t;
              OnnxModel::from_bytes("t.onnx", twice.SerializeAsString(), false);
            }).find("defined twice"),
            std::string::npos);
  onnx::ModelProto nograph;
  nograph.set_ir_version(7);
  EXPECT_NE(test::error_of([&] {
              OnnxModel::from_bytes("t.onnx", nograph.SerializeAsString(), false);
            }).find("t.onnx: not an ONNX model (no graph)"),
            std::string::npos);
}

// The fuzz seeds (fuzz/make_seeds.py builds them byte by byte) are what their names say: the
// good ones map to checkpoint names (anonymous MatMul weight transposed back, named Gemm weight,
// MatMulNBits unpacked with and without act-order), the bad ones are one-line errors.
TEST(OnnxImportWire, FuzzSeedsParseAsIntended) {
  const std::string dir = test::source_dir() + "/fuzz/corpus/onnx/";
  auto open = [&](const std::string& f) {
    return OnnxModel::from_bytes(f, test::read_all(dir + f), false);
  };
  {
    const OnnxCheckpoint ck = read_onnx_checkpoint(open("matmul_anonymous.onnx"));
    const TensorInfo* w = ck.store.find("model.layers.0.self_attn.q_proj.weight");
    ASSERT_NE(w, nullptr);
    EXPECT_EQ(w->shape, (std::vector<int64_t>{8, 4}));  // [in 4, out 8] stored -> [out, in]
    const auto* src = reinterpret_cast<const float*>(ck.model->find("onnx::MatMul_5")->data);
    const auto* tr = reinterpret_cast<const float*>(w->data);
    for (int o = 0; o < 8; ++o) {
      for (int i = 0; i < 4; ++i) EXPECT_EQ(tr[o * 4 + i], src[i * 8 + o]);
    }
    EXPECT_NE(ck.store.find("model.norm.weight"), nullptr);
  }
  {
    const OnnxCheckpoint ck = read_onnx_checkpoint(open("gemm_named.onnx"));
    const OnnxLinear* l = ck.linear("transformer.h.0.attn.c_attn");
    ASSERT_NE(l, nullptr);
    EXPECT_TRUE(l->b_is_out_in);
    EXPECT_EQ(ck.store.find("transformer.h.0.attn.c_attn.weight")->shape,
              (std::vector<int64_t>{8, 4}));
  }
  for (const char* f : {"matmul_nbits.onnx", "matmul_nbits_act_order.onnx"}) {
    SCOPED_TRACE(f);
    const OnnxCheckpoint ck = read_onnx_checkpoint(open(f));
    ASSERT_EQ(ck.quantized.size(), 1u);
    const QuantizedWeight& q = ck.quantized.at("model.layers.0.mlp.down_proj.weight");
    EXPECT_EQ(q.out, 2);
    EXPECT_EQ(q.in, 16);
    // Row 0, stored column j: code (j even: low nibble of byte j/2) minus zero 8, scale 0.5; the
    // act-order seed stores input column perm[j] = 5j mod 16 at position j.
    const bool perm = std::string(f).find("act_order") != std::string::npos;
    const std::vector<float> w = q.dequantize();
    for (int j = 0; j < 16; ++j) {
      const int code = j % 2 == 0 ? (j / 2) & 15 : (j / 2) >> 4;
      const int col = perm ? (5 * j) % 16 : j;
      EXPECT_EQ(w[static_cast<size_t>(col)], 0.5f * float(code - 8)) << j;
    }
  }
  for (const char* f : {"bad_truncated.onnx", "bad_wrong_size.onnx", "bad_twice.onnx",
                        "bad_external.onnx", "bad_nbits_attrs.onnx"}) {
    SCOPED_TRACE(f);
    const std::string err = test::error_of([&] { read_onnx_checkpoint(open(f)); });
    EXPECT_EQ(err.rfind(std::string(f) + ": ", 0), 0u) << err;
    EXPECT_EQ(err.find('\n'), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace lowbit
