#include "lowbit/tokenizer/spm_processor.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

#include "lowbit/util/error.h"

#ifndef LOWBIT_MODULE_DIR
#define LOWBIT_MODULE_DIR "."
#endif

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOWBIT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define LOWBIT_ASAN 1
#endif

namespace lowbit {

namespace {

constexpr char kModuleFile[] = "liblowbit_sentencepiece.so";

// The folder of the running program ("" when unknown).
std::string program_dir() {
  std::string buf(4096, '\0');
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return "";
  buf.resize(static_cast<size_t>(n));
  const size_t slash = buf.rfind('/');
  return slash == std::string::npos ? "" : buf.substr(0, slash);
}

struct Module {
  SpmOpenFn open = nullptr;
  std::string error;
};

// Opens the module once: $LOWBIT_SENTENCEPIECE_MODULE when set, else beside the program, else in
// the build folder it was built in.
const Module& module() {
  static Module m;
  static std::once_flag once;
  std::call_once(once, [] {
  // AddressSanitizer refuses RTLD_DEEPBIND; its builds (the fuzz targets) link --as-needed, so
  // a program that reads SentencePiece models there has no libprotobuf to clash with.
#ifdef LOWBIT_ASAN
    const int flags = RTLD_NOW | RTLD_LOCAL;
#else
    const int flags = RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND;
#endif
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("LOWBIT_SENTENCEPIECE_MODULE"); env != nullptr && *env) {
      candidates.emplace_back(env);
    } else {
      const std::string dir = program_dir();
      if (!dir.empty()) candidates.push_back(dir + "/" + kModuleFile);
      candidates.push_back(std::string(LOWBIT_MODULE_DIR) + "/" + kModuleFile);
    }
    std::string tried;
    for (const std::string& path : candidates) {
      void* h = dlopen(path.c_str(), flags);
      if (h == nullptr) {
        const char* e = dlerror();
        tried += (tried.empty() ? "" : "; ") + std::string(e != nullptr ? e : path);
        continue;
      }
      m.open = reinterpret_cast<SpmOpenFn>(dlsym(h, kSpmOpenSymbol));
      if (m.open == nullptr) {
        tried += (tried.empty() ? "" : "; ") + path + ": no symbol " + kSpmOpenSymbol;
        continue;
      }
      return;
    }
    m.error = "cannot open lowbit's SentencePiece module (" + tried + ")";
  });
  return m;
}

}  // namespace

std::unique_ptr<SpmProcessor> open_spm_processor(const std::string& bytes,
                                                 const std::string& name) {
  const Module& m = module();
  if (m.open == nullptr) fail(name, "{}", m.error);
  std::string error;
  std::unique_ptr<SpmProcessor> p(m.open(bytes.data(), bytes.size(), &error));
  if (p == nullptr) fail(name, "not a valid SentencePiece model: {}", error);
  return p;
}

}  // namespace lowbit
