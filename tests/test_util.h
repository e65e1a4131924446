// Helpers shared by the tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "lowbit/formats/scheme.h"
#include "lowbit/util/error.h"

namespace lowbit::test {

// ../shared beside the checkout (override with LOWBIT_SHARED).
inline std::string shared_dir() {
  if (const char* env = std::getenv("LOWBIT_SHARED")) return env;
  return std::string(LOWBIT_SOURCE_DIR) + "/../shared";
}

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

inline std::string source_dir() { return LOWBIT_SOURCE_DIR; }
inline std::string cli_path() { return LOWBIT_CLI_PATH; }

// The whole content of a file ("" when it cannot be read).
// The message of the lowbit::Error `f` throws ("(no error)" when it throws none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Max |a[i] − b[i]| over max |b[i]|: the error of a result relative to its scale.
inline double max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num = std::max(num, std::fabs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::fabs(static_cast<double>(b[i])));
  }
  return num / den;
}

inline std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A fresh folder under the system temp dir, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() /
             ("lowbit_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path.string(); }
  // The path of `f` inside the folder.
  std::string sub(const std::string& f) const { return (path / f).string(); }
  std::string operator/(const std::string& f) const { return sub(f); }
};

// The lines of s split at '\n' (a trailing '\n' gives a last empty line).
inline std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t p = 0;
  while (true) {
    size_t q = s.find('\n', p);
    out.push_back(s.substr(p, q == std::string::npos ? std::string::npos : q - p));
    if (q == std::string::npos) break;
    p = q + 1;
  }
  return out;
}

// An integer weight scheme with fp16 scales (asymmetric unless `sym`).
inline QuantScheme int_scheme(int bits, int group, bool sym = false) {
  QuantScheme s;
  s.type = WeightType::kInt;
  s.bits = bits;
  s.group_size = group;
  s.sym = sym;
  s.scale_type = ScaleType::kF16;
  return s;
}

struct CliResult {
  int rc = -1;
  std::string out;  // stdout and stderr together
};

// Runs a shell command line (stderr merged into stdout) and captures its exit code and output.
inline CliResult run_cmd(const std::string& command) {
  CliResult r;
  const std::string cmd = command + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int status = pclose(p);
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs `lowbit <args>` (no progress bar) and captures its exit code and output.
inline CliResult run_cli(const std::string& args) {
  return run_cmd("LOWBIT_PROGRESS=0 " + cli_path() + " " + args);
}

// The CPU features the llama.cpp peers (../shared/peers/llama.cpp-b4748, built with
// GGML_NATIVE on an AVX-512 machine: peers/README.md) need and this CPU lacks; "" when it has them.
// On such a CPU every peer tool dies of SIGILL, so the tests that run them skip (with this list).
inline const std::string& llamacpp_missing_cpu_features() {
  static const std::string missing = [] {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    std::set<std::string> flags;
    while (std::getline(f, line)) {
      if (line.rfind("flags", 0) == 0 && line.find(':') != std::string::npos) {
        std::istringstream words(line.substr(line.find(':') + 1));
        for (std::string w; words >> w;) flags.insert(w);
        break;
      }
    }
    std::string m;
    for (const char* x : {"avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"}) {
      if (flags.count(x) != 0) continue;
      if (!m.empty()) m += ' ';
      m += x;
    }
    return m;
  }();
  return missing;
}

}  // namespace lowbit::test

// Returns the path of a file under ../shared, or skips the test when ../shared is absent
// (fails instead when CI=true).
#define LOWBIT_SHARED_OR_SKIP(var, rel)                                              \
  std::string var = ::lowbit::test::shared_dir() + "/" + (rel);                      \
  if (!std::filesystem::exists(var)) {                                               \
    if (::lowbit::test::in_ci()) FAIL() << "missing shared file (CI=true): " << var; \
    GTEST_SKIP() << "../shared not available: " << var;                              \
  }

// `var` = the llama.cpp peers' bin folder, or skips the test: when ../shared lacks it (fails
// instead when CI=true), or when this CPU cannot run them (llamacpp_missing_cpu_features).
#define LOWBIT_LLAMACPP_OR_SKIP(var)                                                  \
  LOWBIT_SHARED_OR_SKIP(var, "peers/llama.cpp-b4748/bin");                            \
  if (!::lowbit::test::llamacpp_missing_cpu_features().empty()) {                     \
    GTEST_SKIP() << "llama.cpp peers need AVX-512 (peers/README.md); this CPU lacks " \
                 << ::lowbit::test::llamacpp_missing_cpu_features();                  \
  }
