// AutoAWQ GEMM checkpoints (quant_method "awq", version "gemm"): the interleaved int4 packing
// against words built from the layout's description, per-tensor round trips, `quantize --format
// awq` against the same quantization in lowbit's own layout, a publish-style folder built here as
// AutoAWQ writes one (no lowbit keys), resume replay, and hostile tensors and configs.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "lowbit/formats/checkpoint_layout.h"
#include "lowbit/formats/pack.h"
#include "lowbit/formats/quantized_config.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/kernels/packed_matmul.h"
#include "lowbit/kernels/packed_weight.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::TempDir;

// The interleave as the layout describes it (AutoAWQ's packer): nibble i of a word holds output
// column 8j + kOrder[i] of its 8 columns. Written out here, not taken from pack.h.
constexpr int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};

// An independent packer: codes [rows, cols] -> words [rows, cols/8].
std::vector<int32_t> pack_by_description(const std::vector<uint8_t>& codes, int rows, int cols) {
  std::vector<int32_t> words(static_cast<size_t>(rows) * (cols / 8), 0);
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols / 8; ++j) {
      uint32_t w = 0;
      for (int i = 0; i < 8; ++i) {
        w += static_cast<uint32_t>(codes[static_cast<size_t>(r) * cols + 8 * j + kOrder[i]])
             << (4 * i);
      }
      words[static_cast<size_t>(r) * (cols / 8) + j] = static_cast<int32_t>(w);
    }
  }
  return words;
}

QuantizedWeight random_weight(int out, int in, int group, bool sym, uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedWeight w;
  w.scheme = test::int_scheme(4, group, sym);
  w.out = out;
  w.in = in;
  w.n_groups = groups_per_row(w.scheme, in);
  w.q.resize(static_cast<size_t>(out) * in);
  for (uint8_t& c : w.q) c = static_cast<uint8_t>(rng() % 16);
  w.params.resize(static_cast<size_t>(out) * w.n_groups);
  for (GroupParams& p : w.params) {
    p.scale = f16_to_f32(f32_to_f16(0.001f + static_cast<float>(rng() % 1000) * 1e-4f));
    p.zero = sym ? 8.0f : static_cast<float>(rng() % 16);
  }
  w.g_idx.resize(static_cast<size_t>(in));
  for (int i = 0; i < in; ++i) w.g_idx[static_cast<size_t>(i)] = group > 0 ? i / group : 0;
  return w;
}

// Tensors held in memory, looked up by name as a checkpoint's store would.
struct MemStore {
  std::vector<PackedTensor> tensors;
  std::vector<TensorInfo> infos;
  void index() {
    infos.clear();
    for (const PackedTensor& t : tensors) {
      TensorInfo i;
      i.name = t.name;
      i.dtype = t.dtype;
      i.shape = t.shape;
      i.data = t.bytes.data();
      i.nbytes = t.bytes.size();
      i.file = "mem.safetensors";
      infos.push_back(i);
    }
  }
  PackedTensor* get(const std::string& name) {
    for (PackedTensor& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  TensorLookup lookup() const {
    return [this](const std::string& n) -> const TensorInfo* {
      for (const TensorInfo& i : infos)
        if (i.name == n) return &i;
      return nullptr;
    };
  }
};

TEST(AwqFormat, PackUnpackIdentity) {
  std::mt19937 rng(7);
  for (const auto& [rows, cols] : {std::pair{1, 8}, std::pair{3, 16}, std::pair{17, 64}}) {
    std::vector<uint8_t> codes(static_cast<size_t>(rows) * cols);
    for (uint8_t& c : codes) c = static_cast<uint8_t>(rng() % 16);
    const std::vector<int32_t> words = pack_awq(codes.data(), rows, cols);
    ASSERT_EQ(words.size(), static_cast<size_t>(rows) * cols / 8);
    EXPECT_EQ(words, pack_by_description(codes, rows, cols));
    EXPECT_EQ(unpack_awq(words.data(), rows, cols), codes);
  }
  EXPECT_THROW(pack_awq(std::vector<uint8_t>(12, 0).data(), 1, 12), Error);
  const std::vector<uint8_t> big(8, 16);
  EXPECT_THROW(pack_awq(big.data(), 1, 8), Error);
  // Whole weights: codes, scales, zero points and the plain column order come back unchanged.
  for (const auto& [group, sym] :
       {std::pair{32, false}, std::pair{128, true}, std::pair{-1, false}}) {
    SCOPED_TRACE(fmt::format("g{} sym={}", group, sym));
    const QuantizedWeight w = random_weight(24, 256, group, sym, 3);
    MemStore m;
    m.tensors = to_awq_tensors(w, "l");
    m.index();
    ASSERT_EQ(m.tensors.size(), 3u);  // qweight, qzeros, scales; no g_idx
    EXPECT_EQ(m.tensors[0].shape, (std::vector<int64_t>{256, 3}));
    EXPECT_EQ(m.tensors[1].shape, (std::vector<int64_t>{w.n_groups, 3}));
    EXPECT_EQ(m.tensors[2].shape, (std::vector<int64_t>{w.n_groups, 24}));
    EXPECT_EQ(m.tensors[2].dtype, DType::F16);
    const QuantizedWeight r = from_awq_tensors(w.scheme, "l", m.lookup());
    EXPECT_EQ(r.q, w.q);
    EXPECT_EQ(r.g_idx, w.g_idx);
    ASSERT_EQ(r.params.size(), w.params.size());
    for (size_t i = 0; i < w.params.size(); ++i) {
      EXPECT_EQ(r.params[i].scale, w.params[i].scale);
      EXPECT_EQ(r.params[i].zero, w.params[i].zero);
    }
    EXPECT_EQ(r.dequantize(), w.dequantize());
  }
}

// Words written by hand: every nibble distinct, so a wrong interleave (or a GPTQ-style plain
// order) cannot decode to the expected codes.
TEST(AwqFormat, HandBuiltWordsDecodeInInterleavedOrder) {
  const uint32_t w0 = 0xFEDCBA98u, w1 = 0x76543210u;  // one row, 16 output columns
  std::vector<uint8_t> expect(16);
  for (int i = 0; i < 8; ++i) {
    expect[static_cast<size_t>(kOrder[i])] = static_cast<uint8_t>((w0 >> (4 * i)) & 15);
    expect[static_cast<size_t>(8 + kOrder[i])] = static_cast<uint8_t>((w1 >> (4 * i)) & 15);
  }
  // Spelled out: nibbles 8,9,A,B,C,D,E,F land on columns 0,2,4,6,1,3,5,7.
  EXPECT_EQ(expect[0], 8);
  EXPECT_EQ(expect[1], 12);
  EXPECT_EQ(expect[2], 9);
  EXPECT_EQ(expect[7], 15);
  const std::vector<int32_t> words = {static_cast<int32_t>(w0), static_cast<int32_t>(w1)};
  EXPECT_EQ(unpack_awq(words.data(), 1, 16), expect);

  // The same words as a module: 16 outputs, 8 inputs (one row per input), one group; zero word
  // 0x33333333 except one nibble, scales 0.5 (exact in f16).
  MemStore m;
  std::vector<int32_t> qweight;
  for (int i = 0; i < 8; ++i) {
    qweight.push_back(static_cast<int32_t>(w0));
    qweight.push_back(static_cast<int32_t>(w1));
  }
  const std::vector<int32_t> qzeros = {static_cast<int32_t>(0x33333335u), 0x33333333};
  const std::vector<uint16_t> scales(16, f32_to_f16(0.5f));
  auto raw = [](const auto& v) {
    std::vector<uint8_t> b(v.size() * sizeof(v[0]));
    std::memcpy(b.data(), v.data(), b.size());
    return b;
  };
  m.tensors = {{"l.qweight", DType::I32, {8, 2}, raw(qweight)},
               {"l.qzeros", DType::I32, {1, 2}, raw(qzeros)},
               {"l.scales", DType::F16, {1, 16}, raw(scales)}};
  m.index();
  QuantScheme s = test::int_scheme(4, 8);
  const QuantizedWeight w = from_awq_tensors(s, "l", m.lookup());
  ASSERT_EQ(w.out, 16);
  ASSERT_EQ(w.in, 8);
  const std::vector<float> d = w.dequantize();
  for (int o = 0; o < 16; ++o) {
    const float zero = o == 0 ? 5.0f : 3.0f;  // nibble 0 of the first zero word is column 0
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(d[static_cast<size_t>(o) * 8 + i], 0.5f * (expect[static_cast<size_t>(o)] - zero))
          << "row " << o << " col " << i;
    }
  }
}

std::vector<float> logits_of(const LoadedModel& m, int n) {
  std::vector<int> toks(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    toks[static_cast<size_t>(i)] = (i * 17 + 3) % m.weights->cfg.vocab_size;
  Transformer t(m.weights, n);
  const float* l = t.forward(toks.data(), n, true);
  return std::vector<float>(l, l + static_cast<size_t>(n) * m.weights->cfg.vocab_size);
}

json read_json(const std::string& path) { return json::parse(std::ifstream(path)); }

// `quantize --format awq` writes the same model as the same quantization in lowbit's own layout;
// the folder reads back from the AWQ description alone (no lowbit keys) too.
TEST(AwqFormat, QuantizeRoundTripEqualsLowbitLayout) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_SHARED_OR_SKIP(calib, "data/tinystories");
  TempDir dir("awq_rt");
  int run = 0;
  for (const char* args : {"--algo rtn -g 32", "--algo rtn -g 128 --sym",
                           "--algo awq -g 128 --calib tinystories --nsamples 4 --seqlen 64",
                           "--algo gptq -g 64 --calib tinystories --nsamples 4 --seqlen 64 "
                           "--skip '*.layers.1.mlp.*'"}) {
    SCOPED_TRACE(args);
    ++run;
    const std::string lb = dir / fmt::format("lb{}", run), aw = dir / fmt::format("awq{}", run);
    const std::string common = std::string(" ") + args;
    const test::CliResult a =
        test::run_cli("quantize --model " + model + " --out " + lb + common + " --format lowbit");
    ASSERT_EQ(a.rc, 0) << a.out;
    const test::CliResult b =
        test::run_cli("quantize --model " + model + " --out " + aw + common + " --format awq");
    ASSERT_EQ(b.rc, 0) << b.out;
    const std::vector<float> want = logits_of(load_model(lb, "", false), 16);
    EXPECT_LT(test::max_rel_err(logits_of(load_model(aw, "", false), 16), want), 1e-5);

    json cfg = read_json(aw + "/config.json");
    json& qc = cfg["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "awq");
    EXPECT_EQ(qc["version"], "gemm");
    EXPECT_EQ(qc["bits"], 4);
    EXPECT_EQ(qc["zero_point"], true);
    const bool skipped = std::string(args).find("--skip") != std::string::npos;
    EXPECT_EQ(qc.contains("modules_to_not_convert"), skipped);
    if (skipped) {
      EXPECT_EQ(qc["modules_to_not_convert"],
                json({"model.layers.1.mlp.down_proj", "model.layers.1.mlp.gate_proj",
                      "model.layers.1.mlp.up_proj"}));
    }
    const json qcfg = read_json(aw + "/quant_config.json");  // AutoAWQ's own file
    EXPECT_EQ(qcfg["w_bit"], 4);
    EXPECT_EQ(qcfg["q_group_size"], qc["group_size"]);
    EXPECT_EQ(qcfg["version"], "GEMM");
    // Only the AWQ description (as a foreign folder has it): the same model.
    qc.erase("lowbit_modules");
    qc.erase("lowbit_algo");
    std::ofstream(aw + "/config.json") << cfg.dump(2);
    EXPECT_LT(test::max_rel_err(logits_of(load_model(aw, "", false), 16), want), 1e-5);
  }
  // Every command reads it (generate and eval load through load_model).
  const test::CliResult gen =
      test::run_cli("generate --model " + (dir / "awq1") + " --prompt 'Once upon' -n 8 --temp 0");
  EXPECT_EQ(gen.rc, 0) << gen.out;
}

// Int4 + f16 scales only, one group size, shapes AWQ can hold, no act-order, no activations:
// anything else is a one-line error naming the option or the module.
TEST(AwqFormat, QuantizeRefusesWhatAwqCannotHold) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_SHARED_OR_SKIP(stories, "models/stories260K-hf");
  TempDir dir("awq_bad");
  auto expect_error = [&](const std::string& m, const std::string& args, const std::string& what) {
    SCOPED_TRACE(args);
    const test::CliResult r =
        test::run_cli("quantize --model " + m + " --out " + (dir / "o") + " --format awq " + args);
    EXPECT_EQ(r.rc, 2) << r.out;
    EXPECT_NE(r.out.find(what), std::string::npos) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_FALSE(fs::exists(dir / "o"));
  };
  expect_error(model, "--algo rtn --bits 8", "int4 weights with f16 scales");
  expect_error(model, "--algo rtn --scale-dtype f32", "int4 weights with f16 scales");
  expect_error(model, "--algo rtn --weight-type nf4", "int4 weights with f16 scales");
  expect_error(model, "--algo gptq --act-order --calib tinystories --nsamples 2 --seqlen 32",
               "--act-order: the AWQ layout has no g_idx");
  expect_error(model, "--algo rtn --override '*.down_proj:group_size=64'",
               "model.layers.0.mlp.down_proj: group size 64 differs");
  expect_error(model, "--algo rtn --override 'lm_head:bits=4'",
               "lm_head: AWQ loaders keep the head in floating point");
  expect_error(model, "--algo rtn --act int8", "weight-only");
  // stories260K: MLP width 172 (not a multiple of 8 outputs, nor of the group size).
  expect_error(stories, "--algo rtn -g 32",
               "model.layers.0.mlp.down_proj: cannot be written as AWQ: group size 32 does not "
               "divide 172 input features");
  expect_error(stories, "--algo rtn -g 32 --skip '*.down_proj'",
               "model.layers.0.mlp.gate_proj: cannot be written as AWQ: 172 output features are "
               "not a multiple of 8");
}

// A folder as AutoAWQ publishes one, built here: linears of llama-256 quantized by a plain min/max
// fit written in the test, packed by the description, f16 scales, config.json with only the AWQ
// block (version "GEMM" as AutoAWQ spells it) and one module left in floating point. It loads and
// gives the logits of the same model with the dequantized weights stored in float.
TEST(AwqFormat, PublishStyleFolderLoads) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  TempDir dir("awq_pub");
  const fs::path awq = dir.path / "awq", fp = dir.path / "fp";
  fs::create_directories(awq);
  fs::create_directories(fp);
  const auto src = SafetensorsFile::open(model + "/model.safetensors");
  const int G = 64;
  const std::string kept = "model.layers.0.mlp.down_proj";
  std::vector<PackedTensor> awq_t, fp_t;
  std::set<std::string> quantized;
  for (const TensorInfo& t : src->tensors()) {
    ASSERT_EQ(t.dtype, DType::F32);
    std::vector<float> v(static_cast<size_t>(t.numel()));
    std::memcpy(v.data(), t.data, t.nbytes);
    const std::string prefix = t.name.substr(0, t.name.size() - 7);
    const bool linear = t.name.find(".layers.") != std::string::npos &&
                        t.name.find("_proj.weight") != std::string::npos && prefix != kept;
    auto bytes_of = [](const auto& vec) {
      std::vector<uint8_t> b(vec.size() * sizeof(vec[0]));
      std::memcpy(b.data(), vec.data(), b.size());
      return b;
    };
    if (!linear) {
      awq_t.push_back({t.name, DType::F32, t.shape, bytes_of(v)});
      fp_t.push_back({t.name, DType::F32, t.shape, bytes_of(v)});
      continue;
    }
    quantized.insert(prefix);
    const int out = static_cast<int>(t.shape[0]), in = static_cast<int>(t.shape[1]);
    const int groups = in / G;
    std::vector<uint8_t> codes(static_cast<size_t>(in) * out),
        zeros(static_cast<size_t>(groups) * out);
    std::vector<uint16_t> scales(static_cast<size_t>(groups) * out);
    std::vector<float> deq(v.size());
    for (int o = 0; o < out; ++o) {
      for (int g = 0; g < groups; ++g) {
        float lo = 0, hi = 0;
        for (int i = g * G; i < (g + 1) * G; ++i) {
          lo = std::min(lo, v[static_cast<size_t>(o) * in + i]);
          hi = std::max(hi, v[static_cast<size_t>(o) * in + i]);
        }
        const uint16_t sh = f32_to_f16(std::max((hi - lo) / 15.0f, 1e-5f));
        const float s = f16_to_f32(sh);
        const int z = std::clamp(static_cast<int>(std::lround(-lo / s)), 0, 15);
        scales[static_cast<size_t>(g) * out + o] = sh;
        zeros[static_cast<size_t>(g) * out + o] = static_cast<uint8_t>(z);
        for (int i = g * G; i < (g + 1) * G; ++i) {
          const int q = std::clamp(
              static_cast<int>(std::lround(v[static_cast<size_t>(o) * in + i] / s)) + z, 0, 15);
          codes[static_cast<size_t>(i) * out + o] = static_cast<uint8_t>(q);  // [in, out]
          deq[static_cast<size_t>(o) * in + i] = s * static_cast<float>(q - z);
        }
      }
    }
    awq_t.push_back({prefix + ".qweight",
                     DType::I32,
                     {in, out / 8},
                     bytes_of(pack_by_description(codes, in, out))});
    awq_t.push_back({prefix + ".qzeros",
                     DType::I32,
                     {groups, out / 8},
                     bytes_of(pack_by_description(zeros, groups, out))});
    awq_t.push_back({prefix + ".scales", DType::F16, {groups, out}, bytes_of(scales)});
    fp_t.push_back({t.name, DType::F32, t.shape, bytes_of(deq)});
  }
  ASSERT_EQ(quantized.size(), 4u * 7u - 1u);
  auto write = [](const fs::path& d, const std::vector<PackedTensor>& ts) {
    std::vector<TensorToWrite> w;
    for (const PackedTensor& t : ts) w.push_back(t.view());
    write_safetensors((d / "model.safetensors").string(), w, {{"format", "pt"}});
  };
  write(awq, awq_t);
  write(fp, fp_t);
  json cfg = read_json(model + "/config.json");
  std::ofstream(fp / "config.json") << cfg.dump(2);
  cfg["quantization_config"] = {{"quant_method", "awq"}, {"bits", 4},
                                {"group_size", G},       {"zero_point", true},
                                {"version", "GEMM"},     {"modules_to_not_convert", {kept}}};
  std::ofstream(awq / "config.json") << cfg.dump(2);

  const std::vector<float> want = logits_of(load_model(fp.string(), "", false), 16);
  RuntimeOptions deq;
  deq.repack = false;  // the reference path: dequantized at load
  EXPECT_LT(test::max_rel_err(logits_of(load_model(awq.string(), "", false, deq), 16), want), 1e-6);
  // Repacked for the int4 kernels: the packed weights are the dequantized ones, and with fp32
  // activations (the default quantizes them to int8 per block) the logits are the reference's.
  const LoadedModel packed = load_model(awq.string(), "", false);
  const LoadedModel plain = load_model(fp.string(), "", false);
  int n_packed = 0;
  for (size_t l = 0; l < packed.weights->layers.size(); ++l) {
    const LayerWeights &a = packed.weights->layers[l], &b = plain.weights->layers[l];
    for (const auto& [p, f] :
         {std::pair{&a.wq, &b.wq}, std::pair{&a.wk, &b.wk}, std::pair{&a.wv, &b.wv},
          std::pair{&a.wo, &b.wo}, std::pair{&a.w_gate, &b.w_gate}, std::pair{&a.w_up, &b.w_up},
          std::pair{&a.w_down, &b.w_down}}) {
      if (p->packed == nullptr) continue;
      ++n_packed;
      const std::vector<float> d = p->packed->dequantize();
      ASSERT_EQ(d.size(), static_cast<size_t>(f->out) * f->in);
      EXPECT_EQ(std::memcmp(d.data(), f->w, d.size() * sizeof(float)), 0) << "layer " << l;
    }
  }
  EXPECT_EQ(n_packed, 4 * 7 - 1);
  {
    const kernels::ActMode saved = kernels::act_mode();
    kernels::set_act_mode(kernels::ActMode::kF32);
    const std::vector<float> got = logits_of(packed, 16);
    kernels::set_act_mode(saved);
    EXPECT_LT(test::max_rel_err(got, want), 1e-5);
  }

  // The kept module carrying a qweight contradicts modules_to_not_convert.
  cfg["quantization_config"]["modules_to_not_convert"] = {"layers.1.self_attn.q_proj"};
  std::ofstream(awq / "config.json") << cfg.dump(2);
  const std::string err = test::error_of([&] { load_model(awq.string(), "", false); });
  EXPECT_NE(err.find("model.layers.1.self_attn.q_proj is in modules_to_not_convert"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("config.json"), std::string::npos) << err;
  // Other AWQ packings are refused by name.
  for (const char* v : {"gemv", "GEMV_fast", "marlin", "exllama"}) {
    cfg["quantization_config"]["modules_to_not_convert"] = {kept};
    cfg["quantization_config"]["version"] = v;
    std::ofstream(awq / "config.json") << cfg.dump(2);
    const std::string e = test::error_of([&] { load_model(awq.string(), "", false); });
    EXPECT_NE(e.find("AWQ version"), std::string::npos) << e;
    EXPECT_NE(e.find("is not supported"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  // ... and so is the same refusal through the CLI, as a one-line error with exit code 2.
  const test::CliResult r = test::run_cli("generate --model " + awq.string() + " --prompt a -n 1");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("AWQ version 'exllama' is not supported"), std::string::npos) << r.out;
}

// Damaged tensors and configs: one-line errors naming the file and the problem.
TEST(AwqFormat, HostileTensorsAndConfigs) {
  const QuantizedWeight good = random_weight(16, 128, 32, false, 11);
  const QuantScheme s = good.scheme;
  auto err_with = [&](const std::function<void(MemStore&)>& damage, const QuantScheme& scheme) {
    MemStore m;
    m.tensors = to_awq_tensors(good, "l");
    damage(m);
    m.index();
    return test::error_of([&] { from_awq_tensors(scheme, "l", m.lookup()); });
  };
  auto expect_err = [&](const std::string& e, const std::string& what) {
    EXPECT_NE(e.find(what), std::string::npos) << e;
    EXPECT_NE(e.find("mem.safetensors"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  };
  EXPECT_EQ(err_with([](MemStore&) {}, s), "(no error)");
  // qweight shape: more input rows than the zero points and scales cover.
  expect_err(err_with(
                 [](MemStore& m) {
                   m.get("l.qweight")->shape = {64, 2};
                 },
                 s),
             "tensor l.qzeros has shape [4, 2], expected [2, 2]");
  expect_err(err_with(
                 [](MemStore& m) {
                   m.get("l.qweight")->shape = {128, 2, 1};
                 },
                 s),
             "has 3 dimensions");
  expect_err(err_with([](MemStore& m) { m.get("l.qweight")->dtype = DType::F32; }, s),
             "l.qweight has dtype F32, expected I32");
  expect_err(err_with([](MemStore& m) { m.get("l.scales")->dtype = DType::I32; }, s),
             "l.scales has dtype I32, expected F16");
  // Input features not a whole number of groups.
  QuantScheme g48 = s;
  g48.group_size = 48;
  expect_err(err_with([](MemStore&) {}, g48), "not a multiple of the group size 48");
  // A symmetric module whose stored zero point is not 8.
  QuantScheme sym = s;
  sym.sym = true;
  expect_err(err_with([](MemStore&) {}, sym), "holds zero point");
  // Missing scales / zeros; an act-order g_idx.
  expect_err(err_with([](MemStore& m) { m.get("l.scales")->name = "l.scale"; }, s),
             "missing tensor l.scales");
  expect_err(err_with([](MemStore& m) { m.get("l.qzeros")->name = "x"; }, s),
             "missing tensor l.qzeros");
  expect_err(err_with(
                 [](MemStore& m) {
                   m.tensors.push_back({"l.g_idx", DType::I32, {128}, std::vector<uint8_t>(512)});
                 },
                 s),
             "g_idx is present");
  QuantScheme b8 = s;
  b8.bits = 8;
  expect_err(err_with([](MemStore&) {}, b8), "int4 weights, not int8");

  // Writing: act-order columns and shapes AWQ cannot hold.
  QuantizedWeight perm = good;
  std::swap(perm.g_idx[0], perm.g_idx[127]);
  EXPECT_NE(test::error_of([&] { to_awq_tensors(perm, "x"); }).find("act-order"),
            std::string::npos);
  const QuantizedWeight narrow = random_weight(12, 128, 32, false, 1);
  EXPECT_NE(test::error_of([&] {
              to_awq_tensors(narrow, "x");
            }).find("12 output features are not a multiple of 8"),
            std::string::npos);

  // Configs.
  auto cfg_err = [](json qc) {
    return test::error_of([&] { QuantizedCheckpointConfig::parse("cfg.json", qc); });
  };
  const json ok = {{"quant_method", "awq"},
                   {"bits", 4},
                   {"group_size", 128},
                   {"zero_point", true},
                   {"version", "gemm"}};
  EXPECT_EQ(cfg_err(ok), "(no error)");
  json autoawq = {{"quant_method", "awq"}, {"w_bit", 4}, {"q_group_size", 64}, {"version", "GEMM"}};
  EXPECT_EQ(cfg_err(autoawq), "(no error)");
  const ModuleStorage ms = QuantizedCheckpointConfig::parse("cfg.json", autoawq).module("m", true);
  EXPECT_EQ(ms.layout, "awq");
  EXPECT_EQ(ms.scheme.group_size, 64);
  EXPECT_FALSE(ms.scheme.sym);
  auto with = [&](const char* key, json v) {
    json j = ok;
    j[key] = std::move(v);
    return cfg_err(j);
  };
  EXPECT_NE(with("version", "gemv").find("cfg.json: AWQ version 'gemv' is not supported"),
            std::string::npos);
  EXPECT_NE(with("version", "marlin").find("is not supported"), std::string::npos);
  EXPECT_NE(with("version", 3).find("cfg.json: bad quantization_config"), std::string::npos);
  EXPECT_NE(with("bits", 8).find("AWQ with 8 bits"), std::string::npos);
  EXPECT_NE(with("zero_point", false).find("zero_point false"), std::string::npos);
  EXPECT_NE(with("group_size", 0).find("cfg.json"), std::string::npos);
  EXPECT_NE(with("modules_to_not_convert", "lm_head").find("not a list"), std::string::npos);
  EXPECT_NE(with("modules_to_not_convert", json::array({1})).find("not a name"), std::string::npos);
}

// The fuzz seeds of the AWQ layout (fuzz/make_seeds.py) are valid checkpoints, so the fuzzer
// starts from inputs that reach the unpacking: read as fuzz/quantized_checkpoint_fuzz.cpp does.
TEST(AwqFormat, FuzzSeedsDecode) {
  for (const char* seed : {"awq_gemm_int4", "awq_lowbit_modules_sym"}) {
    SCOPED_TRACE(seed);
    const std::string bytes =
        test::read_all(test::source_dir() + "/fuzz/corpus/quantized_checkpoint/" + seed);
    const size_t nul = bytes.find('\0');
    ASSERT_NE(nul, std::string::npos);
    const QuantizedCheckpointConfig qc =
        QuantizedCheckpointConfig::parse("seed", json::parse(bytes.substr(0, nul)));
    auto f = SafetensorsFile::from_memory(
        seed, std::vector<uint8_t>(bytes.begin() + static_cast<long>(nul) + 1, bytes.end()));
    const TensorLookup lookup = [&](const std::string& n) { return f->find(n); };
    int modules = 0;
    for (const TensorInfo& t : f->tensors()) {
      if (t.name.size() < 8 || t.name.substr(t.name.size() - 8) != ".qweight") continue;
      const std::string prefix = t.name.substr(0, t.name.size() - 8);
      const ModuleStorage ms = qc.module(prefix, true);
      EXPECT_EQ(ms.layout, "awq");
      const QuantizedWeight w = read_quantized_module(ms, prefix, lookup);
      EXPECT_EQ(w.out % 8, 0);
      ++modules;
    }
    EXPECT_EQ(modules, 1);
  }
}

// An interrupted `quantize --format awq` resumes: the finished layers are read back from their AWQ
// shards to recompute the calibration states, and the result equals an uninterrupted run.
TEST(AwqFormat, ResumeReplaysAwqShards) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_SHARED_OR_SKIP(calib, "data/tinystories");
  TempDir dir("awq_resume");
  const std::string args =
      " --algo gptq -g 64 --format awq --calib tinystories --nsamples 4 --seqlen 64";
  const std::string out = dir / "out", ref = dir / "ref";
  const test::CliResult killed = test::run_cmd(
      "LOWBIT_PROGRESS=0 LOWBIT_TEST_SIGNAL_AFTER_LAYER='1 " + std::to_string(SIGKILL) + "' " +
      test::cli_path() + " quantize --model " + model + " --out " + out + args);
  EXPECT_NE(killed.rc, 0) << killed.out;
  ASSERT_FALSE(fs::exists(out));
  const test::CliResult resumed =
      test::run_cli("quantize --model " + model + " --out " + out + args);
  ASSERT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resuming"), std::string::npos) << resumed.out;
  const test::CliResult whole = test::run_cli("quantize --model " + model + " --out " + ref + args);
  ASSERT_EQ(whole.rc, 0) << whole.out;
  int shards = 0;
  for (const auto& e : fs::directory_iterator(ref)) {
    if (e.path().extension() != ".safetensors") continue;
    ++shards;
    EXPECT_TRUE(test::read_all(e.path().string()) ==
                test::read_all((fs::path(out) / e.path().filename()).string()))
        << e.path().filename() << " differs from the uninterrupted run";
  }
  EXPECT_GE(shards, 4);
}

}  // namespace
}  // namespace lowbit
