// Hostile input at the CLI (docs/RELIABILITY.md): inputs that would cost the user data, give a
// wrong answer quietly, exhaust the machine, hang on a special file, or be interrupted half-way.
// Every case runs the built `lowbit` on copies of the small shared models and checks the exact
// answer: exit code 2 (unless stated) and one line "lowbit: <where>: <problem>", no file left
// behind, the inputs byte-identical afterwards.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/io/safetensors.h"
#include "test_util.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::CliResult;
using test::TempDir;

// ---- helpers -------------------------------------------------------------------------------

// The common rule of every error: exit code `rc`, and stdout + stderr together hold exactly one
// non-empty line (no blank line before it), starting with "lowbit: " and containing `what`.
// Returns that line.
std::string expect_one_line_error(const CliResult& r, const std::string& what, int rc = 2) {
  EXPECT_EQ(r.rc, rc) << r.out;
  std::string line = r.out;
  while (!line.empty() && line.back() == '\n') line.pop_back();
  EXPECT_FALSE(line.empty()) << "no output at all";
  EXPECT_EQ(line.find('\n'), std::string::npos) << "more than one line: [" << r.out << "]";
  EXPECT_EQ(line.find('\r'), std::string::npos) << r.out;
  EXPECT_EQ(line.rfind("lowbit: ", 0), 0u) << "does not start with 'lowbit: ': [" << r.out << "]";
  EXPECT_NE(line.find(what), std::string::npos) << "expected '" << what << "' in: " << r.out;
  EXPECT_EQ(line.find("internal error"), std::string::npos) << r.out;
  return line;
}

// Runs `lowbit <args>` with stdout thrown away: what comes back is stderr alone (for commands
// that print their report on stdout before the failing write).
CliResult run_cli_stderr_only(const std::string& args) {
  return test::run_cmd("{ LOWBIT_PROGRESS=0 " + test::cli_path() + " " + args + " >/dev/null; }");
}

void write(const fs::path& p, const std::string& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << bytes;
}

std::set<std::string> entries(const fs::path& dir) {
  std::set<std::string> s;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    s.insert(it->path().filename().string());
  }
  return s;
}

// Every file and folder under `dir` (relative path -> content; folders map to "<dir>").
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_symlink()) {
      m[rel] = "<symlink>";
    } else if (e.is_directory()) {
      m[rel] = "<dir>";
    } else if (e.is_regular_file()) {
      m[rel] = test::read_all(e.path().string());
    } else {
      m[rel] = "<special>";
    }
  }
  return m;
}

// No "<name>.tmp.<...>" anywhere under `dir` (temp files and folders of lowbit's writers).
void expect_no_temp_files(const fs::path& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    EXPECT_EQ(it->path().filename().string().find(".tmp."), std::string::npos)
        << "left behind: " << it->path();
  }
}

// The entries of `dir` that are temp folders of the output `base` ("<base>.tmp.<pid>").
std::vector<std::string> temp_folders_of(const fs::path& dir, const std::string& base) {
  std::vector<std::string> v;
  for (const std::string& n : entries(dir)) {
    if (n.rfind(base + ".tmp.", 0) == 0) v.push_back(n);
  }
  return v;
}

// A writable copy of a model folder (the shared files are read-only).
void copy_dir(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  for (const auto& e : fs::recursive_directory_iterator(to)) {
    fs::permissions(e.path(), fs::perms::owner_read | fs::perms::owner_write,
                    fs::perm_options::add);
  }
}

void copy_file_writable(const fs::path& from, const fs::path& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  fs::permissions(to, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::add);
}

json read_json(const fs::path& p) { return json::parse(test::read_all(p.string())); }
void write_json(const fs::path& p, const json& j) { write(p, j.dump(2) + "\n"); }

// The byte range of tensor `name`'s data in a safetensors file: {file offset, byte count}.
std::pair<size_t, size_t> tensor_range(const fs::path& file, const std::string& name) {
  const std::string bytes = test::read_all(file.string());
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  const json h = json::parse(bytes.substr(8, n));
  const auto& off = h.at(name).at("data_offsets");
  const size_t begin = off[0].get<size_t>(), end = off[1].get<size_t>();
  return {8 + n + begin, end - begin};
}

// Overwrites bytes of a file in place.
void poke(const fs::path& file, size_t offset, const void* data, size_t n) {
  std::fstream f(file, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  ASSERT_TRUE(f.good()) << file;
}

// A command run through /bin/sh with its wall time and the peak RSS of its process tree.
struct Measured {
  CliResult r;
  double seconds = 0;
  long max_rss_kb = 0;
};

Measured run_measured(const std::string& command, const fs::path& out_file) {
  const std::string cmd = command + " >" + out_file.string() + " 2>&1";
  Measured m;
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  struct rusage ru {};
  // wait4 reports the child's peak RSS including the children it waited for (lowbit).
  if (pid > 0 && ::wait4(pid, &status, 0, &ru) == pid) {
    m.r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    m.max_rss_kb = ru.ru_maxrss;
  }
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  m.r.out = test::read_all(out_file.string());
  return m;
}

std::string cli() { return test::cli_path(); }

#define HOSTILE_SHARED_HF(var) LOWBIT_SHARED_OR_SKIP(var, "models/stories260K-hf")
#define HOSTILE_SHARED_TINYSTORIES()                                                           \
  LOWBIT_SHARED_OR_SKIP(tinystories_file_, "data/tinystories/tinystories-v1-valid-calib.txt"); \
  (void)tinystories_file_

const char* const kCalib = " --algo gptq --calib tinystories --nsamples 8 --seqlen 64";

// A GPTQ folder whose config reads as a published GPTQ checkpoint: quantization_config without
// lowbit's per-module table ("lowbit_modules"), changed further by `edit`.
void strip_lowbit_modules(const fs::path& dir, const std::function<void(json&)>& edit = {}) {
  for (const char* f : {"config.json", "quantize_config.json"}) {
    const fs::path p = dir / f;
    if (!fs::exists(p)) continue;
    json j = read_json(p);
    json& q = std::string(f) == "config.json" ? j["quantization_config"] : j;
    q.erase("lowbit_modules");
    if (edit) edit(q);
    write_json(p, j);
  }
}

// Rewrites every shard of `dir` without the tensors whose names end in `suffix` (and drops them
// from model.safetensors.index.json), through the library's reader and writer.
void drop_tensors(const fs::path& dir, const std::string& suffix) {
  auto ends_with = [&](const std::string& s) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  int dropped = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() != ".safetensors") continue;
    auto f = SafetensorsFile::open(e.path().string());
    std::vector<TensorToWrite> keep;
    for (const TensorInfo& t : f->tensors()) {
      if (ends_with(t.name)) {
        ++dropped;
        continue;
      }
      keep.push_back({t.name, t.dtype, t.shape, t.data, t.nbytes});
    }
    write_safetensors(e.path().string(), keep, f->metadata());
  }
  ASSERT_GT(dropped, 0) << "no tensor ends in " << suffix;
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    json j = read_json(index);
    json wm = json::object();
    for (const auto& [k, v] : j["weight_map"].items()) {
      if (!ends_with(k)) wm[k] = v;
    }
    j["weight_map"] = wm;
    write_json(index, j);
  }
}

// ---- data loss -----------------------------------------------------------------------------

TEST(Hostile_DataLoss, QuantizeOutputFolderContainsTheInput) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_dl_contains");
  const fs::path w = t.path / "W";
  copy_dir(src, w / "model");
  const auto before = snapshot(w);
  const CliResult r = test::run_cli("quantize --model " + (w / "model").string() + " --out " +
                                    w.string() + " --force --algo rtn");
  expect_one_line_error(r, "contains the input");
  EXPECT_EQ(snapshot(w), before);
  EXPECT_EQ(entries(t.path), std::set<std::string>{"W"});
}

TEST(Hostile_DataLoss, QuantizeOutputInsideTheInput) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_dl_inside");
  const fs::path m = t.path / "model";
  copy_dir(src, m);
  const auto before = snapshot(t.path);
  const CliResult r = test::run_cli("quantize --model " + m.string() + " --out " +
                                    (m / "q").string() + " --algo rtn");
  expect_one_line_error(r, "lies inside the input");
  EXPECT_EQ(snapshot(t.path), before);
}

TEST(Hostile_DataLoss, QuantizeOutputIsTheInput) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_dl_same");
  const fs::path m = t.path / "model";
  copy_dir(src, m);
  const auto before = snapshot(t.path);
  const CliResult r = test::run_cli("quantize --model " + m.string() + " --out " + m.string() +
                                    " --force --algo rtn");
  expect_one_line_error(r, "is also an input");
  EXPECT_EQ(snapshot(t.path), before);
}

TEST(Hostile_DataLoss, ForceRefusesAUserFolder) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_dl_user");
  const fs::path d = t.path / "D";
  fs::create_directories(d);
  write(d / "thesis.tex", "years of work");
  const auto before = snapshot(t.path);
  const CliResult r =
      test::run_cli("quantize --model " + model + " --out " + d.string() + " --force --algo rtn");
  expect_one_line_error(r, "was not written by lowbit");
  EXPECT_EQ(snapshot(t.path), before);
}

TEST(Hostile_DataLoss, ForceReplacesOnlyLowbitsOwnFolder) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_dl_manifest");
  const fs::path d = t.path / "D2";
  const std::string cmd = "quantize --model " + model + " --out " + d.string() + " --algo rtn";
  const CliResult first = test::run_cli(cmd);
  ASSERT_EQ(first.rc, 0) << first.out;
  ASSERT_TRUE(fs::exists(d / ".lowbit-output"));
  // A folder lowbit wrote is replaced by --force.
  const CliResult again = test::run_cli(cmd + " --force --group-size 32");
  EXPECT_EQ(again.rc, 0) << again.out;
  EXPECT_EQ(read_json(d / "config.json")["quantization_config"]["group_size"], 32);
  EXPECT_EQ(entries(t.path), std::set<std::string>{"D2"});
  // Not once the user put a file of their own there.
  write(d / "notes.txt", "mine");
  const auto before = snapshot(t.path);
  const CliResult r = test::run_cli(cmd + " --force");
  expect_one_line_error(r, "holds files lowbit did not write (notes.txt)");
  EXPECT_EQ(snapshot(t.path), before);
  EXPECT_EQ(test::read_all((d / "notes.txt").string()), "mine");
}

TEST(Hostile_DataLoss, EvalJsonInsideTheModel) {
  HOSTILE_SHARED_HF(src);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_dl_evaljson");
  const fs::path m = t.path / "M";
  copy_dir(src, m);
  const auto before = snapshot(t.path);
  const CliResult r =
      test::run_cli("eval ppl --model " + m.string() + " --text tinystories --limit 1 --json " +
                    (m / "config.json").string());
  expect_one_line_error(r, "lies inside the input");
  EXPECT_EQ(snapshot(t.path), before);
}

TEST(Hostile_DataLoss, EvalJsonIsTheTextFile) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_dl_evaltext");
  std::string text;
  for (int i = 0; i < 40; ++i) text += "Once upon a time there was a cat who liked to play.\n";
  write(t.path / "text.txt", text);
  const auto before = snapshot(t.path);
  const CliResult r = test::run_cli("eval ppl --model " + model + " --text " + t.sub("text.txt") +
                                    " --limit 1 --json " + t.sub("text.txt"));
  expect_one_line_error(r, "is also an input");
  EXPECT_EQ(snapshot(t.path), before);
}

TEST(Hostile_DataLoss, BenchJsonIsTheLlama2cModel) {
  LOWBIT_SHARED_OR_SKIP(src, "models/stories260K");
  TempDir t("hx_dl_bench");
  copy_dir(src, t.path);
  const std::string bin = t.sub("stories260K.bin");
  const auto before = snapshot(t.path);
  const CliResult r =
      test::run_cli("bench --model " + bin + " -p 1 -n 1 -r 1 --no-probe --json " + bin);
  expect_one_line_error(r, "is also an input");
  EXPECT_EQ(snapshot(t.path), before);
}

TEST(Hostile_DataLoss, QuantizeJsonInsideTheOutputFolder) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_dl_qjson");
  const fs::path q = t.path / "Q";
  const CliResult r = test::run_cli("quantize --model " + model + " --out " + q.string() +
                                    " --algo rtn --json " + (q / "r.json").string());
  expect_one_line_error(r, "lies inside the output folder");
  EXPECT_TRUE(entries(t.path).empty());
}

TEST(Hostile_DataLoss, SynthOutputIsItsTokenizer) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_dl_synth");
  const fs::path tok = t.path / "T";
  fs::create_directories(tok);
  copy_file_writable(fs::path(src) / "tokenizer.json", tok / "tokenizer.json");
  const auto before = snapshot(t.path);
  // "small" is the smallest shape `lowbit synth --help` lists.
  for (const char* force : {"", " --force"}) {
    SCOPED_TRACE(force);
    const CliResult r = test::run_cli("synth --shape small --layers 1 --tokenizer " + tok.string() +
                                      " --out " + tok.string() + force);
    const std::string line = expect_one_line_error(r, "lowbit: ");
    EXPECT_TRUE(line.find("is also an input") != std::string::npos ||
                line.find("contains the input") != std::string::npos)
        << line;
    EXPECT_EQ(snapshot(t.path), before);
  }
}

// ---- wrong answers -------------------------------------------------------------------------

// Quantizes stories260K-hf into t/<name> with `args`; the folder path.
fs::path quantize_into(const TempDir& t, const std::string& name, const std::string& args) {
  const std::string model = test::shared_dir() + "/models/stories260K-hf";
  const fs::path out = t.path / name;
  const CliResult r =
      test::run_cli("quantize --model " + model + " --out " + out.string() + " " + args);
  EXPECT_EQ(r.rc, 0) << r.out;
  return out;
}

TEST(Hostile_WrongAnswers, DescActWithoutGIdx) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_wa_gidx");
  const fs::path g =
      quantize_into(t, "g", std::string(kCalib) + " --act-order --group-size 32 --bits 4");
  ASSERT_TRUE(fs::exists(g / "config.json"));
  ASSERT_TRUE(read_json(g / "config.json")["quantization_config"]["desc_act"].get<bool>());
  strip_lowbit_modules(g);
  drop_tensors(g, ".g_idx");
  const auto before = snapshot(t.path);
  expect_one_line_error(
      test::run_cli("eval ppl --model " + g.string() + " --text tinystories --limit 1"),
      "g_idx is missing");
  expect_one_line_error(test::run_cli("generate --model " + g.string() + " --prompt hi -n 2"),
                        "g_idx is missing");
  EXPECT_EQ(snapshot(t.path), before);
}

TEST(Hostile_WrongAnswers, PermutedGIdxButDescActFalse) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_wa_descact");
  const fs::path g =
      quantize_into(t, "g", std::string(kCalib) + " --act-order --group-size 32 --bits 4");
  ASSERT_TRUE(fs::exists(g / "config.json"));
  strip_lowbit_modules(g, [](json& q) { q["desc_act"] = false; });
  const std::string what = "reorders the columns but quantization_config says desc_act is false";
  expect_one_line_error(
      test::run_cli("eval ppl --model " + g.string() + " --text tinystories --limit 1"), what);
  expect_one_line_error(test::run_cli("generate --model " + g.string() + " --prompt hi -n 2"),
                        what);
}

TEST(Hostile_WrongAnswers, SymConfigOverAsymmetricZeros) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_wa_sym");
  const fs::path g = quantize_into(t, "g", "--algo rtn --group-size 32");
  ASSERT_TRUE(fs::exists(g / "config.json"));
  ASSERT_FALSE(read_json(g / "config.json")["quantization_config"]["sym"].get<bool>());
  strip_lowbit_modules(g, [](json& q) { q["sym"] = true; });
  expect_one_line_error(
      test::run_cli("eval ppl --model " + g.string() + " --text tinystories --limit 1"),
      "says sym but");
  expect_one_line_error(test::run_cli("generate --model " + g.string() + " --prompt hi -n 2"),
                        "says sym but");
}

// A copy of stories260K-hf with a NaN in model.layers.1.self_attn.q_proj.weight[5].
void make_nan_model(const fs::path& src, const fs::path& dst) {
  copy_dir(src, dst);
  const auto [off, n] =
      tensor_range(dst / "model.safetensors", "model.layers.1.self_attn.q_proj.weight");
  ASSERT_GT(n, 6 * 4u);
  const uint32_t nan_bits = 0x7fc00000u;
  poke(dst / "model.safetensors", off + 5 * 4, &nan_bits, 4);
}

TEST(Hostile_WrongAnswers, NanWeightInGenerate) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_wa_nan_gen");
  make_nan_model(src, t.path / "m");
  expect_one_line_error(test::run_cli("generate --model " + t.sub("m") + " --prompt hi -n 2"),
                        "holds a non-finite value (NaN) at element");
}

TEST(Hostile_WrongAnswers, NanWeightInEvalPpl) {
  HOSTILE_SHARED_HF(src);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_wa_nan_ppl");
  make_nan_model(src, t.path / "m");
  expect_one_line_error(
      test::run_cli("eval ppl --model " + t.sub("m") + " --text tinystories --limit 1"),
      "holds a non-finite value (NaN) at element");
}

TEST(Hostile_WrongAnswers, NanWeightInQuantize) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_wa_nan_q");
  make_nan_model(src, t.path / "m");
  expect_one_line_error(
      test::run_cli("quantize --model " + t.sub("m") + " --out " + t.sub("q") + " --algo rtn"),
      "holds a non-finite value (NaN) at element");
  EXPECT_EQ(entries(t.path), std::set<std::string>{"m"});
}

TEST(Hostile_WrongAnswers, InfGptqScale) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_wa_inf_scale");
  const fs::path g = quantize_into(t, "g", "--algo rtn --group-size 32");
  const fs::path shard = g / "model-00001-of-00006.safetensors";
  ASSERT_TRUE(fs::exists(shard));
  const auto [off, n] = tensor_range(shard, "model.layers.0.self_attn.q_proj.scales");
  ASSERT_GE(n, 8u);
  const uint16_t inf_f16 = 0x7c00;
  poke(shard, off + 3 * 2, &inf_f16, 2);
  expect_one_line_error(
      test::run_cli("eval ppl --model " + g.string() + " --text tinystories --limit 1"),
      "non-finite scale");
  expect_one_line_error(test::run_cli("generate --model " + g.string() + " --prompt hi -n 2"),
                        "non-finite scale");
}

// A copy of stories260K-hf whose final norm weight is 1e38 everywhere: finite, but the hidden
// state and logits overflow. (Scaling it by 1e30 leaves the logits finite, ~1e31.)
void make_overflow_model(const fs::path& src, const fs::path& dst) {
  copy_dir(src, dst);
  const auto [off, n] = tensor_range(dst / "model.safetensors", "model.norm.weight");
  ASSERT_EQ(n, 64 * 4u);
  const std::vector<float> huge(n / 4, 1e38f);
  poke(dst / "model.safetensors", off, huge.data(), n);
}

TEST(Hostile_WrongAnswers, OverflowingLogitsInEvalPpl) {
  HOSTILE_SHARED_HF(src);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_wa_ovf_ppl");
  make_overflow_model(src, t.path / "m");
  const std::string line = expect_one_line_error(
      test::run_cli("eval ppl --model " + t.sub("m") + " --text tinystories --limit 1"),
      "non-finite logits");
  EXPECT_NE(line.find("at position"), std::string::npos) << line;
}

TEST(Hostile_WrongAnswers, OverflowingLogitsInGenerate) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_wa_ovf_gen");
  make_overflow_model(src, t.path / "m");
  // An empty prompt: nothing is echoed before the first logits.
  const std::string line = expect_one_line_error(
      test::run_cli("generate --model " + t.sub("m") + " --prompt '' -n 3 --temp 0"),
      "non-finite logits");
  EXPECT_NE(line.find("at position"), std::string::npos) << line;
}

// A bad number for a flag: one short line quoting it as typed.
void expect_bad_number(const std::string& args, const std::string& typed) {
  SCOPED_TRACE(args);
  const std::string line = expect_one_line_error(test::run_cli(args), "'" + typed + "'");
  EXPECT_LT(line.size(), 200u) << line;
}

TEST(Hostile_WrongAnswers, GenerateTempNan) {
  HOSTILE_SHARED_HF(model);
  expect_bad_number("generate --model " + model + " --prompt hi -n 1 --temp nan", "nan");
}

TEST(Hostile_WrongAnswers, GenerateTempInf) {
  HOSTILE_SHARED_HF(model);
  expect_bad_number("generate --model " + model + " --prompt hi -n 1 --temp inf", "inf");
}

TEST(Hostile_WrongAnswers, GenerateTopPNan) {
  HOSTILE_SHARED_HF(model);
  expect_bad_number("generate --model " + model + " --prompt hi -n 1 --top-p nan", "nan");
}

TEST(Hostile_WrongAnswers, GenerateTempHuge) {
  HOSTILE_SHARED_HF(model);
  expect_bad_number("generate --model " + model + " --prompt hi -n 1 --temp 1e300", "1e300");
}

TEST(Hostile_WrongAnswers, QuantizeDampNan) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_wa_damp");
  expect_bad_number("quantize --model " + model + " --out " + t.sub("q") + kCalib + " --damp nan",
                    "nan");
  EXPECT_TRUE(entries(t.path).empty());
}

TEST(Hostile_WrongAnswers, CatastrophicRegexInTokenizer) {
  LOWBIT_SHARED_OR_SKIP(gpt2, "tokenizers/gpt2/tokenizer.json");
  TempDir t("hx_wa_regex");
  json tok = read_json(gpt2);
  const json original = tok["pre_tokenizer"];
  tok["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", json::array({{{"type", "Split"},
                                                          {"pattern", {{"Regex", "(a+)+$"}}},
                                                          {"behavior", "Isolated"},
                                                          {"invert", false}},
                                                         original})}};
  write(t.path / "tokenizer.json", tok.dump());
  write(t.path / "text.txt", std::string(40, 'a') + "b");
  const auto before = snapshot(t.path);
  const CliResult r =
      test::run_cmd("LOWBIT_PROGRESS=0 timeout 60 " + cli() + " tokenize --tokenizer " +
                    t.sub("tokenizer.json") + " --text " + t.sub("text.txt"));
  expect_one_line_error(r, "gave up at byte");
  EXPECT_EQ(snapshot(t.path), before);
}

void expect_dev_files_intact() {
  struct stat st {};
  ASSERT_EQ(::lstat("/dev/full", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode)) << "/dev/full is no longer a character device";
  ASSERT_EQ(::lstat("/dev/stdout", &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "/dev/stdout is no longer a symlink";
  for (const std::string& n : entries("/dev")) {
    EXPECT_EQ(n.find(".tmp."), std::string::npos) << "left in /dev: " << n;
  }
}

// A text of `lines` lines for tokenize.
void write_story(const fs::path& p, int lines) {
  std::string s;
  for (int i = 0; i < lines; ++i) s += "Once upon a time, there was a little cat named Tom.\n";
  write(p, s);
}

TEST(Hostile_WrongAnswers, StdoutOnAFullDisk) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_wa_full");
  write_story(t.path / "text.txt", 20);
  const CliResult r = test::run_cmd("{ LOWBIT_PROGRESS=0 " + cli() + " tokenize --tokenizer " +
                                    model + " --text " + t.sub("text.txt") + " >/dev/full; }");
  expect_one_line_error(r, "stdout: write error: no space left on device");
  expect_dev_files_intact();
}

TEST(Hostile_WrongAnswers, StdoutClosed) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_wa_closed");
  write_story(t.path / "text.txt", 20);
  const CliResult r = test::run_cmd("{ LOWBIT_PROGRESS=0 " + cli() + " tokenize --tokenizer " +
                                    model + " --text " + t.sub("text.txt") + " >&-; }");
  expect_one_line_error(r, "bad file descriptor");
  EXPECT_EQ(entries(t.path), std::set<std::string>{"text.txt"});
}

TEST(Hostile_WrongAnswers, StdoutReaderGoesAway) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_wa_pipe");
  // ~2.5 MB of ids: far more than a pipe holds, so lowbit is still writing when head exits.
  write_story(t.path / "text.txt", 20000);
  const CliResult r = test::run_cmd(
      "LOWBIT_PROGRESS=0 bash -c 'set -o pipefail; " + cli() + " tokenize --tokenizer " + model +
      " --text " + t.sub("text.txt") + " 2>" + t.sub("stderr.txt") + " | head -c 1 >/dev/null'");
  EXPECT_EQ(r.rc, 141) << r.out;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(test::read_all(t.sub("stderr.txt")), "") << "lowbit wrote to stderr";
}

TEST(Hostile_WrongAnswers, QuantizeJsonToDevFull) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_wa_qfull");
  // The report goes to stdout before the JSON is written; stderr alone holds the error.
  const CliResult r = run_cli_stderr_only("quantize --model " + model + " --out " + t.sub("q") +
                                          " --algo rtn --json /dev/full");
  const std::string line = expect_one_line_error(r, "/dev/full");
  EXPECT_NE(line.find("no space left on device"), std::string::npos) << line;
  EXPECT_TRUE(entries(t.path).empty()) << "left: " << *entries(t.path).begin();
  expect_dev_files_intact();
}

TEST(Hostile_WrongAnswers, EvalJsonToDevFull) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  // The results go to stdout before the JSON is written; stderr alone holds the error.
  const CliResult r = run_cli_stderr_only("eval ppl --model " + model +
                                          " --text tinystories --limit 1 --json /dev/full");
  const std::string line = expect_one_line_error(r, "/dev/full");
  EXPECT_NE(line.find("no space left on device"), std::string::npos) << line;
  expect_dev_files_intact();
}

// /dev/stdout names whatever stdout is (a file, a pipe): the JSON is written there, in place.
TEST(Hostile_WrongAnswers, EvalJsonToDevStdoutThroughAPipe) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  const CliResult r =
      test::run_cmd("LOWBIT_PROGRESS=0 bash -c 'set -o pipefail; " + cli() + " eval ppl --model " +
                    model + " --text tinystories --limit 1 --json /dev/stdout | cat'");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("\"windows\": 1"), std::string::npos) << r.out;
  expect_dev_files_intact();
}

// ---- resources -----------------------------------------------------------------------------

TEST(Hostile_Resources, HugeContextKvCache) {
  LOWBIT_SHARED_OR_SKIP(src, "models/babyllama-105-hf");
  TempDir t("hx_rs_ctx");
  const fs::path m = t.path / "m";
  copy_dir(src, m);
  json cfg = read_json(m / "config.json");
  cfg["max_position_embeddings"] = 16777216;
  write_json(m / "config.json", cfg);
  // The KV cache would be 16777216 x 5 layers x 64 values x 2 x 4 bytes = 40 GiB, more than this
  // machine kind has (24 GB). The address space limit only guards the (shared) machine should
  // lowbit try to allocate it anyway: such a run then ends at once with "out of memory" instead
  // of zeroing the cache for minutes.
  const Measured me =
      run_measured("ulimit -v 8388608; LOWBIT_PROGRESS=0 exec " + cli() + " generate --model " +
                       m.string() + " --ctx 16777216 -n 1 -t 2 --prompt Once",
                   t.path / "out.txt");
  const std::string line =
      expect_one_line_error(me.r, "KV cache of 16777216 tokens (5 layers x 64");
  EXPECT_NE(line.find("needs"), std::string::npos) << line;
  EXPECT_LT(me.seconds, 20.0);
  EXPECT_LT(me.max_rss_kb, 1024 * 1024) << "peak RSS " << me.max_rss_kb << " KiB";
}

TEST(Hostile_Resources, MemoryLimitFromTheEnvironment) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  const CliResult r =
      test::run_cmd("LOWBIT_MEMORY_LIMIT=1M LOWBIT_PROGRESS=0 " + cli() + " eval ppl --model " +
                    model + " --text tinystories --ctx 256 --limit 1");
  expect_one_line_error(r, "but only 1.0 MiB of memory is available");
}

// A model folder beside copies of stories260K-hf's config and tokenizer.
void model_folder_with(const fs::path& src, const fs::path& dst) {
  fs::create_directories(dst);
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) {
    copy_file_writable(src / f, dst / f);
  }
}

// A model folder whose model.safetensors header (8-byte little-endian length, then JSON) is
// `head`, 20 million '[', 20 million ']', `tail`. Runs generate on it: a quick one-line error
// (`what`), with a small RSS (no recursion, no tree of 20 million arrays).
void expect_nested_header_refused(const std::string& name, const std::string& head,
                                  const std::string& tail, const std::string& what) {
  const std::string src = test::shared_dir() + "/models/stories260K-hf";
  TempDir t(name);
  const fs::path m = t.path / "m";
  model_folder_with(src, m);
  const uint64_t n = 20'000'000;
  std::string bytes(8, '\0');
  const uint64_t len = head.size() + 2 * n + tail.size();
  std::memcpy(bytes.data(), &len, 8);
  bytes += head;
  bytes.append(n, '[');
  bytes.append(n, ']');
  bytes += tail;
  write(m / "model.safetensors", bytes);
  bytes.clear();
  bytes.shrink_to_fit();
  const Measured me = run_measured(
      "LOWBIT_PROGRESS=0 exec " + cli() + " generate --model " + m.string() + " --prompt hi -n 1",
      t.path / "out.txt");
  expect_one_line_error(me.r, what);
  EXPECT_LT(me.seconds, 10.0);
  EXPECT_LT(me.max_rss_kb, 200 * 1024) << "peak RSS " << me.max_rss_kb << " KiB";
}

TEST(Hostile_Resources, DeeplyNestedSafetensorsHeader) {
  HOSTILE_SHARED_HF(src);
  // The first '[' already shows the header is not the object safetensors needs.
  expect_nested_header_refused("hx_rs_nest_st", "", "", "JSON is not an object");
}

// The same nesting as the value of an unknown field of a tensor entry, where the header parser
// skips values: the depth cap, not a type check, has to stop it.
TEST(Hostile_Resources, DeeplyNestedSafetensorsHeaderInAnEntry) {
  HOSTILE_SHARED_HF(src);
  expect_nested_header_refused("hx_rs_nest_st2", R"({"a": {"dtype": "F32", "extra": )", "}}",
                               "nested deeper than 16 levels");
}

TEST(Hostile_Resources, DeeplyNestedConfigJson) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_rs_nest_cfg");
  const fs::path m = t.path / "m";
  copy_dir(src, m);
  write(m / "config.json", std::string(100000, '[') + std::string(100000, ']'));
  const Measured me = run_measured(
      "LOWBIT_PROGRESS=0 exec " + cli() + " generate --model " + m.string() + " --prompt hi -n 1",
      t.path / "out.txt");
  expect_one_line_error(me.r, "JSON nested deeper than 64 levels");
  EXPECT_LT(me.seconds, 10.0);
}

TEST(Hostile_Resources, ConfigJsonLargerThan16MiB) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_rs_big_cfg");
  const fs::path m = t.path / "m";
  copy_dir(src, m);
  std::string cfg = test::read_all((fs::path(src) / "config.json").string());
  const size_t brace = cfg.rfind('}');
  ASSERT_NE(brace, std::string::npos);
  cfg.insert(brace, std::string(17u << 20, ' '));  // still valid JSON, 17 MiB
  write(m / "config.json", cfg);
  const Measured me = run_measured(
      "LOWBIT_PROGRESS=0 exec " + cli() + " generate --model " + m.string() + " --prompt hi -n 1",
      t.path / "out.txt");
  expect_one_line_error(me.r, "larger than the 16.0 MiB");
  EXPECT_LT(me.seconds, 10.0);
}

TEST(Hostile_Resources, CalibrationTooLargeForMemory) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_rs_calib");
  const Measured me = run_measured(
      "LOWBIT_PROGRESS=0 exec " + cli() + " quantize --model " + model + " --out " + t.sub("q") +
          " --algo gptq --calib tinystories --nsamples 1000000 --seqlen 512",
      t.path / "out.txt");
  expect_one_line_error(me.r, "calibrating on 1000000 x 512 tokens needs");
  EXPECT_LT(me.seconds, 20.0);
  EXPECT_EQ(entries(t.path), std::set<std::string>{"out.txt"});
}

TEST(Hostile_Resources, BandwidthProbeTooLargeForMemory) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_rs_probe");
  const Measured me = run_measured("LOWBIT_PROGRESS=0 exec " + cli() + " bench --model " + model +
                                       " --probe-mb 1000000 -p 1 -n 1",
                                   t.path / "out.txt");
  expect_one_line_error(me.r, "the bandwidth probe");
  EXPECT_LT(me.seconds, 20.0);
}

// ---- special files -------------------------------------------------------------------------

// Runs lowbit under `timeout 30`: a read that blocks shows up as exit code 124.
CliResult run_cli_bounded(const std::string& args) {
  return test::run_cmd("LOWBIT_PROGRESS=0 timeout 30 " + cli() + " " + args);
}

void make_fifo(const fs::path& p) {
  std::error_code ec;
  fs::remove(p, ec);
  ASSERT_EQ(::mkfifo(p.c_str(), 0644), 0) << p << ": " << std::strerror(errno);
}

TEST(Hostile_SpecialFiles, FifoAsConfigJson) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_sf_cfg");
  const fs::path m = t.path / "m";
  copy_dir(src, m);
  make_fifo(m / "config.json");
  const CliResult r = run_cli_bounded("generate --model " + m.string() + " --prompt hi -n 1");
  EXPECT_NE(r.rc, 124) << "hung on the FIFO";
  expect_one_line_error(r, "not a regular file (a FIFO)");
}

TEST(Hostile_SpecialFiles, FifoAsModelSafetensors) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_sf_st");
  const fs::path m = t.path / "m";
  copy_dir(src, m);
  make_fifo(m / "model.safetensors");
  const CliResult r = run_cli_bounded("generate --model " + m.string() + " --prompt hi -n 1");
  EXPECT_NE(r.rc, 124) << "hung on the FIFO";
  expect_one_line_error(r, "not a regular file (a FIFO)");
}

TEST(Hostile_SpecialFiles, FifoAsTokenizerJson) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_sf_tok");
  fs::create_directories(t.path / "tok");
  make_fifo(t.path / "tok" / "tokenizer.json");
  write_story(t.path / "text.txt", 2);
  const CliResult r =
      run_cli_bounded("tokenize --tokenizer " + t.sub("tok") + " --text " + t.sub("text.txt"));
  EXPECT_NE(r.rc, 124) << "hung on the FIFO";
  expect_one_line_error(r, "not a regular file (a FIFO)");
  const CliResult g = run_cli_bounded("generate --model " + model + " --tokenizer " +
                                      t.sub("tok/tokenizer.json") + " --prompt hi -n 1");
  EXPECT_NE(g.rc, 124) << "hung on the FIFO";
  expect_one_line_error(g, "not a regular file (a FIFO)");
}

TEST(Hostile_SpecialFiles, FifoAsEvalText) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_sf_text");
  make_fifo(t.path / "text.txt");
  const CliResult r =
      run_cli_bounded("eval ppl --model " + model + " --text " + t.sub("text.txt") + " --limit 1");
  EXPECT_NE(r.rc, 124) << "hung on the FIFO";
  expect_one_line_error(r, "not a regular file (a FIFO)");
}

TEST(Hostile_SpecialFiles, FifoAsRecipe) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_sf_recipe");
  make_fifo(t.path / "recipe.json");
  const CliResult r = run_cli_bounded("quantize --model " + model + " --out " + t.sub("q") +
                                      " --algo rtn --recipe " + t.sub("recipe.json"));
  EXPECT_NE(r.rc, 124) << "hung on the FIFO";
  expect_one_line_error(r, "not a regular file (a FIFO)");
  EXPECT_EQ(entries(t.path), std::set<std::string>{"recipe.json"});
}

TEST(Hostile_SpecialFiles, SymlinkLoopAsModel) {
  TempDir t("hx_sf_loop");
  fs::create_symlink(t.path / "b", t.path / "a");
  fs::create_symlink(t.path / "a", t.path / "b");
  const CliResult r = run_cli_bounded("generate --model " + t.sub("a") + " --prompt hi -n 1");
  expect_one_line_error(r, "too many levels of symbolic links");
}

TEST(Hostile_SpecialFiles, DevZeroAsText) {
  HOSTILE_SHARED_HF(model);
  const CliResult r = run_cli_bounded("eval ppl --model " + model + " --text /dev/zero --limit 1");
  EXPECT_NE(r.rc, 124) << "read /dev/zero until the timeout";
  expect_one_line_error(r, "not a regular file (a character device)");
}

TEST(Hostile_SpecialFiles, FileSizeLimitWhileWriting) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_sf_fsize");
  const std::string out = t.sub("out");
  const std::string quantize =
      cli() + " quantize --model " + model + " --out " + out + " --algo rtn";
  // bash counts `ulimit -f` in 1024-byte blocks (512 in POSIX mode): at most 51200 bytes a file.
  const CliResult r =
      test::run_cmd("bash -c 'ulimit -f 50; LOWBIT_PROGRESS=0 exec " + quantize + "'");
  const std::string line = expect_one_line_error(r, "lowbit: ");
  EXPECT_TRUE(line.find("File too large") != std::string::npos ||
              line.find("file too large") != std::string::npos)
      << line;
  EXPECT_TRUE(entries(t.path).empty()) << "left: " << *entries(t.path).begin();
  // The limit is below the size of the output: without it, a file of the result is larger.
  const CliResult ok = test::run_cmd("LOWBIT_PROGRESS=0 " + quantize);
  ASSERT_EQ(ok.rc, 0) << ok.out;
  uintmax_t largest = 0;
  for (const auto& e : fs::directory_iterator(out)) largest = std::max(largest, e.file_size());
  EXPECT_GT(largest, 50u * 1024u);
}

// ---- signals and resume --------------------------------------------------------------------

// Quantizes stories260K-hf into dir/out with `args`, stopped by signal `sig` after decoder layer 1
// (LOWBIT_TEST_SIGNAL_AFTER_LAYER).
CliResult quantize_signalled(const fs::path& dir, const std::string& args, int sig) {
  const std::string model = test::shared_dir() + "/models/stories260K-hf";
  return test::run_cmd("LOWBIT_PROGRESS=0 LOWBIT_TEST_SIGNAL_AFTER_LAYER='1 " +
                       std::to_string(sig) + "' " + cli() + " quantize --model " + model +
                       " --out " + (dir / "out").string() + " " + args);
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

// Killed after layer 1: the temp folder stays; the same command resumes from it and writes the
// same shards as an uninterrupted run.
void kill_and_resume(const std::string& args, const std::string& name) {
  TempDir t(name);
  const std::string model = test::shared_dir() + "/models/stories260K-hf";
  const CliResult killed = quantize_signalled(t.path, args, SIGKILL);
  EXPECT_TRUE(killed.rc == 137 || killed.rc == -1) << killed.rc << "\n" << killed.out;
  const std::vector<std::string> tmps = temp_folders_of(t.path, "out");
  ASSERT_EQ(tmps.size(), 1u) << "entries: " << entries(t.path).size();
  EXPECT_TRUE(all_digits(tmps[0].substr(std::string("out.tmp.").size()))) << tmps[0];
  EXPECT_FALSE(fs::exists(t.path / "out"));

  const CliResult resumed =
      test::run_cli("quantize --model " + model + " --out " + t.sub("out") + " " + args);
  ASSERT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resuming"), std::string::npos) << resumed.out;
  const CliResult ref =
      test::run_cli("quantize --model " + model + " --out " + t.sub("ref") + " " + args);
  ASSERT_EQ(ref.rc, 0) << ref.out;
  EXPECT_EQ(ref.out.find("resuming"), std::string::npos) << ref.out;
  EXPECT_EQ(entries(t.path), (std::set<std::string>{"out", "ref"}));

  std::set<std::string> shards;
  for (const std::string& f : entries(t.path / "ref")) {
    if (fs::path(f).extension() == ".safetensors") shards.insert(f);
  }
  std::set<std::string> resumed_shards;
  for (const std::string& f : entries(t.path / "out")) {
    if (fs::path(f).extension() == ".safetensors") resumed_shards.insert(f);
  }
  ASSERT_FALSE(shards.empty());
  EXPECT_EQ(resumed_shards, shards);
  for (const std::string& f : shards) {
    EXPECT_TRUE(test::read_all((t.path / "out" / f).string()) ==
                test::read_all((t.path / "ref" / f).string()))
        << f << " differs from the uninterrupted run";
  }
  expect_no_temp_files(t.path);
}

TEST(Hostile_Signals, GptqKilledThenResumed) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  kill_and_resume(std::string(kCalib) + " --group-size 32", "hx_sg_gptq");
}

TEST(Hostile_Signals, AwqKilledThenResumed) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  kill_and_resume(" --algo awq --calib tinystories --nsamples 8 --seqlen 64 --group-size 32",
                  "hx_sg_awq");
}

TEST(Hostile_Signals, SigintKeepsTheTempFolderAndResumes) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_sg_int");
  const std::string args = std::string(kCalib) + " --group-size 32";
  const CliResult r = quantize_signalled(t.path, args, SIGINT);
  expect_one_line_error(r, "interrupted by SIGINT; kept", 130);
  ASSERT_EQ(temp_folders_of(t.path, "out").size(), 1u);
  EXPECT_EQ(entries(t.path).size(), 1u);
  const CliResult resumed =
      test::run_cli("quantize --model " + model + " --out " + t.sub("out") + " " + args);
  ASSERT_EQ(resumed.rc, 0) << resumed.out;
  EXPECT_NE(resumed.out.find("resuming"), std::string::npos) << resumed.out;
  EXPECT_EQ(entries(t.path), std::set<std::string>{"out"});
}

TEST(Hostile_Signals, LeftoverOfADifferentRunIsRemoved) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_sg_other");
  const CliResult r = quantize_signalled(t.path, std::string(kCalib) + " --group-size 32", SIGINT);
  ASSERT_EQ(r.rc, 130) << r.out;
  ASSERT_EQ(temp_folders_of(t.path, "out").size(), 1u);
  const CliResult next = test::run_cli("quantize --model " + model + " --out " + t.sub("out") +
                                       kCalib + " --group-size 64");
  ASSERT_EQ(next.rc, 0) << next.out;
  EXPECT_NE(next.out.find("removed"), std::string::npos) << next.out;
  EXPECT_NE(next.out.find("the temp folder of an interrupted run"), std::string::npos) << next.out;
  EXPECT_EQ(next.out.find("resuming"), std::string::npos) << next.out;
  EXPECT_EQ(entries(t.path), std::set<std::string>{"out"});
  EXPECT_EQ(read_json(t.path / "out" / "config.json")["quantization_config"]["group_size"], 64);
}

TEST(Hostile_Signals, NoResumeRemovesAMatchingLeftover) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_sg_noresume");
  const std::string args = std::string(kCalib) + " --group-size 32";
  const CliResult r = quantize_signalled(t.path, args, SIGINT);
  ASSERT_EQ(r.rc, 130) << r.out;
  ASSERT_EQ(temp_folders_of(t.path, "out").size(), 1u);
  const CliResult next = test::run_cli("quantize --model " + model + " --out " + t.sub("out") +
                                       " " + args + " --no-resume");
  ASSERT_EQ(next.rc, 0) << next.out;
  EXPECT_NE(next.out.find("removed"), std::string::npos) << next.out;
  EXPECT_NE(next.out.find("the temp folder of an interrupted run"), std::string::npos) << next.out;
  EXPECT_EQ(next.out.find("resuming"), std::string::npos) << next.out;
  EXPECT_EQ(entries(t.path), std::set<std::string>{"out"});
}

TEST(Hostile_Signals, TempFolderLockedByAnotherProcess) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_sg_lock");
  const fs::path tmp = t.path / ("out.tmp." + std::to_string(::getpid()));
  fs::create_directories(tmp);
  write(tmp / "model-00001-of-00006.safetensors", "partial");
  const int fd = ::open((tmp / ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  const auto before = snapshot(t.path);
  const CliResult r =
      test::run_cli("quantize --model " + model + " --out " + t.sub("out") + " --algo rtn");
  expect_one_line_error(r, "another lowbit process");
  EXPECT_EQ(snapshot(t.path), before);
  ::flock(fd, LOCK_UN);
  ::close(fd);
}

TEST(Hostile_Signals, SigtermDuringEval) {
  HOSTILE_SHARED_HF(model);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  TempDir t("hx_sg_term");
  const std::string js = t.sub("J.json");
  // The whole of WikiText-2 takes ~20 s here: the signal comes long before the end.
  const CliResult r =
      test::run_cmd("LOWBIT_PROGRESS=0 bash -c '" + cli() + " eval ppl --model " + model +
                    " --text wikitext2 --json " + js + " & sleep 0.5; kill -TERM $!; wait $!'");
  expect_one_line_error(r, "interrupted by SIGTERM", 143);
  EXPECT_TRUE(entries(t.path).empty()) << "left: " << *entries(t.path).begin();
}

// Another program truncates a model file while lowbit reads it through its mapping: the SIGBUS
// that follows is one line naming the file (after cleanup), not a crash.
TEST(Hostile_Signals, MappedModelTruncatedWhileRunning) {
  HOSTILE_SHARED_HF(src);
  LOWBIT_SHARED_OR_SKIP(wiki, "data/wikitext-2/wiki.test.raw");
  TempDir t("hx_sg_bus");
  const fs::path m = t.path / "m";
  copy_dir(src, m);
  const std::string js = t.sub("J.json");
  const CliResult r = test::run_cmd("LOWBIT_PROGRESS=0 bash -c '" + cli() + " eval ppl --model " +
                                    m.string() + " --text wikitext2 --ctx 64 --json " + js +
                                    " >/dev/null & sleep 0.5; truncate -s 100000 " +
                                    (m / "model.safetensors").string() + "; wait $!'");
  expect_one_line_error(r, "model.safetensors: the file changed while lowbit was reading it");
  EXPECT_FALSE(fs::exists(js));
  expect_no_temp_files(t.path);
}

// A run that died between moving the old output aside ("<out>.old.<pid>") and renaming the new
// one into place: the next run for that output puts the old one back and says so.
TEST(Hostile_Signals, OutputMovedAsideByADeadRunIsRestored) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_sg_old");
  const std::string out = t.sub("q");
  ASSERT_EQ(test::run_cli("quantize --model " + model + " --out " + out + " --algo rtn").rc, 0);
  const auto before = snapshot(out);
  // A pid that is not running: the highest the kernel hands out, plus one.
  fs::rename(out, out + ".old.4194305");
  const CliResult r =
      run_cli_stderr_only("quantize --model " + model + " --out " + out + " --algo rtn");
  EXPECT_EQ(r.rc, 2) << r.out;
  EXPECT_NE(r.out.find("restored " + out), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("already exists"), std::string::npos) << r.out;
  EXPECT_EQ(snapshot(out), before);
  EXPECT_EQ(entries(t.path), (std::set<std::string>{"q"}));
}

// ---- small ones ----------------------------------------------------------------------------

TEST(Hostile_Small, GenerateZeroTokensEchoesThePrompt) {
  HOSTILE_SHARED_HF(model);
  const CliResult r = test::run_cmd("{ LOWBIT_PROGRESS=0 " + cli() + " generate --model " + model +
                                    " -n 0 --prompt 'Once upon a time' 2>/dev/null; }");
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(r.out.rfind("Once upon a time", 0), 0u) << r.out;
}

TEST(Hostile_Small, RopeScalingWithoutType) {
  HOSTILE_SHARED_HF(src);
  TempDir t("hx_sm_rope");
  const fs::path m = t.path / "m";
  copy_dir(src, m);
  json cfg = read_json(m / "config.json");
  cfg["rope_scaling"] = {{"factor", 2.0}};
  write_json(m / "config.json", cfg);
  expect_one_line_error(test::run_cli("generate --model " + m.string() + " --prompt hi -n 1"),
                        "rope_scaling has no 'rope_type'");
}

TEST(Hostile_Small, BitsContradictWeightType) {
  HOSTILE_SHARED_HF(model);
  TempDir t("hx_sm_bits");
  expect_one_line_error(test::run_cli("quantize --model " + model + " --out " + t.sub("q") +
                                      " --algo rtn --bits 8 --weight-type nf4"),
                        "contradicts --weight-type");
  EXPECT_TRUE(entries(t.path).empty());
}

TEST(Hostile_Small, Llama2cCheckpointWithBytesAppended) {
  LOWBIT_SHARED_OR_SKIP(src, "models/stories260K");
  TempDir t("hx_sm_l2c");
  copy_dir(src, t.path);
  {
    std::ofstream f(t.path / "stories260K.bin", std::ios::binary | std::ios::app);
    f << "12345678";
  }
  const std::string line = expect_one_line_error(
      test::run_cli("generate --model " + t.sub("stories260K.bin") + " --prompt hi -n 1"),
      "8 bytes more than a llama2.c checkpoint");
  EXPECT_EQ(line.find("truncated"), std::string::npos) << line;
}

TEST(Hostile_Small, Llama2cTokenizerWithAnExtraToken) {
  LOWBIT_SHARED_OR_SKIP(src, "models/stories260K");
  TempDir t("hx_sm_tok");
  copy_dir(src, t.path);
  {
    std::ofstream f(t.path / "tok512.bin", std::ios::binary | std::ios::app);
    const float score = 0.0f;
    const int32_t len = 3;
    f.write(reinterpret_cast<const char*>(&score), 4);
    f.write(reinterpret_cast<const char*>(&len), 4);
    f << "xyz";
  }
  expect_one_line_error(test::run_cli("generate --model " + t.sub("stories260K.bin") +
                                      " --tokenizer " + t.sub("tok512.bin") + " --prompt hi -n 1"),
                        "holds more than the model's 512 tokens");
  // Found beside the model, the same.
  expect_one_line_error(
      test::run_cli("generate --model " + t.sub("stories260K.bin") + " --prompt hi -n 1"),
      "holds more than the model's 512 tokens");
}

TEST(Hostile_Small, QuantizationConfigBitsIsAString) {
  HOSTILE_SHARED_HF(model);
  HOSTILE_SHARED_TINYSTORIES();
  TempDir t("hx_sm_four");
  const fs::path g = quantize_into(t, "g", "--algo rtn --group-size 32");
  ASSERT_TRUE(fs::exists(g / "config.json"));
  json cfg = read_json(g / "config.json");
  cfg["quantization_config"]["bits"] = "four";
  write_json(g / "config.json", cfg);
  for (const std::string& args :
       {"generate --model " + g.string() + " --prompt hi -n 1",
        "eval ppl --model " + g.string() + " --text tinystories --limit 1"}) {
    SCOPED_TRACE(args);
    const std::string line = expect_one_line_error(test::run_cli(args), "lowbit: ");
    EXPECT_EQ(line.find("[json.exception"), std::string::npos) << line;
    EXPECT_NE(line.find("bits"), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace lowbit
