// `lowbit quantize` through the real CLI binary: a successful run prints the report table and
// writes the JSON report, the result loads in the other commands; every bad input fails with one
// line "lowbit: <where>: <problem>", exit code 2, and leaves neither the output folder nor a
// "<out>.tmp.*" folder behind (also when the disk fills mid-write).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "lowbit/io/dtype.h"
#include "lowbit/synth/synth.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::TempDir;

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary);
  f << bytes;
}

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> s;
  for (const auto& e : fs::directory_iterator(dir)) s.insert(e.path().filename().string());
  return s;
}

// Exit code 2 and exactly one non-empty output line that starts with "lowbit: " and names `what`.
void expect_one_line_error(const test::CliResult& r, const std::string& what) {
  EXPECT_EQ(r.rc, 2) << r.out;
  std::string out = r.out;
  while (!out.empty() && out.front() == '\n') out.erase(0, 1);
  while (!out.empty() && out.back() == '\n') out.pop_back();
  EXPECT_EQ(out.find('\n'), std::string::npos) << "more than one line: " << r.out;
  EXPECT_EQ(out.rfind("lowbit: ", 0), 0u) << out;
  EXPECT_NE(out.find(what), std::string::npos) << "expected '" << what << "' in: " << out;
}

// A synthetic "small" model (dim 256, hidden 688, 2 layers, vocab 512, untied), F32, no
// tokenizer, written once for the whole suite.
class QuantizeCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    models_ = new TempDir("qcli_models");
    SynthOptions o;
    o.shape = "small";
    o.dtype = DType::F32;
    o.layers = 2;
    o.seed = 3;
    o.out_dir = models_->sub("small");
    synth_checkpoint(o);
  }
  static void TearDownTestSuite() {
    delete models_;
    models_ = nullptr;
  }
  static std::string small_model() { return models_->sub("small"); }

  // Runs `lowbit quantize --model <model> --out <dir>/out <args>` and expects a one-line error
  // naming `what`, and that <dir> is left as it was (no "out", no "out.tmp.*").
  void expect_quantize_error(const std::string& model, const std::string& args,
                             const std::string& what) {
    TempDir dir("qcli_err");
    const std::set<std::string> before = entries(dir.path);
    const std::string out = dir / "out";
    const test::CliResult r =
        test::run_cli("quantize --model " + model + " --out " + out + " " + args);
    SCOPED_TRACE(args);
    expect_one_line_error(r, what);
    EXPECT_EQ(entries(dir.path), before);
  }

  static TempDir* models_;
};

TempDir* QuantizeCli::models_ = nullptr;

TEST_F(QuantizeCli, RtnWritesTheReportAndAFolderTheOtherCommandsLoad) {
  TempDir dir("qcli_ok");
  const std::string out = dir / "out", js = dir / "report.json";
  const test::CliResult r =
      test::run_cli("quantize --model " + small_model() + " --out " + out +
                    " --algo rtn --bits 4 --group-size 32 --json " + js + " -t 2");
  ASSERT_EQ(r.rc, 0) << r.out;
  // The table: header, one row per linear, totals.
  EXPECT_NE(r.out.find("| layer"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bits/w"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| model.layers.0.self_attn.q_proj"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| model.layers.1.mlp.down_proj"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("| lm_head"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("bits/weight over"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no calibration data"), std::string::npos) << r.out;
  // down_proj [256, 688]: 688 columns are not a multiple of 32 -> per-channel in the GPTQ layout.
  EXPECT_NE(r.out.find("fallback: model.layers.0.mlp.down_proj"), std::string::npos) << r.out;
  EXPECT_EQ(entries(dir.path), (std::set<std::string>{"out", "report.json"}));

  const json j = json::parse(test::read_all(js), nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << test::read_all(js);
  EXPECT_EQ(j["algo"], "rtn");
  EXPECT_EQ(j["format"], "gptq");
  EXPECT_EQ(j["out"], out);
  EXPECT_EQ(j["layers"].size(), 2u * 7 + 1);
  EXPECT_EQ(j["fallbacks"].size(), 2u);
  EXPECT_GT(j["bits_per_weight"].get<double>(), 4.0);
  EXPECT_LT(j["bits_per_weight"].get<double>(), 6.0);
  EXPECT_GT(j["peak_rss_bytes"].get<int64_t>(), 0);
  for (const json& l : j["layers"]) {
    if (l["name"] == "lm_head") continue;
    EXPECT_GT(l["rel_error"].get<double>(), 0.0) << l.dump();
    EXPECT_LT(l["rel_error"].get<double>(), 1.0) << l.dump();
  }
  const json cfg = json::parse(test::read_all(out + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "gptq");
  EXPECT_EQ(cfg["quantization_config"]["bits"], 4);
  EXPECT_EQ(cfg["quantization_config"]["group_size"], 32);

  // The quantized folder runs in the other commands.
  const test::CliResult b =
      test::run_cli("bench --model " + out + " -p 8 -n 2 -r 1 -t 2 --no-probe");
  EXPECT_EQ(b.rc, 0) << b.out;
  EXPECT_NE(b.out.find("tg2"), std::string::npos) << b.out;

  // Quantizing it again is refused.
  expect_quantize_error(out, "--algo rtn", "already quantized");
  // So is overwriting it without --force; the folder stays as it was.
  const std::set<std::string> files = entries(out);
  const test::CliResult again = test::run_cli("quantize --model " + small_model() + " --out " +
                                              out + " --algo rtn --bits 4 --group-size 32");
  expect_one_line_error(again, "already exists");
  EXPECT_EQ(entries(out), files);
  EXPECT_EQ(entries(dir.path), (std::set<std::string>{"out", "report.json"}));
  // With --force it is replaced (here by an 8-bit model).
  const test::CliResult forced =
      test::run_cli("quantize --model " + small_model() + " --out " + out +
                    " --algo rtn --bits 8 --group-size 32 --force");
  EXPECT_EQ(forced.rc, 0) << forced.out;
  EXPECT_EQ(json::parse(test::read_all(out + "/config.json"))["quantization_config"]["bits"], 8);
  EXPECT_EQ(entries(dir.path), (std::set<std::string>{"out", "report.json"}));
}

TEST_F(QuantizeCli, SharedModelQuantizesAndEvaluates) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  LOWBIT_SHARED_OR_SKIP(text, "data/tinystories/tinystories-v1-valid-first500.txt");
  TempDir dir("qcli_shared");
  const std::string out = dir / "out", js = dir / "r.json";
  const test::CliResult r = test::run_cli("quantize --model " + model + " --out " + out +
                                          " --algo rtn --bits 4 --group-size 32 --json " + js);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("| model.layers.4.mlp.down_proj"), std::string::npos) << r.out;
  // The tokenizer files travel with the model.
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));

  auto ppl_of = [](const test::CliResult& e) {
    const size_t p = e.out.find("perplexity:");
    if (p == std::string::npos) return -1.0;
    return std::stod(e.out.substr(p + 11));
  };
  const test::CliResult q =
      test::run_cli("eval ppl --model " + out + " --text tinystories --limit 2");
  ASSERT_EQ(q.rc, 0) << q.out;
  EXPECT_NE(q.out.find("windows:         2 of"), std::string::npos) << q.out;
  const test::CliResult f =
      test::run_cli("eval ppl --model " + model + " --text tinystories --limit 2");
  ASSERT_EQ(f.rc, 0) << f.out;
  const double ppl_q = ppl_of(q), ppl_f = ppl_of(f);
  // Measured on these 2 windows: FP 6.437, RTN W4 g32 (int8 fallbacks for the MLP) 7.186
  // (ratio 1.116).
  EXPECT_GT(ppl_f, 1.0);
  EXPECT_TRUE(std::isfinite(ppl_q));
  EXPECT_GT(ppl_q, 0.95 * ppl_f) << q.out;
  EXPECT_LT(ppl_q, 1.3 * ppl_f) << q.out;

  // A calibrated run: GPTQ with act-order in the lowbit layout; the report measures output errors.
  const std::string out2 = dir / "out2", js2 = dir / "r2.json";
  const test::CliResult g = test::run_cli(
      "quantize --model " + model + " --out " + out2 +
      " --algo gptq --act-order --format lowbit --bits 4 --group-size 32 --calib tinystories "
      "--nsamples 8 --seqlen 128 --json " +
      js2);
  ASSERT_EQ(g.rc, 0) << g.out;
  EXPECT_NE(g.out.find("calibration: 8 x 128 tokens"), std::string::npos) << g.out;
  const json j2 = json::parse(test::read_all(js2));
  EXPECT_EQ(j2["calibration"]["nsamples"], 8);
  EXPECT_EQ(j2["calibration"]["seqlen"], 128);
  EXPECT_TRUE(j2["fallbacks"].empty());
  for (const json& l : j2["layers"]) EXPECT_EQ(l["error_kind"], "output") << l.dump();
  const test::CliResult q2 =
      test::run_cli("eval ppl --model " + out2 + " --text tinystories --limit 2");
  ASSERT_EQ(q2.rc, 0) << q2.out;
  // Measured: 7.020 (ratio 1.090).
  EXPECT_GT(ppl_of(q2), 0.95 * ppl_f) << q2.out;
  EXPECT_LT(ppl_of(q2), 1.3 * ppl_f) << q2.out;
}

// ---- bad input -------------------------------------------------------------------------------

TEST_F(QuantizeCli, BadSchemeFlags) {
  const std::string m = small_model();
  expect_quantize_error(m, "--algo rtn --bits 5", "not 5");
  expect_quantize_error(m, "--algo rtn --group-size 0", "group size 0");
  expect_quantize_error(m, "--algo rtn --group-size -7", "--group-size: '-7' is outside [-1, ");
  expect_quantize_error(m, "--algo foo", "unknown algorithm 'foo'");
  expect_quantize_error(m, "--algo rtn --weight-type int5", "unknown weight type 'int5'");
  expect_quantize_error(m, "--algo rtn --scale-dtype f64", "unknown scale type 'f64'");
  expect_quantize_error(m, "--algo rtn --int4-clip", "symmetric");
  expect_quantize_error(m, "--algo rtn --format bnb", "--format");
  expect_quantize_error(m, "--algo rtn --gptq-version 3", "--gptq-version");
  expect_quantize_error(m, "--algo rtn --override '*.down_proj:bits=5'", "not 5");
  expect_quantize_error(m, "--algo rtn --override '*.down_proj'", "--override");
  expect_quantize_error(m, "--algo rtn --override '*.down_proj:bitz=8'", "unknown key 'bitz'");
  expect_quantize_error(m, "--algo rtn --bits four", "--bits");
  // Activation quantization and SmoothQuant flags.
  expect_quantize_error(m, "--algo rtn --smoothquant 0.5", "--smoothquant: needs --act int8");
  expect_quantize_error(m, "--algo rtn --act-static", "--act-static: needs --act int8");
  expect_quantize_error(m, "--algo rtn --act int4", "--act");
  expect_quantize_error(m, "--algo rtn --act int8 --act-granularity block --act-asym",
                        "symmetric only");
  expect_quantize_error(m, "--algo rtn --act int8 --act-granularity token --act-static",
                        "static activations are per tensor");
  expect_quantize_error(m, "--algo rtn --act int8 --smoothquant 1.5", "alpha in [0, 1]");
  expect_quantize_error(
      m, "--algo rtn --act int8 --smoothquant auto --alpha-min 0.8 --alpha-max 0.2", "is empty");
  expect_quantize_error(m, "--algo awq --act int8 --smoothquant 0.5", "AWQ has its own scales");
  expect_quantize_error(m, "--algo rtn --weight-type nf4 --act int8", "need integer weights");
}

// Regression: an override is validated over the CLI's scheme (Recipe::validate_rules), so
// `--sym --override 'X:int4_clip=true'` is accepted, and a rule that makes an invalid scheme fails
// before any work.
TEST_F(QuantizeCli, ClipOverrideOverSymmetricScheme) {
  TempDir dir("qcli_clip");
  const std::string out = dir / "out";
  const test::CliResult r =
      test::run_cli("quantize --model " + small_model() + " --out " + out +
                    " --algo rtn --sym --group-size 32 --override '*.q_proj:int4_clip=true'");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("| model.layers.0.self_attn.q_proj | int4 g32 sym-clip"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("| model.layers.0.self_attn.k_proj | int4 g32 sym f16"), std::string::npos)
      << r.out;
}

TEST_F(QuantizeCli, BadModelAndOutput) {
  const std::string m = small_model();
  expect_quantize_error("/nonexistent/model", "--algo rtn", "/nonexistent/model");
  // GPTQ needs calibration text, which needs a tokenizer; this model has none.
  expect_quantize_error(m, "--algo gptq --nsamples 2 --seqlen 8", "tokenizer");
  // The output's parent is a regular file: the output folder cannot be created.
  TempDir dir("qcli_parent");
  write(dir.path / "file", "x");
  const std::string out = (dir.path / "file" / "out").string();
  const test::CliResult r =
      test::run_cli("quantize --model " + m + " --out " + out + " --algo rtn --bits 4");
  expect_one_line_error(r, "cannot create folder");
  EXPECT_EQ(entries(dir.path), (std::set<std::string>{"file"}));
  EXPECT_EQ(test::read_all((dir.path / "file").string()), "x");
}

TEST_F(QuantizeCli, ExistingOutputWithoutForceIsKept) {
  TempDir dir("qcli_exists");
  const std::string out = dir / "out";
  fs::create_directories(out);
  write(fs::path(out) / "mine.txt", "keep me");
  const test::CliResult r = test::run_cli("quantize --model " + small_model() + " --out " + out +
                                          " --algo rtn --bits 4 --group-size 32");
  expect_one_line_error(r, "already exists");
  EXPECT_EQ(entries(dir.path), (std::set<std::string>{"out"}));
  EXPECT_EQ(entries(out), (std::set<std::string>{"mine.txt"}));
  EXPECT_EQ(test::read_all(out + "/mine.txt"), "keep me");
}

TEST_F(QuantizeCli, BadRecipeFiles) {
  TempDir dir("qcli_recipe");
  const std::string m = small_model();
  write(dir.path / "notjson.json", "{\"rules\": [");
  expect_quantize_error(m, "--algo rtn --recipe " + dir.sub("notjson.json"), "not valid JSON");
  write(dir.path / "nomatch.json", R"({"rules": [{"bits": 8}]})");
  expect_quantize_error(m, "--algo rtn --recipe " + dir.sub("nomatch.json"),
                        "nomatch.json: rule 0: needs a string 'match'");
  write(dir.path / "badbits.json", R"({"rules": [{"match": "*.down_proj", "bits": 5}]})");
  expect_quantize_error(m, "--algo rtn --recipe " + dir.sub("badbits.json"), "badbits.json");
  write(dir.path / "badkey.json", R"({"default": {"bits": 4}, "extra": 1})");
  expect_quantize_error(m, "--algo rtn --recipe " + dir.sub("badkey.json"), "unknown key 'extra'");
  expect_quantize_error(m, "--algo rtn --recipe " + dir.sub("missing.json"), "missing.json");
}

TEST_F(QuantizeCli, CalibrationTextShorterThanTheSamples) {
  LOWBIT_SHARED_OR_SKIP(model, "models/stories260K-hf");
  TempDir dir("qcli_calib");
  write(dir.path / "tiny.txt", "Once upon a time, there was a cat.\n");
  expect_quantize_error(model,
                        "--algo gptq --calib " + dir.sub("tiny.txt") + " --nsamples 4 --seqlen 64",
                        "tiny.txt: calibration text has");
  // RTN with --calib reads it too.
  expect_quantize_error(model,
                        "--algo rtn --calib " + dir.sub("tiny.txt") + " --nsamples 4 --seqlen 64",
                        "fewer than --nsamples 4 x --seqlen 64");
  // A window longer than the model's context.
  expect_quantize_error(model, "--algo gptq --calib tinystories --nsamples 2 --seqlen 4096",
                        "--seqlen");
}

// The output depends on the command only, not on the thread count: lowbit lowers its threads
// when the machine is busy (util/threads.h), and OpenBLAS's sums change with its threads, so
// products go through fixed tiles (kernels/blas.h). Here 1 and 2 threads, byte for byte, and the
// perplexity of the result printed the same.
TEST_F(QuantizeCli, SameOutputWithAnyThreadCount) {
  LOWBIT_SHARED_OR_SKIP(model, "models/llama-256");
  LOWBIT_SHARED_OR_SKIP(text, "data/tinystories/tinystories-v1-valid-first500.txt");
  auto folder_bytes = [](const fs::path& dir) {
    std::string all;
    for (const std::string& f : entries(dir)) {
      if (fs::path(f).extension() == ".safetensors") all += f + test::read_all((dir / f).string());
    }
    return all;
  };
  const std::string calib = " --calib tinystories --nsamples 4 --seqlen 256 -g 64";
  for (const std::string& args : {"--algo gptq --act-order" + calib, "--algo awq" + calib,
                                  "--algo rtn --clip-search --rotate r1" + calib}) {
    SCOPED_TRACE(args);
    TempDir dir("qcli_threads");
    std::string ppl[2];
    for (int t = 1; t <= 2; ++t) {
      const std::string out = dir / ("t" + std::to_string(t));
      const test::CliResult r = test::run_cli("quantize --model " + model + " --out " + out +
                                              " -t " + std::to_string(t) + " " + args);
      ASSERT_EQ(r.rc, 0) << r.out;
      const test::CliResult e = test::run_cli(
          "eval ppl --model " + out + " --text tinystories --limit 2 -t " + std::to_string(t));
      ASSERT_EQ(e.rc, 0) << e.out;
      const size_t p = e.out.find("perplexity:");
      ASSERT_NE(p, std::string::npos) << e.out;
      ppl[t - 1] = e.out.substr(p, e.out.find('\n', p) - p);
    }
    const std::string one = folder_bytes(dir / "t1"), two = folder_bytes(dir / "t2");
    EXPECT_GT(one.size(), 100000u);
    EXPECT_TRUE(one == two) << "the shards written with 1 and 2 threads differ";
    EXPECT_EQ(ppl[0], ppl[1]);
  }
}

TEST_F(QuantizeCli, DiskFullMidWriteLeavesNothing) {
  TempDir dir("qcli_full");
  const std::string out = dir / "out";
  // A file size limit of 200 blocks (bash: KiB) while each decoder layer's shard is ~0.4 MB:
  // writing the first shard fails with EFBIG (SIGXFSZ ignored, so write() returns the error).
  const std::string cmd =
      "bash -c 'ulimit -f 200; trap \"\" XFSZ; export LOWBIT_PROGRESS=0; exec " + test::cli_path() +
      " quantize --model " + small_model() + " --out " + out +
      " --algo rtn --bits 4 --group-size 32'";
  const test::CliResult r = test::run_cmd(cmd);
  expect_one_line_error(r, ".safetensors");
  EXPECT_NE(r.out.find("write failed"), std::string::npos) << r.out;
  EXPECT_TRUE(entries(dir.path).empty()) << "left behind: " << *entries(dir.path).begin();
  // Without the limit the same command works (the failure came from the limit).
  const test::CliResult ok = test::run_cli("quantize --model " + small_model() + " --out " + out +
                                           " --algo rtn --bits 4 --group-size 32");
  EXPECT_EQ(ok.rc, 0) << ok.out;
  EXPECT_EQ(entries(dir.path), (std::set<std::string>{"out"}));
}

}  // namespace
}  // namespace lowbit
