// libFuzzer target: a sharded Hugging Face model folder as TensorStore::open_dir reads it
// (model.safetensors.index.json + the shards it names, or a single model.safetensors). Each input
// is written as a few small files into a fresh folder (one per process, emptied per input):
//
//   <index JSON> NUL { <file name> LF <file bytes> } separated by the line "--next-file--"
//
// An empty index part writes no index (the single-file layout). File names other than 1-64 chars of
// [A-Za-z0-9._-] are dropped. Only lowbit::Error may escape; every tensor of an opened store must
// lie inside one of its files.
#include <fcntl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "lowbit/io/safetensors.h"
#include "lowbit/util/error.h"

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSeparator = "\n--next-file--\n";
constexpr int kMaxFiles = 4;

// Never destroyed, so that the exit handler that removes the folder can still name it.
const std::string& work_dir() {
  static const std::string* dir = [] {
    auto* d = new std::string((fs::temp_directory_path() / "lowbit_fuzz_dir_XXXXXX").string());
    if (::mkdtemp(d->data()) == nullptr) std::abort();
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(work_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

bool good_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void write(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) std::abort();
  while (!bytes.empty()) {
    const ssize_t w = ::write(fd, bytes.data(), bytes.size());
    if (w <= 0) std::abort();
    bytes.remove_prefix(static_cast<size_t>(w));
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = work_dir();
  for (const auto& e : fs::directory_iterator(dir)) fs::remove_all(e.path());

  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const std::string_view index = in.substr(0, nul);
  if (!index.empty()) write(dir + "/model.safetensors.index.json", index);
  std::string_view rest = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);
  for (int i = 0; i < kMaxFiles && !rest.empty(); ++i) {
    const size_t sep = rest.find(kSeparator);
    const std::string_view file = rest.substr(0, sep);
    rest =
        sep == std::string_view::npos ? std::string_view() : rest.substr(sep + kSeparator.size());
    const size_t lf = file.find('\n');
    if (lf == std::string_view::npos || !good_name(file.substr(0, lf))) continue;
    write(dir + "/" + std::string(file.substr(0, lf)), file.substr(lf + 1));
  }

  try {
    const lowbit::TensorStore store = lowbit::TensorStore::open_dir(dir);
    volatile uint8_t sink = 0;
    for (const std::string& name : store.names()) {
      const lowbit::TensorInfo& t = store.get(name);
      if (t.name != name) std::abort();
      if (static_cast<size_t>(t.numel()) * lowbit::dtype_size(t.dtype) != t.nbytes) std::abort();
      if (t.nbytes == 0) continue;
      bool inside = false;
      for (const auto& f : store.files()) {
        const uint8_t* begin = f->mapped()->data();
        inside = inside || (t.data >= begin && t.data + t.nbytes <= begin + f->mapped()->size());
      }
      if (!inside) std::abort();
      sink = sink + t.data[0] + t.data[t.nbytes - 1];
    }
  } catch (const lowbit::Error&) {
    // expected for malformed input
  }
  return 0;
}
