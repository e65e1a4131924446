// GGUF import (docs/INTEROP.md, "GGUF import"): lowbit's own f32/f16 exports load back as the
// model they came from (logits, tokenizer ids, greedy text); llama.cpp's quantized files
// (llama-quantize) give llama-perplexity's perplexity; every command takes a .gguf; hostile files
// are one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gguf_test_util.h"
#include "lowbit/export/gguf_export.h"
#include "lowbit/io/gguf_reader.h"
#include "lowbit/io/gguf_writer.h"
#include "lowbit/model/load.h"
#include "lowbit/model/transformer.h"
#include "lowbit/model/weight_source.h"
#include "lowbit/util/mapped_file.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using test::gguf_tmp_path;
using test::number_after;
using test::run_cli;
using test::run_cmd;

std::string export_to(const std::string& model, const std::string& name, gguf::GgmlType type) {
  GgufExportOptions o;
  o.model = model;
  o.out = gguf_tmp_path(name);
  o.type = type;
  o.progress = false;
  export_gguf(o);
  return o.out;
}

std::string wiki_excerpt(size_t n) {
  const std::string wiki = test::shared_dir() + "/data/wikitext-2/wiki.test.raw";
  return test::read_all(wiki).substr(0, n);
}

std::vector<float> last_logits(const LoadedModel& m, const std::vector<int>& ids) {
  Transformer tf(m.weights, static_cast<int>(ids.size()) + 1);
  const float* l = tf.forward(ids.data(), static_cast<int>(ids.size()));
  return std::vector<float>(l, l + m.weights->cfg.vocab_size);
}

std::vector<int> greedy(const LoadedModel& m, std::vector<int> ids, int n) {
  Transformer tf(m.weights, static_cast<int>(ids.size()) + n);
  const float* l = tf.forward(ids.data(), static_cast<int>(ids.size()));
  std::vector<int> out;
  for (int i = 0; i < n; ++i) {
    const int next = static_cast<int>(std::max_element(l, l + m.weights->cfg.vocab_size) - l);
    out.push_back(next);
    if (i + 1 < n) l = tf.forward(&next, 1);
  }
  return out;
}

// Export as f32 -> load: the same logits (≤ 1e-5 of the largest), tokenizer ids on a WikiText-2
// excerpt, 24 greedy tokens; as f16: logits within f16 rounding.
void round_trip(const std::string& name) {
  LOWBIT_SHARED_OR_SKIP(model, "models/" + name);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  const LoadedModel orig = load_model(model);
  const std::string f32 = export_to(model, name + "-f32.gguf", gguf::GgmlType::kF32);
  const std::string f16 = export_to(model, name + "-f16.gguf", gguf::GgmlType::kF16);
  const LoadedModel back = load_model(f32);
  ASSERT_TRUE(back.tokenizer);
  EXPECT_EQ(back.weights->cfg.vocab_size, orig.weights->cfg.vocab_size);
  EXPECT_EQ(back.weights->cfg.tied_embeddings, orig.weights->cfg.tied_embeddings);

  const std::string text = wiki_excerpt(6000);
  const std::vector<int> ids = orig.tokenizer->encode(text, true);
  EXPECT_GT(ids.size(), 500u);
  EXPECT_EQ(back.tokenizer->encode(text, true), ids) << "tokenizers differ";
  EXPECT_EQ(back.tokenizer->encode(text, false), orig.tokenizer->encode(text, false));
  EXPECT_EQ(back.tokenizer->bos_id(), orig.tokenizer->bos_id());
  EXPECT_EQ(back.tokenizer->decode(ids), orig.tokenizer->decode(ids));

  const std::vector<int> prompt = orig.tokenizer->encode("Once upon a time, a little", true);
  const std::vector<float> want = last_logits(orig, prompt);
  EXPECT_LE(test::max_rel_err(last_logits(back, prompt), want), 1e-5);
  EXPECT_EQ(greedy(back, prompt, 24), greedy(orig, prompt, 24));
  const double f16_err = test::max_rel_err(last_logits(load_model(f16), prompt), want);
  EXPECT_LE(f16_err, 5e-3);
  EXPECT_GT(f16_err, 0.0);  // really rounded
  std::printf("[ gguf     ] %s: f32 round trip exact to 1e-5, f16 max rel err %.2e\n", name.c_str(),
              f16_err);
  fs::remove(f32);
  fs::remove(f16);
}

TEST(GgufImportRoundTrip, Stories260kHf) { round_trip("stories260K-hf"); }
TEST(GgufImportRoundTrip, Stories260kLlama2c) { round_trip("stories260K"); }
TEST(GgufImportRoundTrip, Llama256) { round_trip("llama-256"); }

// Llama-3.1 rope scaling travels as rope_freqs.weight and is applied as read: llama-256 with a
// llama3 rope_scaling (factor 8 over 64 original positions, which rescales most of its 16
// frequencies) gives the same logits from its f32 GGUF at 100 positions.
TEST(GgufImportRoundTrip, RopeFreqsFactors) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  test::TempDir dir("gguf_rope_freqs");
  nlohmann::json cfg = nlohmann::json::parse(test::read_all(model + "/config.json"));
  cfg["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 64}};
  ASSERT_TRUE(test::write_text(dir / "config.json", cfg.dump()));
  for (const char* f : {"model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    fs::create_symlink(model + "/" + f, dir / f);
  const std::string gguf = export_to(dir.str(), "rope-freqs.gguf", gguf::GgmlType::kF32);
  EXPECT_NE(gguf::Reader::open(gguf).tensor("rope_freqs.weight"), nullptr);
  const LoadedModel a = load_model(dir.str()), b = load_model(gguf), plain = load_model(model);
  EXPECT_EQ(b.weights->cfg.rope_scaling.type, "factors");
  std::vector<int> ids = a.tokenizer->encode(wiki_excerpt(2000), true);
  ids.resize(100);
  const std::vector<float> want = last_logits(a, ids);
  EXPECT_LE(test::max_rel_err(last_logits(b, ids), want), 1e-5);
  EXPECT_GT(test::max_rel_err(last_logits(plain, ids), want), 1e-3);  // the scaling matters
  fs::remove(gguf);
}

// llama.cpp's quantized files of llama-256, made once for the suite.
class GgufImportLlamaCpp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string model = test::shared_dir() + "/models/llama-256";
    if (!fs::exists(model) || !fs::exists(bin())) return;
    if (!test::llamacpp_missing_cpu_features().empty()) return;  // the tests skip
    f32_ = export_to(model, "q-src-f32.gguf", gguf::GgmlType::kF32);
    f16_ = export_to(model, "q-src-f16.gguf", gguf::GgmlType::kF16);
    for (const char* t : {"Q4_0", "Q8_0", "Q4_K_M", "Q6_K"}) {
      const std::string out = gguf_tmp_path(std::string("llama-256-") + t + ".gguf");
      const test::CliResult r =
          run_cmd(bin() + "/llama-quantize " + f32_ + " " + out + " " + t + " 2");
      if (r.rc != 0) std::printf("llama-quantize %s failed:\n%s\n", t, r.out.c_str());
    }
  }
  static void TearDownTestSuite() {
    for (const char* t : {"Q4_0", "Q8_0", "Q4_K_M", "Q6_K"})
      fs::remove(gguf_tmp_path(std::string("llama-256-") + t + ".gguf"));
    if (!f32_.empty()) fs::remove(f32_);
    if (!f16_.empty()) fs::remove(f16_);
  }
  static std::string bin() { return test::shared_dir() + "/peers/llama.cpp-b4748/bin"; }
  static std::string quantized(const char* t) {
    return gguf_tmp_path(std::string("llama-256-") + t + ".gguf");
  }
  static std::string f32_, f16_;
};
std::string GgufImportLlamaCpp::f32_, GgufImportLlamaCpp::f16_;

// lowbit's perplexity of each llama-quantize file equals llama-perplexity's on the same windows
// (WikiText-2 test, -c 128, 8 chunks) within 0.5 %.
TEST_F(GgufImportLlamaCpp, PerplexityOfQuantizedFilesMatchesLlamaCpp) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(llama_bin);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  for (const char* t : {"Q4_0", "Q8_0", "Q4_K_M", "Q6_K"}) {
    SCOPED_TRACE(t);
    const std::string q = quantized(t);
    ASSERT_TRUE(fs::exists(q));
    const test::CliResult lp = run_cmd(llama_bin + "/llama-perplexity -m " + q + " -f " + wiki +
                                       " -c 128 --chunks 8 -t 2");
    ASSERT_EQ(lp.rc, 0) << lp.out;
    const double theirs = number_after(lp.out, "Final estimate: PPL =");
    const test::CliResult ours = run_cli("eval ppl --model " + q + " --text " + wiki +
                                         " --ctx 128 --limit 8 --convention llamacpp");
    ASSERT_EQ(ours.rc, 0) << ours.out;
    const double mine = number_after(ours.out, "perplexity:");
    ASSERT_TRUE(std::isfinite(theirs) && std::isfinite(mine)) << lp.out << ours.out;
    EXPECT_NEAR(mine / theirs, 1.0, 5e-3) << "llama.cpp " << theirs << ", lowbit " << mine;
    std::printf("[ gguf     ] llama-256 %s: llama.cpp PPL %.4f, lowbit %.4f\n", t, theirs, mine);
  }
}

// q4_0 / q8_0 linears run on lowbit's integer kernels (repacked), and give the logits of the
// dequantized reference; the other types are dequantized.
TEST_F(GgufImportLlamaCpp, Q4_0AndQ8_0RepackOthersDequantize) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(llama_bin);
  const LoadedModel f = load_model(f32_);
  const std::vector<int> prompt = f.tokenizer->encode("The history of the city", true);
  const std::vector<float> want = last_logits(f, prompt);
  for (const char* t : {"Q4_0", "Q8_0", "Q6_K"}) {
    SCOPED_TRACE(t);
    const LoadedModel packed = load_model(quantized(t));
    RuntimeOptions deq;
    deq.repack = false;
    const LoadedModel ref = load_model(quantized(t), "", true, deq);
    const LayerWeights& l = packed.weights->layers[0];
    const bool repacks = std::string(t) != "Q6_K";
    EXPECT_EQ(l.wq.packed != nullptr, repacks);
    EXPECT_EQ(l.w_down.packed != nullptr, repacks);
    EXPECT_EQ(ref.weights->layers[0].wq.packed, nullptr);
    const std::vector<float> a = last_logits(packed, prompt), b = last_logits(ref, prompt);
    EXPECT_LE(test::max_rel_err(a, b), 2e-2);  // the kernels may quantize activations to int8
    const double err = test::max_rel_err(b, want);
    EXPECT_GT(err, 0.0);
    EXPECT_LT(err, 0.3);
  }
}

// eval kld between two GGUF files: a small positive divergence.
TEST_F(GgufImportLlamaCpp, KldBetweenGgufFiles) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(llama_bin);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  const test::CliResult r = run_cli("eval kld --base " + f16_ + " --model " + quantized("Q4_K_M") +
                                    " --text " + wiki + " --ctx 128 --limit 8");
  ASSERT_EQ(r.rc, 0) << r.out;
  const double kld = number_after(r.out, "KLD mean:");
  EXPECT_GT(kld, 1e-4);
  EXPECT_LT(kld, 0.1);
  std::printf("[ gguf     ] KLD(f16.gguf || Q4_K_M.gguf) = %.5f\n", kld);
}

// `quantize --model F.gguf` (RTN int4): from the f32 export the same model as from the folder
// (the same KLD to the original), from the f16 export the same within f16 rounding; a quantized
// GGUF is refused.
TEST_F(GgufImportLlamaCpp, QuantizeFromGguf) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(llama_bin);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  test::TempDir dir("gguf_quantize");
  auto kld_of = [&](const std::string& src, const std::string& out) {
    test::CliResult q = run_cli("quantize --model " + src + " --out " + out + " --algo rtn");
    EXPECT_EQ(q.rc, 0) << q.out;
    const test::CliResult k = run_cli("eval kld --base " + model + " --model " + out + " --text " +
                                      wiki + " --ctx 128 --limit 4");
    EXPECT_EQ(k.rc, 0) << k.out;
    return number_after(k.out, "KLD mean:");
  };
  const double from_hf = kld_of(model, dir / "hf");
  const double from_f32 = kld_of(f32_, dir / "f32");
  const double from_f16 = kld_of(f16_, dir / "f16");
  EXPECT_GT(from_hf, 0.0);
  EXPECT_EQ(from_f32, from_hf);
  EXPECT_NEAR(from_f16 / from_hf, 1.0, 0.05);
  // The folder carries the GGUF's vocabulary as tokenizer files that encode alike.
  const LoadedModel a = load_model(dir / "f32"), b = load_model(model);
  const std::string text = wiki_excerpt(3000);
  EXPECT_EQ(a.tokenizer->encode(text, true), b.tokenizer->encode(text, true));
  const test::CliResult r =
      run_cli("quantize --model " + quantized("Q4_0") + " --out " + (dir / "bad") + " --algo rtn");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("already quantized"), std::string::npos) << r.out;
}

// A "llama" vocabulary in llama2.c's conventions goes with the quantized folder as tokenizer.bin,
// which encodes as the original tokenizer.json.
TEST(GgufImportQuantize, LlamaVocabularyBecomesALlama2cTokenizer) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  test::TempDir dir("gguf_quantize_llama");
  const std::string f32 = export_to(model, "stories-q-src.gguf", gguf::GgmlType::kF32);
  const test::CliResult q =
      run_cli("quantize --model " + f32 + " --out " + (dir / "q") + " --algo rtn --group-size 32");
  ASSERT_EQ(q.rc, 0) << q.out;
  EXPECT_TRUE(fs::exists(dir / "q/tokenizer.bin"));
  const LoadedModel a = load_model(dir / "q"), b = load_model(model);
  const std::string text = wiki_excerpt(4000);
  EXPECT_EQ(a.tokenizer->encode(text, true), b.tokenizer->encode(text, true));
  fs::remove(f32);
}

// generate, tokenize, bench, eval lambada and export gguf take a .gguf.
TEST_F(GgufImportLlamaCpp, EveryCommandTakesAGgufFile) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(llama_bin);
  LOWBIT_SHARED_OR_SKIP(lambada, "data/lambada/lambada_test.jsonl");
  const std::string q = quantized("Q4_K_M");
  test::CliResult a = run_cli("generate --model " + f32_ + " -p 'Once upon a time' -n 16 --temp 0");
  test::CliResult b =
      run_cli("generate --model " + model + " -p 'Once upon a time' -n 16 --temp 0");
  ASSERT_EQ(a.rc, 0) << a.out;
  EXPECT_EQ(a.out.substr(0, a.out.find('[')), b.out.substr(0, b.out.find('[')));
  const std::string text = gguf_tmp_path("tok.txt");
  ASSERT_TRUE(test::write_text(text, wiki_excerpt(2000)));
  a = run_cli("tokenize --model " + q + " --text " + text);
  b = run_cli("tokenize --model " + model + " --text " + text);
  ASSERT_EQ(a.rc, 0) << a.out;
  EXPECT_EQ(a.out, b.out);
  a = run_cli("bench --model " + q + " -p 32 -n 8 -r 1");
  EXPECT_EQ(a.rc, 0) << a.out;
  a = run_cli("eval lambada --model " + q + " --data " + lambada + " --limit 5");
  EXPECT_EQ(a.rc, 0) << a.out;
  const std::string re = gguf_tmp_path("re-export.gguf");
  a = run_cli("export gguf --model " + f16_ + " --out " + re + " --type f16");
  ASSERT_EQ(a.rc, 0) << a.out;
  {  // the same tensors, bit for bit
    const gguf::Reader x = gguf::Reader::open(re), y = gguf::Reader::open(f16_);
    ASSERT_EQ(x.tensors().size(), y.tensors().size());
    for (const gguf::Tensor& t : y.tensors()) {
      const gguf::Tensor* u = x.tensor(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      ASSERT_EQ(u->bytes, t.bytes);
      EXPECT_EQ(std::memcmp(u->data, t.data, t.bytes), 0) << t.name;
    }
    EXPECT_EQ(x.get_strings("tokenizer.ggml.tokens"), y.get_strings("tokenizer.ggml.tokens"));
    EXPECT_EQ(x.get_strings("tokenizer.ggml.merges"), y.get_strings("tokenizer.ggml.merges"));
  }
  fs::remove(re);
  fs::remove(text);
}

// export gguf of a quantized GGUF writes every quantized linear's blocks back unchanged (q4_0 as
// lowbit's int4 codes, the k-quants as kept ggml blocks); the token embedding is dequantized.
TEST_F(GgufImportLlamaCpp, ReExportKeepsTheBlocks) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(llama_bin);
  for (const char* type : {"Q4_0", "Q4_K_M"}) {
    SCOPED_TRACE(type);
    const std::string re = gguf_tmp_path(std::string("re-") + type + ".gguf");
    const test::CliResult r = run_cli("export gguf --model " + quantized(type) + " --out " + re);
    ASSERT_EQ(r.rc, 0) << r.out;
    const gguf::Reader x = gguf::Reader::open(re), y = gguf::Reader::open(quantized(type));
    int same = 0;
    for (const gguf::Tensor& t : y.tensors()) {
      const gguf::Tensor* u = x.tensor(t.name);
      ASSERT_NE(u, nullptr) << t.name;
      if (t.name == "token_embd.weight") {
        EXPECT_EQ(u->type, gguf::GgmlType::kF16);
        continue;
      }
      ASSERT_EQ(u->type, t.type) << t.name;
      ASSERT_EQ(u->bytes, t.bytes) << t.name;
      EXPECT_EQ(std::memcmp(u->data, t.data, t.bytes), 0) << t.name;
      same += gguf::is_quantized(t.type);
    }
    EXPECT_EQ(same, 29);  // 4 layers × 7 linears + output
    fs::remove(re);
  }
}

// ---- hostile files ------------------------------------------------------------------------------

// GGUF bytes assembled field by field.
struct Bytes {
  std::vector<uint8_t> b;
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& f32(float v) { return raw(&v, 4); }
  Bytes& str(const std::string& s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Bytes& raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Bytes& header(uint64_t n_tensors, uint64_t n_kv) {
    raw("GGUF", 4);
    return u32(3).u64(n_tensors).u64(n_kv);
  }
  Bytes& zeros(size_t n) {
    b.resize(b.size() + n);
    return *this;
  }
  Bytes& pad() {
    while (b.size() % 32) b.push_back(0);
    return *this;
  }
};

std::string reader_error(const Bytes& x) {
  return test::error_of(
      [&] { gguf::Reader::from_file(MappedFile::from_memory("hostile.gguf", x.b)); });
}

void expect_error(const std::string& e, const std::string& what) {
  EXPECT_EQ(e.rfind("hostile.gguf: ", 0), 0u) << e;
  EXPECT_NE(e.find(what), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

// One tensor "t" of `ne` and `type` at `offset`, `data` bytes of data.
Bytes one_tensor(std::vector<uint64_t> ne, uint32_t type, uint64_t offset, size_t data) {
  Bytes x;
  x.header(1, 0).str("t").u32(static_cast<uint32_t>(ne.size()));
  for (uint64_t n : ne) x.u64(n);
  x.u32(type).u64(offset).pad();
  x.b.resize(x.b.size() + data);
  return x;
}

TEST(GgufImportHostile, EachProblemIsOneLineNamingTheFile) {
  expect_error(reader_error(Bytes().raw("GGUF", 4).u32(3).u32(0)), "truncated");
  expect_error(reader_error(Bytes().raw("GGUX", 4).u32(3).u64(0).u64(0)), "not a GGUF file");
  expect_error(reader_error(Bytes().raw("GGUF", 4).u32(1).u64(0).u64(0)), "version 1");
  expect_error(reader_error(Bytes().header(0, 1).u64(uint64_t{1} << 62).zeros(64)),
               "metadata key of 4611686018427387904 bytes");
  expect_error(reader_error(Bytes().header(0, 1).str("k").u32(8).u64(uint64_t{1} << 62).zeros(64)),
               "a string value needs 4611686018427387904 bytes");
  expect_error(reader_error(Bytes().header(uint64_t{1} << 60, 0)), "tensors cannot fit");
  expect_error(reader_error(Bytes().header(0, uint64_t{1} << 60)), "metadata entries");
  expect_error(reader_error(Bytes().header(0, 1).str("k").u32(9).u32(4).u64(uint64_t{1} << 61)),
               "past the end");
  expect_error(reader_error(Bytes().header(0, 1).str("k").u32(9).u32(8).u64(uint64_t{1} << 61)),
               "strings cannot fit");
  expect_error(reader_error(Bytes().header(0, 1).str("k").u32(77).zeros(16)), "unknown value type");
  expect_error(reader_error(one_tensor({4}, 0, 1 << 20, 16)), "runs past the end");
  expect_error(reader_error(one_tensor({4}, 99, 0, 16)), "unknown ggml type 99");
  expect_error(reader_error(one_tensor({uint64_t{1} << 40, uint64_t{1} << 40}, 0, 0, 16)),
               "overflowing shape");
  expect_error(reader_error(one_tensor({4}, 0, 3, 32)), "not a multiple of the alignment");
  expect_error(reader_error(one_tensor({30}, 2, 0, 32)), "not whole q4_0 blocks");
  expect_error(reader_error(one_tensor({4, 1, 1, 1, 1}, 0, 0, 16)), "dimensions");
  Bytes dup;
  dup.header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).zeros(32);
  expect_error(reader_error(dup), "appears twice");
  Bytes align;
  align.header(0, 1).str("general.alignment").u32(4).u32(24).zeros(32);
  expect_error(reader_error(align), "power of two");
  // A valid file of one f32 tensor reads.
  const Bytes ok = one_tensor({4}, 0, 0, 16);
  EXPECT_EQ(reader_error(ok), "(no error)");
}

// A tiny valid llama model (dim 8, one layer, 16 tokens) written by gguf::Writer; `drop` names a
// tensor or metadata key left out.
std::string tiny_model(const std::string& path, const std::string& drop = "") {
  gguf::Writer w;
  auto u32 = [&](const std::string& k, uint32_t v) {
    if (k != drop) w.set_u32(k, v);
  };
  if (drop != "general.architecture") w.set_string("general.architecture", "llama");
  u32("llama.embedding_length", 8);
  u32("llama.feed_forward_length", 16);
  u32("llama.block_count", 1);
  u32("llama.attention.head_count", 2);
  u32("llama.context_length", 32);
  if (drop != "llama.attention.layer_norm_rms_epsilon")
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  std::vector<std::string> toks = {"<unk>", "<s>", "</s>"};
  for (int i = 3; i < 16; ++i) toks.push_back(std::string(1, static_cast<char>('a' + i)));
  if (drop != "tokenizer.ggml.model") w.set_string("tokenizer.ggml.model", "llama");
  w.set_strings("tokenizer.ggml.tokens", toks);
  w.set_f32s("tokenizer.ggml.scores", std::vector<float>(16, 0.0f));
  auto tensor = [&](const std::string& name, std::vector<uint64_t> ne) {
    if (name == drop) return;
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    w.add_tensor(name, ne, gguf::GgmlType::kF32, [n](std::vector<uint8_t>* b) {
      std::vector<float> v(n);
      for (uint64_t i = 0; i < n; ++i) v[i] = 0.01f * static_cast<float>((i * 7) % 13) - 0.05f;
      b->resize(n * 4);
      std::memcpy(b->data(), v.data(), n * 4);
    });
  };
  tensor("token_embd.weight", {8, 16});
  tensor("output_norm.weight", {8});
  tensor("blk.0.attn_norm.weight", {8});
  for (const char* p : {"attn_q", "attn_k", "attn_v", "attn_output"})
    tensor(std::string("blk.0.") + p + ".weight", {8, 8});
  tensor("blk.0.ffn_norm.weight", {8});
  tensor("blk.0.ffn_gate.weight", {8, 16});
  tensor("blk.0.ffn_up.weight", {8, 16});
  tensor("blk.0.ffn_down.weight", {16, 8});
  w.write(path);
  return path;
}

TEST(GgufImportHostile, MissingTensorsAndMetadataAreOneLineErrors) {
  const std::string path = gguf_tmp_path("tiny.gguf");
  const LoadedModel m = load_model(tiny_model(path));  // the complete file loads and runs
  EXPECT_EQ(m.weights->cfg.dim, 8);
  EXPECT_TRUE(m.weights->cfg.tied_embeddings);
  EXPECT_EQ(last_logits(m, {1, 5, 6}).size(), 16u);
  EXPECT_EQ(m.tokenizer->encode("fgh", true).front(), 1);
  for (const std::string drop :
       {"blk.0.attn_k.weight", "output_norm.weight", "token_embd.weight", "llama.block_count",
        "llama.attention.layer_norm_rms_epsilon", "general.architecture", "tokenizer.ggml.model"}) {
    SCOPED_TRACE(drop);
    tiny_model(path, drop);
    const std::string e = test::error_of([&] { load_model(path); });
    EXPECT_EQ(e.rfind(path + ": ", 0), 0u) << e;
    EXPECT_NE(e.find(drop), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    const test::CliResult r = run_cli("generate --model " + path + " -p hi -n 2");
    EXPECT_EQ(r.rc, 2) << r.out;
    EXPECT_EQ(test::split_lines(r.out).size(), 2u) << r.out;  // one line + the final newline
    EXPECT_NE(r.out.find(path), std::string::npos) << r.out;
  }
  // A hostile header through the CLI.
  ASSERT_TRUE(test::write_text(path, std::string("GGUF\3\0\0\0", 8) + std::string(16, '\xff')));
  const test::CliResult r = run_cli("eval ppl --model " + path + " --text " + path);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find(path + ": "), std::string::npos) << r.out;
  fs::remove(path);
}

}  // namespace
}  // namespace lowbit
