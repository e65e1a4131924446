// GGUF export: the file format itself (the library's GGUF reader reads back what the writer
// wrote), and llama.cpp as the client — its tokenizer gives the ids lowbit
// gives, its perplexity tool the perplexity lowbit computes for the same windows (docs/INTEROP.md).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "gguf_test_util.h"
#include "lowbit/io/gguf_reader.h"
#include "lowbit/io/gguf_writer.h"
#include "lowbit/util/error.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using test::run_cli;
using test::run_cmd;

std::string tmp_path(const std::string& name) { return test::gguf_tmp_path(name); }

TEST(GgufWriter, WritesWhatTheSpecificationDescribes) {
  gguf::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 3);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_strings("tokenizer.ggml.tokens", {"a", "bc", ""});
  w.set_f32s("tokenizer.ggml.scores", {0.0f, -1.0f, -2.0f});
  const std::vector<float> a = {1.0f, 2.0f, 3.0f};  // 12 bytes: the next tensor is padded to 32
  w.add_tensor("a", {3}, gguf::GgmlType::kF32, [&](std::vector<uint8_t>* b) {
    b->resize(12);
    std::memcpy(b->data(), a.data(), 12);
  });
  w.add_tensor("b", {2, 5}, gguf::GgmlType::kBF16,
               [](std::vector<uint8_t>* b) { b->assign(20, 0x3f); });
  const std::string path = tmp_path("spec.gguf");
  w.write(path);
  const std::string bytes = test::read_all(path);
  {
    const gguf::Reader r = gguf::Reader::open(path);  // the library reader (io/gguf_reader.h)
    EXPECT_EQ(r.version(), 3u);
    EXPECT_EQ(r.get_string("general.architecture", true), "llama");
    EXPECT_EQ(r.get_uint("llama.block_count", true), 3u);
    EXPECT_TRUE(r.get_bool("tokenizer.ggml.add_bos_token", false));
    EXPECT_EQ(r.get_strings("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "bc", ""}));
    EXPECT_EQ(r.get_f32s("tokenizer.ggml.scores"), (std::vector<float>{0.0f, -1.0f, -2.0f}));
    ASSERT_EQ(r.tensors().size(), 2u);
    EXPECT_EQ(r.data_offset() % 32, 0u);
    EXPECT_EQ(r.tensor("a")->offset, 0u);
    EXPECT_EQ(r.tensor("b")->offset, 32u);  // aligned
    EXPECT_EQ(r.tensor("b")->ne, (std::vector<uint64_t>{2, 5}));
    EXPECT_EQ(r.tensor("b")->type, gguf::GgmlType::kBF16);
    float back[3];
    std::memcpy(back, r.tensor("a")->data, 12);
    EXPECT_EQ(std::vector<float>(back, back + 3), a);
    EXPECT_EQ(r.tensor("b")->data[0], 0x3f);
    EXPECT_GE(bytes.size(), r.data_offset() + 32 + 20);
  }
  fs::remove(path);
}

TEST(GgufWriter, AProducerErrorLeavesNoFile) {
  gguf::Writer w;
  w.add_tensor("x", {4}, gguf::GgmlType::kF32,
               [](std::vector<uint8_t>*) { throw Error("source: tensor x: truncated"); });
  const std::string path = tmp_path("fail.gguf");
  EXPECT_THROW(w.write(path), Error);
  EXPECT_FALSE(fs::exists(path));
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path())) {
    EXPECT_EQ(e.path().filename().string().find(fs::path(path).filename().string() + ".tmp"),
              std::string::npos);
  }
}

using test::llama_ids;
using test::lowbit_ids;
using test::number_after;

struct ExportCase {
  const char* model;  // under ../shared/models
  const char* type;
  double ppl_tol;  // relative
};

class GgufLlamaCpp : public ::testing::TestWithParam<ExportCase> {};

// Exports a shared model, then: llama.cpp loads it, tokenizes a WikiText-2 excerpt to the same
// ids as lowbit, and its perplexity over the same windows (-c 128, 8 windows) equals lowbit's
// `eval ppl --convention llamacpp` (f32: within 0.05 %; f16/bf16 rounding: within 1 %).
TEST_P(GgufLlamaCpp, LlamaCppReadsTheExportAsLowbitRunsTheModel) {
  const ExportCase c = GetParam();
  LOWBIT_SHARED_OR_SKIP(model, std::string("models/") + c.model);
  LOWBIT_LLAMACPP_OR_SKIP(bin);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  const std::string gguf = tmp_path(std::string(c.model) + "-" + c.type + ".gguf");
  const test::CliResult ex =
      run_cli("export gguf --model " + model + " --out " + gguf + " --type " + c.type);
  ASSERT_EQ(ex.rc, 0) << ex.out;
  // A WikiText-2 excerpt (no special tokens in it: llama.cpp's tools do not parse them in text).
  const std::string text_path = tmp_path("wiki-excerpt.txt");
  ASSERT_TRUE(test::write_text(text_path, test::read_all(wiki).substr(0, 12000)));
  const test::CliResult lt = run_cmd(bin + "/llama-tokenize -m " + gguf + " -f " + text_path +
                                     " --ids --log-disable 2>/dev/null");
  ASSERT_EQ(lt.rc, 0) << lt.out;
  const bool llama2c = std::string(c.model) == "stories260K";  // a llama2.c folder
  const std::string tok_src = llama2c ? "--tokenizer " + model + "/tok512.bin" : "--model " + model;
  const test::CliResult lb = run_cli("tokenize " + tok_src + " --text " + text_path);
  ASSERT_EQ(lb.rc, 0) << lb.out;
  const std::vector<std::string> a = llama_ids(lt.out), b = lowbit_ids(lb.out);
  EXPECT_GT(a.size(), 1000u);
  EXPECT_EQ(a, b) << "llama.cpp and lowbit tokenize the excerpt differently";

  const test::CliResult lp =
      run_cmd(bin + "/llama-perplexity -m " + gguf + " -f " + wiki + " -c 128 --chunks 8 -t 2");
  ASSERT_EQ(lp.rc, 0) << lp.out;
  const double theirs = number_after(lp.out, "Final estimate: PPL =");
  const test::CliResult ours = run_cli("eval ppl --model " + model + " --text " + wiki +
                                       " --ctx 128 --limit 8 --convention llamacpp");
  ASSERT_EQ(ours.rc, 0) << ours.out;
  const double mine = number_after(ours.out, "perplexity:");
  ASSERT_TRUE(std::isfinite(theirs) && std::isfinite(mine)) << lp.out << ours.out;
  EXPECT_NEAR(theirs / mine, 1.0, c.ppl_tol) << "llama.cpp " << theirs << ", lowbit " << mine;
  std::printf("[ gguf     ] %s %s: llama.cpp PPL %.4f, lowbit %.4f, %zu ids equal\n", c.model,
              c.type, theirs, mine, a.size());
  fs::remove(gguf);
  fs::remove(text_path);
}

INSTANTIATE_TEST_SUITE_P(Models, GgufLlamaCpp,
                         ::testing::Values(ExportCase{"stories260K-hf", "f32", 5e-4},
                                           ExportCase{"stories260K", "f32", 5e-4},
                                           ExportCase{"llama-256", "f32", 5e-4},
                                           ExportCase{"llama-256", "f16", 1e-2},
                                           ExportCase{"llama-256", "bf16", 1e-2}),
                         [](const auto& info) {
                           std::string n = std::string(info.param.model) + "_" + info.param.type;
                           for (char& ch : n) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

// Quantized GGUF export: a lowbit-quantized llama-256 (widths multiples of 256, so every GGUF
// type applies to every tensor) exported to GGUF; llama.cpp's perplexity tool on the file gives the
// perplexity lowbit computes for its quantized folder over the same windows (within 0.5 %: lowbit
// runs the same weights; llama.cpp rounds activations to 8 bits in its dot products, lowbit's int
// kernels too, with other blocks), and llama.cpp's greedy generation gives lowbit's text.
struct QuantExportCase {
  const char* name;
  const char* quantize;  // lowbit quantize arguments
  const char* expect;    // what the export must report ("written from their codes", "max |Δw| 0")
};

class GgufQuantLlamaCpp : public ::testing::TestWithParam<QuantExportCase> {};

TEST_P(GgufQuantLlamaCpp, LlamaCppRunsTheQuantizedModelAsLowbitDoes) {
  const QuantExportCase c = GetParam();
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(bin);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  LOWBIT_SHARED_OR_SKIP(calib, "data/tinystories/tinystories-v1-valid-calib.txt");
  const std::string dir = tmp_path(std::string("q-") + c.name);
  const std::string gguf = dir + ".gguf";
  fs::remove_all(dir);
  const test::CliResult qr =
      run_cli("quantize --model " + model + " --out " + dir + " " + c.quantize + " --calib " +
              calib + " --nsamples 16 --seqlen 128");
  ASSERT_EQ(qr.rc, 0) << qr.out;
  const test::CliResult ex = run_cli("export gguf --model " + dir + " --out " + gguf);
  ASSERT_EQ(ex.rc, 0) << ex.out;
  EXPECT_NE(ex.out.find(c.expect), std::string::npos) << ex.out;

  const test::CliResult lp =
      run_cmd(bin + "/llama-perplexity -m " + gguf + " -f " + wiki + " -c 128 --chunks 8 -t 2");
  ASSERT_EQ(lp.rc, 0) << lp.out;
  const double theirs = number_after(lp.out, "Final estimate: PPL =");
  const test::CliResult ours = run_cli("eval ppl --model " + dir + " --text " + wiki +
                                       " --ctx 128 --limit 8 --convention llamacpp");
  ASSERT_EQ(ours.rc, 0) << ours.out;
  const double mine = number_after(ours.out, "perplexity:");
  ASSERT_TRUE(std::isfinite(theirs) && std::isfinite(mine)) << lp.out << ours.out;
  EXPECT_NEAR(theirs / mine, 1.0, 5e-3) << "llama.cpp " << theirs << ", lowbit " << mine;

  // Greedy generation: the same continuation.
  const std::string prompt = "Once upon a time";
  const test::CliResult lg =
      run_cmd(bin + "/llama-cli -m " + gguf + " -p \"" + prompt +
              "\" -n 24 --temp 0 -no-cnv --simple-io -t 2 --no-warmup 2>/dev/null");
  ASSERT_EQ(lg.rc, 0) << lg.out;
  const test::CliResult og =
      run_cli("generate --model " + dir + " -p \"" + prompt + "\" -n 24 --temp 0 2>/dev/null");
  ASSERT_EQ(og.rc, 0) << og.out;
  // Both print the prompt and its continuation; compare the continuation's first 60 characters.
  const size_t la = lg.out.find(prompt), oa = og.out.find(prompt);
  ASSERT_NE(la, std::string::npos) << lg.out;
  ASSERT_NE(oa, std::string::npos) << og.out;
  const std::string lt = lg.out.substr(la, prompt.size() + 60);
  const std::string ot = og.out.substr(oa, prompt.size() + 60);
  EXPECT_EQ(lt, ot) << "llama.cpp: " << lg.out << "\nlowbit: " << og.out;
  std::printf("[ gguf     ] %s: llama.cpp PPL %.4f, lowbit %.4f; greedy %s\n", c.name, theirs, mine,
              lt == ot ? "equal" : "differs");
  fs::remove_all(dir);
  fs::remove(gguf);
}

INSTANTIATE_TEST_SUITE_P(
    Schemes, GgufQuantLlamaCpp,
    ::testing::Values(
        // lowbit schemes that are ggml blocks: written from the stored codes, same weights.
        QuantExportCase{"int4_g32_sym", "--algo rtn --bits 4 -g 32 --sym", "max |Δw| 0)"},
        QuantExportCase{"int4_g128_asym_gptq", "--algo gptq --bits 4 -g 128",
                        "with the minimum rounded to f16"},
        QuantExportCase{"int8_channel_sym", "--algo rtn --bits 8 -g -1 --sym", "max |Δw| 0)"},
        // GPTQ / RTN choosing codes on a ggml type's own grid: blocks copied as they are.
        QuantExportCase{"gptq_q4_k", "--algo gptq --weight-type q4_k", "max |Δw| 0)"},
        QuantExportCase{"gptq_q6_k", "--algo gptq --weight-type q6_k", "max |Δw| 0)"},
        QuantExportCase{"rtn_q5_k", "--algo rtn --weight-type q5_k --clip-search", "max |Δw| 0)"},
        QuantExportCase{"awq_q4_0", "--algo awq --weight-type q4_0", "max |Δw| 0)"},
        QuantExportCase{"rtn_q5_0", "--algo rtn --weight-type q5_0", "max |Δw| 0)"},
        QuantExportCase{"rtn_iq4_nl", "--algo rtn --weight-type iq4_nl --clip-search",
                        "max |Δw| 0)"},
        QuantExportCase{"gptq_q5_1", "--algo gptq --weight-type q5_1", "max |Δw| 0)"}),
    [](const auto& info) { return std::string(info.param.name); });

// Every GGUF type from a floating-point model: llama.cpp reads the file and its perplexity is
// that of the reference weights within what 4–8-bit blocks cost (a file llama.cpp could not
// decode as written would be far off).
TEST(GgufExport, EveryTypeFromFloatLoadsInLlamaCpp) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_LLAMACPP_OR_SKIP(bin);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  const test::CliResult ref = run_cli("eval ppl --model " + model + " --text " + wiki +
                                      " --ctx 128 --limit 4 --convention llamacpp");
  ASSERT_EQ(ref.rc, 0) << ref.out;
  const double base = number_after(ref.out, "perplexity:");
  for (const char* t : {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q4_k", "q5_k", "q6_k", "iq4_nl"}) {
    const std::string gguf = tmp_path(std::string("fp-") + t + ".gguf");
    const test::CliResult ex =
        run_cli("export gguf --model " + model + " --out " + gguf + " --type " + t);
    ASSERT_EQ(ex.rc, 0) << ex.out;
    const test::CliResult lp =
        run_cmd(bin + "/llama-perplexity -m " + gguf + " -f " + wiki + " -c 128 --chunks 4 -t 2");
    ASSERT_EQ(lp.rc, 0) << t << ": " << lp.out;
    const double p = number_after(lp.out, "Final estimate: PPL =");
    const double tol = t[1] == '8' || t[1] == '6' ? 0.02 : 0.12;
    EXPECT_NEAR(p / base, 1.0, tol) << t << ": llama.cpp " << p << ", FP " << base;
    std::printf("[ gguf     ] llama-256 %s from f32: llama.cpp PPL %.4f (FP %.4f)\n", t, p, base);
    fs::remove(gguf);
  }
}

TEST(GgufExport, BadRequestsAreOneLineErrors) {
  LOWBIT_SHARED_OR_SKIP(gpt2, "models/gpt2-tiny");
  LOWBIT_SHARED_OR_SKIP(llama, "models/llama-256");
  const std::string out = tmp_path("bad.gguf");
  test::CliResult r = run_cli("export gguf --model " + gpt2 + " --out " + out);
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("not supported"), std::string::npos) << r.out;
  r = run_cli("export gguf --model " + llama + " --out " + out + " --type q3_k");
  EXPECT_EQ(r.rc, 2) << r.out;  // a type lowbit does not write
  EXPECT_NE(r.out.find("unknown GGUF type"), std::string::npos) << r.out;
  r = run_cli("export gguf --model " + llama + " --out " + llama + "/model.gguf");
  EXPECT_EQ(r.rc, 2) << r.out;  // never into an input
  r = run_cli("export gguf --model " + llama + " --out " + fs::temp_directory_path().string());
  EXPECT_EQ(r.rc, 2) << r.out;  // a folder
  EXPECT_FALSE(fs::exists(out));
}

}  // namespace
}  // namespace lowbit
