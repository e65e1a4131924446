#include "lowbit/io/output_dir.h"

#include <unistd.h>

#include <filesystem>

#include "lowbit/util/error.h"

namespace lowbit {

namespace fs = std::filesystem;

OutputDir::OutputDir(const std::string& out, bool force) {
  if (out.empty()) fail("output", "no output folder given");
  fs::path p = fs::path(out);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();  // trailing '/'
  out_ = p.string();
  std::error_code ec;
  if (fs::exists(p, ec) && !force) fail(out_, "already exists (remove it or pass --force)");
  tmp_ = out_ + ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp_, ec);
  ec.clear();
  fs::create_directories(tmp_, ec);
  if (ec) fail(tmp_, "cannot create folder: {}", ec.message());
  if (::access(tmp_.c_str(), W_OK) != 0) {
    fs::remove_all(tmp_, ec);
    fail(out_, "output folder is not writable");
  }
}

OutputDir::~OutputDir() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

std::string OutputDir::file(const std::string& name) const { return (fs::path(tmp_) / name).string(); }

void OutputDir::commit() {
  std::error_code ec;
  if (fs::exists(out_, ec)) {  // force: swap in the new folder, then drop the old one
    const std::string old = out_ + ".old." + std::to_string(::getpid());
    fs::rename(out_, old, ec);
    if (ec) fail(out_, "cannot replace: {}", ec.message());
    fs::remove_all(old, ec);
  }
  fs::rename(tmp_, out_, ec);
  if (ec) fail(out_, "cannot rename {}: {}", tmp_, ec.message());
  committed_ = true;
}

}  // namespace lowbit
