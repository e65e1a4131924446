#include "lowbit/eval/text_sets.h"

#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <string_view>

#include "lowbit/io/limits.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

struct NamedSet {
  std::string_view name;
  std::string_view rel_path;  // under the shared folder
  bool wikitext;              // apply wikitext_hf_join
};

constexpr std::array<NamedSet, 5> kSets{{
    {"wikitext2", "data/wikitext-2/wiki.test.raw", true},
    {"wikitext2-valid", "data/wikitext-2/wiki.valid.raw", true},
    {"tinystories", "data/tinystories/tinystories-v1-valid-first500.txt", false},
    {"tinystories-calib", "data/tinystories/tinystories-v1-valid-calib.txt", false},
    {"lambada", "data/lambada/lambada_test.jsonl", false},
}};

const NamedSet* find_set(const std::string& name) {
  for (const auto& s : kSets)
    if (s.name == name) return &s;
  return nullptr;
}

std::string known_names() {
  std::string out;
  for (const auto& s : kSets) out += (out.empty() ? "" : ", ") + std::string(s.name);
  return out;
}

std::string exe_dir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

}  // namespace

std::string shared_dir() {
  if (const char* env = std::getenv("LOWBIT_SHARED"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  if (fs::is_directory("../shared", ec)) return "../shared";
  const std::string dir = exe_dir();
  if (!dir.empty()) {
    fs::path p = fs::path(dir) / ".." / ".." / "shared";
    if (fs::is_directory(p, ec)) return p.lexically_normal().string();
  }
  return "";
}

bool is_text_set_name(const std::string& name) { return find_set(name) != nullptr; }

std::string resolve_text_path(const std::string& name_or_path) {
  const NamedSet* set = find_set(name_or_path);
  if (set == nullptr) return name_or_path;
  const std::string dir = shared_dir();
  if (dir.empty())
    fail(name_or_path,
         "text set needs the shared data folder, which was not found (set LOWBIT_SHARED)");
  return dir + "/" + std::string(set->rel_path);
}

std::string wikitext_hf_join(const std::string& raw) {
  std::string out;
  out.reserve(raw.size() + raw.size() / 16);
  size_t pos = 0;
  bool first = true;
  while (pos < raw.size()) {
    size_t nl = raw.find('\n', pos);
    size_t end = nl == std::string::npos ? raw.size() : nl + 1;  // row keeps its "\n"
    std::string_view row(raw.data() + pos, end - pos);
    if (!first) out += "\n\n";
    first = false;
    if (row != " \n") out.append(row);
    pos = end;
  }
  return out;
}

std::string load_text_set(const std::string& name_or_path) {
  if (name_or_path == "lambada")
    fail(name_or_path, "is a task file, not a text; use `lowbit eval lambada`");
  const NamedSet* set = find_set(name_or_path);
  const std::string path = resolve_text_path(name_or_path);
  if (set == nullptr && !path_exists(path))
    fail(name_or_path, "unknown text set or missing file (known sets: {})", known_names());
  if (set != nullptr && !path_exists(path))
    fail(path, "missing file for text set '{}' (set LOWBIT_SHARED)", name_or_path);
  if (is_dir(path)) fail(path, "is a directory, expected a text file");
  std::string text = read_file(path, kMaxTextBytes, "text");
  if (text.empty()) fail(path, "empty text file");
  return set != nullptr && set->wikitext ? wikitext_hf_join(text) : text;
}

}  // namespace lowbit
