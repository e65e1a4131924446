// Helpers shared by the GGUF tests (export and import): temp paths and reading what llama.cpp's
// and lowbit's tools print.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

namespace lowbit::test {

inline std::string gguf_tmp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("lowbit-gguf-" + std::to_string(::getpid()) + "-" + name))
      .string();
}

// The ids llama-tokenize prints for a file ("[1, 2, 3]").
inline std::vector<std::string> llama_ids(const std::string& out) {
  std::vector<std::string> ids;
  const size_t a = out.rfind('['), b = out.rfind(']');
  if (a == std::string::npos || b == std::string::npos || b < a) return ids;
  std::string s = out.substr(a + 1, b - a - 1);
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(s.begin(), s.end(), num); it != std::sregex_iterator(); ++it)
    ids.push_back(it->str());
  return ids;
}

// The ids `lowbit tokenize` prints (space-separated).
inline std::vector<std::string> lowbit_ids(const std::string& out) {
  std::vector<std::string> ids;
  std::regex num("\\d+");
  for (auto it = std::sregex_iterator(out.begin(), out.end(), num); it != std::sregex_iterator();
       ++it)
    ids.push_back(it->str());
  return ids;
}

// The number printed after `label` (NaN when absent).
inline double number_after(const std::string& out, const std::string& label) {
  const std::regex re(label + "\\s*([0-9.]+)");
  std::smatch m;
  if (!std::regex_search(out, m, re)) return NAN;
  return std::stod(m[1].str());
}

// Writes `text` to `path`; false when it cannot.
inline bool write_text(const std::string& path, const std::string& text) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace lowbit::test
