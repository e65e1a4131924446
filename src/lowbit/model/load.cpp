// load_model: what the user points at (HF folder, llama2.c file, folder with a llama2.c file)
// -> weights + tokenizer.
#include "lowbit/model/load.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "lowbit/kernels/packed_weight.h"
#include "lowbit/tokenizer/gguf_tokenizer.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// llama2.c tokenizer files are named tok*.bin (tok512.bin) or tokenizer.bin.
bool is_tokenizer_bin(const fs::path& p) {
  const std::string name = p.filename().string();
  return ends_with(name, ".bin") && (name.rfind("tok", 0) == 0);
}

std::vector<fs::path> bins_in(const fs::path& dir, bool tokenizers) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code fec;
    if (!it->is_regular_file(fec) || it->path().extension() != ".bin") continue;
    if (is_tokenizer_bin(it->path()) == tokenizers) out.push_back(it->path());
  }
  if (ec) fail(dir.string(), "cannot list: {}", errno_text(ec.value()));
  std::sort(out.begin(), out.end());
  return out;
}

std::string join_names(const std::vector<fs::path>& v) {
  std::string s;
  for (const auto& p : v) s += (s.empty() ? "" : ", ") + p.filename().string();
  return s;
}

// The single llama2.c tokenizer beside a checkpoint.
std::string find_llama2c_tokenizer(const fs::path& dir, const std::string& model_path) {
  auto toks = bins_in(dir, true);
  if (toks.empty()) {
    fail(model_path, "no tokenizer (tok*.bin or tokenizer.bin) beside it; pass --tokenizer");
  }
  if (toks.size() > 1) {
    fail(model_path, "several tokenizers beside it ({}); pass --tokenizer", join_names(toks));
  }
  return toks[0].string();
}

void check_vocab(const LoadedModel& m, const std::string& tok_path) {
  if (m.tokenizer && m.tokenizer->vocab_size() > m.weights->cfg.vocab_size) {
    fail(tok_path, "tokenizer has {} tokens but the model's vocabulary is {}",
         m.tokenizer->vocab_size(), m.weights->cfg.vocab_size);
  }
}

}  // namespace

std::shared_ptr<Tokenizer> open_tokenizer(const std::string& path, int vocab_size) {
  if (is_gguf_path(path)) return load_gguf_tokenizer(path);
  if (ends_with(path, ".bin")) return load_llama2c_tokenizer(path, vocab_size);
  return load_tokenizer(path);
}

ModelLocation locate_model(const std::string& path, const std::string& tokenizer_path,
                           bool want_tokenizer) {
  ModelLocation loc;
  fs::path p(path);
  PathKind kind = path_kind(path);
  if (kind == PathKind::kMissing) fail(path, "no such file or directory");
  if (kind == PathKind::kOther) fail(path, "not a regular file or folder");
  if (kind == PathKind::kFile && p.extension() == ".onnx") {
    const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    if (!path_exists((dir / "config.json").string())) {
      fail(path,
           "no config.json beside it (lowbit reads ONNX decoders with their Hugging Face "
           "config.json, as optimum exports them)");
    }
    loc.hf = true;
    loc.weights = dir.string();
    loc.onnx = p.string();
    loc.tokenizer = tokenizer_path.empty() ? dir.string() : tokenizer_path;
    return loc;
  }
  if (kind == PathKind::kFile &&
      (p.filename() == "config.json" || p.extension() == ".safetensors")) {
    p = p.parent_path().empty() ? fs::path(".") : p.parent_path();
    kind = PathKind::kDir;
  }
  loc.tokenizer = tokenizer_path;
  if (kind == PathKind::kFile && is_gguf_path(path)) {
    loc.gguf = true;
    loc.weights = path;
    if (loc.tokenizer.empty()) loc.tokenizer = path;  // the tokenizer is in the metadata
    return loc;
  }
  if (kind == PathKind::kDir) {
    if (path_exists((p / "config.json").string())) {
      loc.hf = true;
      loc.weights = p.string();
      if (!path_exists((p / "model.safetensors").string()) &&
          !path_exists((p / "model.safetensors.index.json").string()) &&
          path_exists((p / "model.onnx").string())) {
        loc.onnx = (p / "model.onnx").string();
      }
      if (loc.tokenizer.empty()) {
        // A quantized llama2.c model saved by lowbit keeps its tokenizer.bin beside config.json.
        auto toks = bins_in(p, true);
        loc.tokenizer = !path_exists((p / "tokenizer.json").string()) && toks.size() == 1
                            ? toks[0].string()
                            : p.string();
      }
    } else {
      auto models = bins_in(p, false);
      if (models.empty()) {
        fail(path, "neither a Hugging Face folder (config.json) nor a folder with a llama2.c .bin");
      }
      if (models.size() > 1) {
        fail(path, "several llama2.c checkpoints ({}); name one", join_names(models));
      }
      loc.weights = models[0].string();
      if (loc.tokenizer.empty() && want_tokenizer) {
        loc.tokenizer = find_llama2c_tokenizer(p, models[0].string());
      }
    }
  } else {
    loc.weights = p.string();
    if (loc.tokenizer.empty() && want_tokenizer) {
      const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
      loc.tokenizer = find_llama2c_tokenizer(dir, path);
    }
  }
  return loc;
}

std::vector<std::string> model_input_paths(const std::string& path,
                                           const std::string& tokenizer_path) {
  std::vector<std::string> out = {path, tokenizer_path};
  try {
    const ModelLocation loc = locate_model(path, tokenizer_path, true);
    out.push_back(loc.weights);
    out.push_back(loc.tokenizer);
  } catch (const Error&) {
    // Nothing loadable, or no single tokenizer beside it: the load itself will say so.
  }
  return out;
}

void l2_normalize_rows(float* w, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = w + r * cols;
    double ss = 0;
    for (int64_t c = 0; c < cols; ++c) ss += double(row[c]) * row[c];
    const float inv = static_cast<float>(1.0 / std::max(std::sqrt(ss), 1e-12));
    for (int64_t c = 0; c < cols; ++c) row[c] *= inv;
  }
}

void pack_linears_bf16(ModelWeights* w) {
  auto pack = [w](Linear& l) {
    if (l.packed != nullptr || l.w == nullptr) return;
    auto p = std::make_shared<kernels::PackedWeight>(kernels::pack_bf16(l.w, l.out, l.in));
    l.packed = p.get();
    l.w = nullptr;
    w->keep_alive.push_back(p);
  };
  for (LayerWeights& L : w->layers) {
    for (Linear* l : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) pack(*l);
  }
  pack(w->lm_head);
}

LoadedModel load_model(const std::string& path, const std::string& tokenizer_path,
                       bool want_tokenizer, bool use_mmap) {
  RuntimeOptions rt;
  rt.use_mmap = use_mmap;
  return load_model(path, tokenizer_path, want_tokenizer, rt);
}

LoadedModel load_model(const std::string& path, const std::string& tokenizer_path,
                       bool want_tokenizer, const RuntimeOptions& rt) {
  LoadedModel m;
  m.source = path;
  const ModelLocation loc = locate_model(path, tokenizer_path, want_tokenizer);
  m.weights = !loc.onnx.empty() ? load_onnx_weights(loc.onnx, rt)
              : loc.hf          ? load_hf_weights(loc.weights, rt)
              : loc.gguf        ? load_gguf_weights(loc.weights, rt)
                                : load_llama2c_weights(loc.weights, rt.use_mmap);
  if (rt.bf16_linears) pack_linears_bf16(m.weights.get());
  if (want_tokenizer) {
    m.tokenizer = open_tokenizer(loc.tokenizer, m.weights->cfg.vocab_size);
    check_vocab(m, loc.tokenizer);
  }
  return m;
}

}  // namespace lowbit
