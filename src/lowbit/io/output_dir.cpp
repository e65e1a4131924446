#include "lowbit/io/output_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/signals.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

// Absolute, with symlinks and ".." resolved as far as the path exists, no trailing separator. A
// link that resolves to no path (/dev/stdout -> "pipe:[123]") is taken as it is written.
fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path r = fs::absolute(p, ec);
  if (ec) fail(p, "{}", errno_text(ec.value()));
  const fs::path c = fs::weakly_canonical(r, ec);
  if (ec && ec.value() == ELOOP) fail(p, "{}", errno_text(ec.value()));
  r = ec ? r.lexically_normal() : c;
  while (r.has_relative_path() && r.filename().empty()) r = r.parent_path();
  return r;
}

// Whether `inner` is `outer` or lies inside it.
bool within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

bool pid_alive(long pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

// "<base>.tmp.<pid>[...]" -> pid (0 when the suffix does not start with digits).
long pid_of(const std::string& name, size_t prefix_len) {
  long pid = 0;
  for (size_t i = prefix_len; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
    pid = pid * 10 + (name[i] - '0');
    if (pid > (1L << 40)) return 0;
  }
  return pid;
}

void note(const std::string& msg) { std::fprintf(stderr, "lowbit: %s\n", msg.c_str()); }

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) fail(path, "cannot remove: {}", errno_text(ec.value()));
}

}  // namespace

void check_output_path(const std::string& out, const std::vector<std::string>& inputs,
                       bool folder) {
  if (out.empty()) fail("output", "no output path given");
  const fs::path o = resolved(out);
  if (!folder && is_dir(out)) fail(out, "is a folder; give the name of a file to write");
  for (const std::string& in : inputs) {
    if (in.empty() || !path_exists(in)) continue;
    const fs::path i = resolved(in);
    if (o == i || same_file(out, in)) {
      fail(out, "is also an input ({}); lowbit never writes over its inputs", in);
    }
    if (folder && within(i, o)) {
      fail(out, "contains the input {}; writing the output there would replace it", in);
    }
    if (within(o, i)) fail(out, "lies inside the input {}; write the output elsewhere", in);
  }
}

bool path_within(const std::string& inner, const std::string& outer) {
  return within(resolved(inner), resolved(outer));
}

OutputDir::OutputDir(const std::string& out, const OutputDirOptions& opt)
    : command_(opt.command), force_(opt.force) {
  if (out.empty()) fail("output", "no output folder given");
  fs::path p = fs::path(out);
  while (p.has_relative_path() && p.filename().empty()) p = p.parent_path();  // trailing '/'
  out_ = p.string();
  check_output_path(out_, opt.inputs, /*folder=*/true);
  tmp_ = out_ + ".tmp." + std::to_string(::getpid());
  clean_stale(opt);  // first: it may put back an output a dead run had moved aside
  const PathKind kind = path_kind(out_);
  if (kind != PathKind::kMissing) {
    if (!opt.force) fail(out_, "already exists (remove it or pass --force)");
    check_replaceable();
  }
  std::error_code ec;
  if (!adopted_) {
    fs::remove_all(tmp_, ec);
    ec.clear();
    fs::create_directories(tmp_, ec);
    if (ec) fail(tmp_, "cannot create folder: {}", errno_text(ec.value()));
  }
  signal_guard_ = signals::register_temp(
      tmp_, opt.keep_on_signal.empty() ? "" : "kept " + tmp_ + ": " + opt.keep_on_signal);
  lock_fd_ = ::open(file(kLockName).c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0 || ::access(tmp_.c_str(), W_OK) != 0) {
    fs::remove_all(tmp_, ec);
    signals::unregister_temp(signal_guard_);
    if (lock_fd_ >= 0) ::close(lock_fd_);
    fail(out_, "output folder is not writable");
  }
  ::flock(lock_fd_, LOCK_EX | LOCK_NB);  // held while this process lives
}

OutputDir::~OutputDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }
  signals::unregister_temp(signal_guard_);
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string OutputDir::file(const std::string& name) const {
  return (fs::path(tmp_) / name).string();
}

void OutputDir::check_replaceable() const {
  if (!is_dir(out_)) {
    fail(out_, "exists and is not a folder; --force replaces only folders lowbit wrote");
  }
  const std::string manifest = (fs::path(out_) / kManifestName).string();
  if (!path_exists(manifest)) {
    fail(out_,
         "exists and was not written by lowbit (no {} manifest); --force replaces only lowbit's "
         "own output folders: remove it yourself or choose another output",
         kManifestName);
  }
  std::set<std::string> listed;
  const nlohmann::json m = read_json_file(manifest, kMaxConfigBytes, "manifest");
  if (m.is_object() && m.contains("files") && m["files"].is_array()) {
    for (const auto& f : m["files"]) {
      if (f.is_string()) listed.insert(f.get<std::string>());
    }
  }
  std::vector<std::string> foreign;
  std::error_code ec;
  for (fs::directory_iterator it(out_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    std::error_code fec;
    if (name == kManifestName || (listed.count(name) && it->is_regular_file(fec))) continue;
    foreign.push_back(name);
  }
  if (ec) fail(out_, "cannot list: {}", errno_text(ec.value()));
  if (!foreign.empty()) {
    std::sort(foreign.begin(), foreign.end());
    std::string names;
    for (size_t i = 0; i < foreign.size() && i < 3; ++i) names += (i ? ", " : "") + foreign[i];
    if (foreign.size() > 3) names += fmt::format(" and {} more", foreign.size() - 3);
    fail(out_, "holds files lowbit did not write ({}); --force will not delete them", names);
  }
}

void OutputDir::clean_stale(const OutputDirOptions& opt) {
  const fs::path parent = fs::path(out_).parent_path();
  const std::string base = fs::path(out_).filename().string();
  const std::string tmp_prefix = base + ".tmp.", old_prefix = base + ".old.";
  std::vector<std::string> tmps, olds;
  std::error_code ec;
  for (fs::directory_iterator it(parent.empty() ? fs::path(".") : parent, ec), end;
       !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(tmp_prefix, 0) == 0) tmps.push_back(name);
    if (name.rfind(old_prefix, 0) == 0) olds.push_back(name);
  }
  std::sort(tmps.begin(), tmps.end());
  for (const std::string& name : tmps) {
    const std::string path = (parent / name).string();
    const long pid = pid_of(name, tmp_prefix.size());
    if (path == tmp_ || !is_dir(path)) continue;
    // A live run holds the lock of its temp folder (or, without one, is a live process).
    const std::string lock = (fs::path(path) / kLockName).string();
    bool live = false;
    if (path_exists(lock)) {
      const int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
      live = fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
      if (fd >= 0) ::close(fd);
    } else {
      live = pid_alive(pid);
    }
    if (live) {
      fail(out_, "another lowbit process (pid {}) is writing this output now (its temp folder: {})",
           pid, path);
    }
    const bool deleting = name.size() >= 4 && name.compare(name.size() - 4, 4, ".del") == 0;
    if (!deleting && !adopted_ && opt.adopt && opt.adopt(path)) {
      std::error_code rec;
      fs::rename(path, tmp_, rec);
      if (rec) fail(path, "cannot take over this temp folder: {}", errno_text(rec.value()));
      adopted_ = true;
      continue;
    }
    remove_tree(path);
    note(fmt::format("removed {}, the temp folder of an interrupted run", path));
  }
  for (const std::string& name : olds) {
    const std::string path = (parent / name).string();
    if (pid_alive(pid_of(name, old_prefix.size()))) continue;
    // A run died between moving the old output aside and putting the new one in place.
    if (!path_exists(out_)) {
      std::error_code rec;
      fs::rename(path, out_, rec);
      if (!rec) {
        note(fmt::format("restored {} from {}, left by an interrupted run", out_, path));
        continue;
      }
    }
    remove_tree(path);
    note(fmt::format("removed {}, the previous output an interrupted run replaced", path));
  }
}

void OutputDir::commit(const std::vector<std::string>& drop) {
  std::error_code ec;
  for (const std::string& d : drop) fs::remove(file(d), ec);
  nlohmann::json files = nlohmann::json::array();
  std::vector<std::string> names;
  for (fs::directory_iterator it(tmp_, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name != kLockName && name != kManifestName) names.push_back(name);
  }
  if (ec) fail(tmp_, "cannot list: {}", errno_text(ec.value()));
  std::sort(names.begin(), names.end());
  for (const std::string& n : names) files.push_back(n);
  const nlohmann::json manifest = {
      {"written_by", "lowbit 0.1.0"}, {"command", command_}, {"files", files}};
  write_file_atomic(file(kManifestName), manifest.dump(2) + "\n");
  fs::remove(file(kLockName), ec);  // the descriptor keeps the lock until this object goes
  if (path_exists(out_)) {          // force: swap in the new folder, then drop the old one
    check_replaceable();            // nothing foreign appeared there while this run worked
    const std::string old = out_ + ".old." + std::to_string(::getpid());
    fs::rename(out_, old, ec);
    if (ec) fail(out_, "cannot replace: {}", errno_text(ec.value()));
    fs::rename(tmp_, out_, ec);
    if (ec) {
      std::error_code back;
      fs::rename(old, out_, back);
      fail(out_, "cannot rename {}: {}", tmp_, errno_text(ec.value()));
    }
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp_, out_, ec);
    if (ec) fail(out_, "cannot rename {}: {}", tmp_, errno_text(ec.value()));
  }
  committed_ = true;
  signals::unregister_temp(signal_guard_);
}

}  // namespace lowbit
