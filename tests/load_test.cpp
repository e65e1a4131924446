// Loading Hugging Face folders and llama2.c files into ModelWeights.
#include "lowbit/model/load.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/io/safetensors.h"
#include "lowbit/model/arch.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"
#include "lowbit/util/mapped_file.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

using test::error_of;
using test::TempDir;

bool same_floats(const float* a, const float* b, size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}

// A tiny model folder written from the architecture table. Each tensor i holds values
// i + (j mod 8)/8 (exact in bf16/f16); `skip` omits a tensor, `bad_shape` gives it a wrong leading
// dimension.
ModelConfig tiny_config(bool tied, const std::string& arch = "LlamaForCausalLM") {
  ModelConfig c;
  c.architecture = arch;
  c.family = arch == "Qwen2ForCausalLM" ? "qwen2" : "llama";
  c.qkv_bias = arch == "Qwen2ForCausalLM";
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 10;
  c.max_seq_len = 32;
  c.tied_embeddings = tied;
  return c;
}

void write_tiny_folder(const std::string& dir, const ModelConfig& c, DType dtype,
                       const std::string& skip = "", const std::string& bad_shape = "") {
  write_file_atomic(dir + "/config.json", to_hf_config_json(c));
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<TensorToWrite> ts;
  int idx = 0;
  for (const auto& spec : find_arch(c.architecture)->tensors) {
    if (!tensor_present(spec, c)) continue;
    for (int l = 0; l < (is_per_layer(spec.role) ? c.n_layers : 1); ++l, ++idx) {
      const std::string name = tensor_name(spec, l);
      if (name == skip) continue;
      std::vector<int64_t> shape = expected_shape(spec, c);
      if (name == bad_shape) shape[0] += 1;
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      std::vector<uint8_t> b(static_cast<size_t>(n) * dtype_size(dtype));
      for (int64_t j = 0; j < n; ++j) {
        const float v = static_cast<float>(idx) + static_cast<float>(j % 8) / 8.0f;
        if (dtype == DType::F32) {
          std::memcpy(b.data() + j * 4, &v, 4);
        } else {
          const uint16_t h = dtype == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
          std::memcpy(b.data() + j * 2, &h, 2);
        }
      }
      bufs.push_back(std::move(b));
      ts.push_back({name, dtype, shape, bufs.back().data(), bufs.back().size()});
    }
  }
  write_safetensors(dir + "/model.safetensors", ts);
}

TEST(LoadHf, TinyFolderAllDtypes) {
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    TempDir dir(std::string("tiny_") + dtype_name(dt));
    write_tiny_folder(dir.str(), tiny_config(false), dt);
    auto w = load_hf_weights(dir.str());
    EXPECT_EQ(w->cfg.dim, 16);
    ASSERT_EQ(w->layers.size(), 2u);
    // Values i + (j mod 8)/8 with small i are exact in all three types.
    EXPECT_EQ(w->tok_embeddings[0], 0.0f);
    EXPECT_EQ(w->tok_embeddings[5], 5.0f / 8.0f);
    EXPECT_EQ(w->layers[0].attn_norm.w[1], 1.0f + 1.0f / 8.0f);
    EXPECT_EQ(w->layers[1].wq.out, 16);
    EXPECT_EQ(w->layers[1].wk.out, 8);
    EXPECT_EQ(w->layers[1].wk.in, 16);
    EXPECT_EQ(w->layers[0].w_down.out, 16);
    EXPECT_EQ(w->layers[0].w_down.in, 24);
    EXPECT_EQ(w->layers[0].wq.bias, nullptr);
    EXPECT_NE(w->lm_head.w, w->tok_embeddings);
    EXPECT_EQ(w->lm_head.out, 10);
    EXPECT_NE(w->final_norm.w, nullptr);
  }
}

TEST(LoadHf, F32IsZeroCopyAndTiedAliases) {
  TempDir dir("zc");
  write_tiny_folder(dir.str(), tiny_config(true), DType::F32);
  auto w = load_hf_weights(dir.str());
  EXPECT_EQ(w->lm_head.w, w->tok_embeddings);
  EXPECT_EQ(w->lm_head.out, 10);
  EXPECT_EQ(w->lm_head.in, 16);
  // keep_alive[0] is the mapped safetensors file; F32 weights point into it.
  auto file = std::static_pointer_cast<const SafetensorsFile>(w->keep_alive.at(0));
  const uint8_t* base = file->mapped()->data();
  const auto* p = reinterpret_cast<const uint8_t*>(w->layers[0].wq.w);
  const bool inside = p >= base && p < base + file->mapped()->size();
  EXPECT_TRUE(inside) << "F32 tensors must point into the mapped file";
}

TEST(LoadHf, QwenBiases) {
  TempDir dir("qwen");
  write_tiny_folder(dir.str(), tiny_config(true, "Qwen2ForCausalLM"), DType::BF16);
  auto w = load_hf_weights(dir.str());
  EXPECT_TRUE(w->cfg.qkv_bias);
  for (const auto& l : w->layers) {
    EXPECT_NE(l.wq.bias, nullptr);
    EXPECT_NE(l.wk.bias, nullptr);
    EXPECT_NE(l.wv.bias, nullptr);
    EXPECT_EQ(l.wo.bias, nullptr);
  }
  // Missing bias is an error for Qwen2.
  TempDir dir2("qwen_nobias");
  write_tiny_folder(dir2.str(), tiny_config(true, "Qwen2ForCausalLM"), DType::BF16,
                    "model.layers.1.self_attn.v_proj.bias");
  EXPECT_NE(error_of([&] {
              load_hf_weights(dir2.str());
            }).find("missing tensor model.layers.1.self_attn.v_proj.bias"),
            std::string::npos);
}

TEST(LoadHf, ShapeAndPresenceErrors) {
  TempDir dir("bad");
  write_tiny_folder(dir.str(), tiny_config(false), DType::F32, "",
                    "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(error_of([&] { load_hf_weights(dir.str()); }),
            dir.str() +
                "/model.safetensors: tensor model.layers.0.mlp.up_proj.weight has shape "
                "[25,16], expected [24,16]");
  // Untied but lm_head.weight absent.
  write_tiny_folder(dir.str(), tiny_config(false), DType::F32, "lm_head.weight");
  EXPECT_EQ(error_of([&] { load_hf_weights(dir.str()); }),
            dir.str() + "/model.safetensors: missing tensor lm_head.weight");
  // Unsupported dtype.
  {
    std::vector<int32_t> v(16 * 10);
    write_tiny_folder(dir.str(), tiny_config(false), DType::F32);
    auto st = SafetensorsFile::open(dir.str() + "/model.safetensors");
    std::vector<TensorToWrite> ts;
    for (const auto& t : st->tensors()) {
      if (t.name == "model.embed_tokens.weight") {
        ts.push_back({t.name, DType::I32, t.shape, v.data(), v.size() * 4});
      } else {
        ts.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
      }
    }
    write_safetensors(dir.str() + "/model2.safetensors", ts);
    fs::rename(dir.str() + "/model2.safetensors", dir.str() + "/model.safetensors");
    EXPECT_NE(error_of([&] { load_hf_weights(dir.str()); }).find("dtype I32"), std::string::npos);
  }
  // No config.json.
  TempDir empty("empty");
  EXPECT_NE(error_of([&] { load_hf_weights(empty.str()); }).find("config.json"), std::string::npos);
  EXPECT_NE(error_of([&] { load_model(empty.str(), "", false); }).find(empty.str()),
            std::string::npos);
  EXPECT_NE(error_of([&] { load_model("/nonexistent/model", "", false); }).find("no such file"),
            std::string::npos);
}

// Compares every tensor of a llama2.c load with the HF folder of the same model.
void expect_same_model(const ModelWeights& a, const ModelWeights& b) {
  const ModelConfig& c = a.cfg;
  EXPECT_EQ(c.dim, b.cfg.dim);
  EXPECT_EQ(c.hidden_dim, b.cfg.hidden_dim);
  EXPECT_EQ(c.n_layers, b.cfg.n_layers);
  EXPECT_EQ(c.n_heads, b.cfg.n_heads);
  EXPECT_EQ(c.n_kv_heads, b.cfg.n_kv_heads);
  EXPECT_EQ(c.head_dim, b.cfg.head_dim);
  EXPECT_EQ(c.vocab_size, b.cfg.vocab_size);
  EXPECT_EQ(c.max_seq_len, b.cfg.max_seq_len);
  EXPECT_EQ(c.tied_embeddings, b.cfg.tied_embeddings);
  EXPECT_EQ(c.norm_eps, b.cfg.norm_eps);
  EXPECT_EQ(c.rope_theta, b.cfg.rope_theta);
  const size_t d = static_cast<size_t>(c.dim), h = static_cast<size_t>(c.hidden_dim);
  const size_t kv = static_cast<size_t>(c.n_kv_heads * c.head_dim);
  EXPECT_TRUE(same_floats(a.tok_embeddings, b.tok_embeddings, d * c.vocab_size));
  EXPECT_TRUE(same_floats(a.final_norm.w, b.final_norm.w, d));
  EXPECT_TRUE(same_floats(a.lm_head.w, b.lm_head.w, d * c.vocab_size));
  for (size_t l = 0; l < a.layers.size(); ++l) {
    SCOPED_TRACE("layer " + std::to_string(l));
    const LayerWeights& x = a.layers[l];
    const LayerWeights& y = b.layers[l];
    EXPECT_TRUE(same_floats(x.attn_norm.w, y.attn_norm.w, d));
    EXPECT_TRUE(same_floats(x.ffn_norm.w, y.ffn_norm.w, d));
    EXPECT_TRUE(same_floats(x.wq.w, y.wq.w, d * d)) << "permuted wq must equal HF q_proj";
    EXPECT_TRUE(same_floats(x.wk.w, y.wk.w, kv * d)) << "permuted wk must equal HF k_proj";
    EXPECT_TRUE(same_floats(x.wv.w, y.wv.w, kv * d));
    EXPECT_TRUE(same_floats(x.wo.w, y.wo.w, d * d));
    EXPECT_TRUE(same_floats(x.w_gate.w, y.w_gate.w, h * d));
    EXPECT_TRUE(same_floats(x.w_up.w, y.w_up.w, h * d));
    EXPECT_TRUE(same_floats(x.w_down.w, y.w_down.w, d * h));
    EXPECT_EQ(x.wk.out, y.wk.out);
    EXPECT_EQ(x.w_down.in, y.w_down.in);
  }
}

TEST(LoadLlama2c, Stories260KMatchesHfFolderExactly) {
  LOWBIT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  LOWBIT_SHARED_OR_SKIP(hf, "models/stories260K-hf");
  auto a = load_llama2c_weights(bin);
  auto b = load_hf_weights(hf);
  EXPECT_EQ(a->cfg.dim, 64);
  EXPECT_EQ(a->cfg.hidden_dim, 172);
  EXPECT_EQ(a->cfg.n_kv_heads, 4);
  EXPECT_EQ(a->cfg.vocab_size, 512);
  EXPECT_EQ(a->cfg.architecture, "LlamaForCausalLM");
  EXPECT_TRUE(a->cfg.tied_embeddings);
  expect_same_model(*a, *b);
  // Through load_model: the file, and the folder holding it.
  auto m1 = load_model(bin, "", false);
  EXPECT_EQ(m1.weights->cfg.dim, 64);
  EXPECT_EQ(m1.tokenizer, nullptr);
  auto m2 = load_model(fs::path(bin).parent_path().string(), "", false);
  EXPECT_EQ(m2.weights->cfg.vocab_size, 512);
  auto m3 = load_model(hf, "", false);
  EXPECT_EQ(m3.weights->cfg.n_layers, 5);
}

TEST(LoadLlama2c, BabyLlamaMatchesHfFolderExactly) {
  LOWBIT_SHARED_OR_SKIP(bin, "models/babyllama-105/model5000.bin");
  LOWBIT_SHARED_OR_SKIP(hf, "models/babyllama-105-hf");
  auto a = load_llama2c_weights(bin);
  auto b = load_hf_weights(hf);
  EXPECT_EQ(a->cfg.dim, 128);
  EXPECT_EQ(a->cfg.hidden_dim, 352);
  EXPECT_EQ(a->cfg.vocab_size, 105);
  EXPECT_EQ(a->cfg.max_seq_len, 256);
  expect_same_model(*a, *b);
}

std::vector<char> read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), {});
}

void write_all(const std::string& p, const std::vector<char>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

// A llama2.c checkpoint of the given header with weights i/64 (finite, exact).
std::vector<uint8_t> llama2c_bytes(int dim, int hidden, int layers, int heads, int kv_heads,
                                   int vocab, int seq) {
  const int64_t head = dim / heads, kv = int64_t{kv_heads} * head, v = std::abs(vocab);
  const int64_t floats = v * dim + layers * dim + 2 * layers * dim * dim + 2 * layers * kv * dim +
                         layers * dim + 3 * int64_t{layers} * hidden * dim + dim + seq * head +
                         (vocab > 0 ? 0 : v * dim);
  const int32_t header[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq};
  std::vector<uint8_t> b(sizeof(header) + static_cast<size_t>(floats) * 4);
  std::memcpy(b.data(), header, sizeof(header));
  for (int64_t i = 0; i < floats; ++i) {
    const float x = static_cast<float>(i % 64) / 64.0f;
    std::memcpy(b.data() + sizeof(header) + i * 4, &x, 4);
  }
  return b;
}

TEST(LoadLlama2c, FromMemoryLoadsAndNamesItsPath) {
  const std::vector<uint8_t> bytes = llama2c_bytes(8, 16, 2, 2, 1, -16, 4);
  auto w = load_llama2c_weights(MappedFile::from_memory("mem/model.bin", bytes));
  EXPECT_EQ(w->cfg.dim, 8);
  EXPECT_EQ(w->cfg.n_kv_heads, 1);
  EXPECT_EQ(w->cfg.vocab_size, 16);
  EXPECT_FALSE(w->cfg.tied_embeddings);
  EXPECT_EQ(w->layers.size(), 2u);
  EXPECT_EQ(w->tok_embeddings[65], 1.0f / 64);
  // The copying path reads the same numbers.
  auto c = load_llama2c_weights(MappedFile::from_memory("mem/model.bin", bytes), false);
  EXPECT_TRUE(same_floats(c->layers[1].wk.w, w->layers[1].wk.w, 4 * 8));
  EXPECT_TRUE(same_floats(c->lm_head.w, w->lm_head.w, 16 * 8));
  std::vector<uint8_t> cut(bytes.begin(), bytes.end() - 4);
  EXPECT_EQ(error_of([&] { load_llama2c_weights(MappedFile::from_memory("mem/model.bin", cut)); }),
            fmt::format("mem/model.bin: truncated llama2.c checkpoint: {} bytes, its header "
                        "needs {}",
                        cut.size(), bytes.size()));
}

TEST(LoadLlama2c, RejectsTruncatedAndBadHeaders) {
  LOWBIT_SHARED_OR_SKIP(bin, "models/stories260K/stories260K.bin");
  TempDir dir("l2c");
  std::vector<char> bytes = read_all(bin);
  const std::string p = dir.str() + "/m.bin";
  std::vector<char> cut(bytes.begin(), bytes.end() - 4);
  write_all(p, cut);
  EXPECT_EQ(error_of([&] { load_llama2c_weights(p); }),
            p + ": truncated llama2.c checkpoint: 1056536 bytes, its header needs 1056540");
  // An over-long file is not "truncated": it says what is extra.
  std::vector<char> longer = bytes;
  longer.resize(bytes.size() + 8, 0);
  write_all(p, longer);
  EXPECT_EQ(error_of([&] { load_llama2c_weights(p); }),
            p + ": 8 bytes more than a llama2.c checkpoint with this header holds (1056540 "
                "bytes): a different format or version, or something appended");
  write_all(p, std::vector<char>(bytes.begin(), bytes.begin() + 10));
  EXPECT_NE(error_of([&] { load_llama2c_weights(p); }).find("truncated"), std::string::npos);
  auto with_header = [&](int idx, int32_t v) {
    std::vector<char> b = bytes;
    std::memcpy(b.data() + 4 * idx, &v, 4);
    write_all(p, b);
    return error_of([&] { load_llama2c_weights(p); });
  };
  EXPECT_NE(with_header(0, 0).find("dim = 0"), std::string::npos);
  EXPECT_NE(with_header(3, 7).find("not a multiple of n_heads"), std::string::npos);
  EXPECT_NE(with_header(4, 3).find("not a multiple of n_kv_heads"), std::string::npos);
  EXPECT_NE(with_header(2, 1 << 30).find("n_layers"), std::string::npos);
  EXPECT_NE(with_header(5, INT32_MIN).find("vocab_size"), std::string::npos);
  // Negative vocab = untied classifier expected at the end: file is now too short.
  EXPECT_NE(with_header(5, -512).find("its header needs 1187612"), std::string::npos);
  // Untied classifier appended: loads, lm_head distinct from the embeddings.
  {
    std::vector<char> b = bytes;
    int32_t v = -512;
    std::memcpy(b.data() + 20, &v, 4);
    b.insert(b.end(), bytes.begin() + 28, bytes.begin() + 28 + 512 * 64 * 4);
    write_all(p, b);
    auto w = load_llama2c_weights(p);
    EXPECT_FALSE(w->cfg.tied_embeddings);
    EXPECT_NE(w->lm_head.w, w->tok_embeddings);
    EXPECT_TRUE(same_floats(w->lm_head.w, w->tok_embeddings, 512 * 64));
  }
  // A folder with two checkpoints is ambiguous.
  write_all(dir.str() + "/other.bin", bytes);
  EXPECT_NE(error_of([&] { load_model(dir.str(), "", false); }).find("several"), std::string::npos);
}

}  // namespace
}  // namespace lowbit
