#include "lowbit/io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "lowbit/util/error.h"

namespace lowbit {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100u << 20;  // 100 MB, as the reference implementation
constexpr int64_t kMaxNumel = int64_t{1} << 48;

// numel of a shape, or -1 when a dimension is negative or the product overflows kMaxNumel.
int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > kMaxNumel / d) return -1;
    n *= d;
  }
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

// Parses the JSON header; duplicate top-level names are an error (nlohmann keeps the last).
json parse_header(const std::string& where, const char* begin, const char* end) {
  std::set<std::string> keys;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && parsed.is_string()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json h = json::parse(begin, end, cb, /*allow_exceptions=*/false);
  if (h.is_discarded()) fail(where, "invalid safetensors header: not valid JSON");
  if (!h.is_object()) fail(where, "invalid safetensors header: JSON is not an object");
  if (!duplicate.empty()) fail(where, "invalid safetensors header: duplicate tensor {}", duplicate);
  return h;
}

TensorInfo parse_entry(const std::string& where, const std::string& name, const json& v,
                       uint64_t buffer_size, const uint8_t* buffer, uint64_t* begin_out) {
  if (!v.is_object()) fail(where, "tensor {}: entry is not an object", name);
  TensorInfo t;
  t.name = name;
  t.file = where;
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string()) fail(where, "tensor {}: missing dtype", name);
  if (!parse_dtype(dt->get<std::string>(), &t.dtype)) {
    fail(where, "tensor {}: unknown dtype {}", name, dt->get<std::string>());
  }
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array()) fail(where, "tensor {}: missing shape", name);
  for (const auto& d : *sh) {
    if (!d.is_number_integer()) fail(where, "tensor {}: shape entries must be integers", name);
    if (d.is_number_unsigned()) {
      uint64_t u = d.get<uint64_t>();
      if (u > static_cast<uint64_t>(kMaxNumel)) fail(where, "tensor {}: shape too large", name);
      t.shape.push_back(static_cast<int64_t>(u));
    } else {
      t.shape.push_back(d.get<int64_t>());
    }
  }
  const int64_t numel = checked_numel(t.shape);
  if (numel < 0) {
    fail(where, "tensor {}: shape {} is negative or too large", name, shape_str(t.shape));
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    fail(where, "tensor {}: data_offsets must be two non-negative integers", name);
  }
  const uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
  if (b > e) fail(where, "tensor {}: data_offsets begin {} > end {}", name, b, e);
  if (e > buffer_size) {
    fail(where, "tensor {}: data_offsets end {} is past the end of the data ({} bytes)", name, e,
         buffer_size);
  }
  const uint64_t expect = static_cast<uint64_t>(numel) * dtype_size(t.dtype);
  if (e - b != expect) {
    fail(where, "tensor {}: {} bytes for shape {} of {}, expected {}", name, e - b,
         shape_str(t.shape), dtype_name(t.dtype), expect);
  }
  t.nbytes = static_cast<size_t>(e - b);
  t.data = buffer + b;
  *begin_out = b;
  return t;
}

std::string sys_error() { return std::strerror(errno); }

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  return parse(MappedFile::open(path));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::from_memory(const std::string& name,
                                                              std::vector<uint8_t> bytes) {
  return parse(MappedFile::from_memory(name, std::move(bytes)));
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(std::shared_ptr<MappedFile> file) {
  const std::string& where = file->path();
  const uint64_t size = file->size();
  if (size < 8) fail(where, "not a safetensors file: {} bytes, too small for a header", size);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | file->data()[i];
  if (n > kMaxHeaderBytes || n > size - 8) {
    fail(where, "invalid safetensors header length {} (file is {} bytes)", n, size);
  }
  const char* hbegin = reinterpret_cast<const char*>(file->data() + 8);
  json h = parse_header(where, hbegin, hbegin + n);

  auto st = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  const uint8_t* buffer = file->data() + 8 + n;
  const uint64_t buffer_size = size - 8 - n;
  std::vector<std::pair<uint64_t, size_t>> ranges;  // (begin, tensor index)
  for (const auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) fail(where, "__metadata__ is not an object");
      for (const auto& [k, mv] : v.items()) {
        if (!mv.is_string()) fail(where, "__metadata__ value of {} is not a string", k);
        st->metadata_[k] = mv.get<std::string>();
      }
      continue;
    }
    uint64_t begin = 0;
    st->tensors_.push_back(parse_entry(where, name, v, buffer_size, buffer, &begin));
    if (st->tensors_.back().nbytes > 0) ranges.emplace_back(begin, st->tensors_.size() - 1);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    const TensorInfo& prev = st->tensors_[ranges[i - 1].second];
    const uint64_t prev_end = ranges[i - 1].first + prev.nbytes;
    if (ranges[i].first < prev_end) {
      fail(where, "tensors {} and {} have overlapping data ranges", prev.name,
           st->tensors_[ranges[i].second].name);
    }
  }
  for (size_t i = 0; i < st->tensors_.size(); ++i) st->index_[st->tensors_[i].name] = i;
  st->file_ = std::move(file);
  return st;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------------------------------------
// TensorStore

TensorStore TensorStore::open_dir(const std::string& dir) {
  TensorStore s;
  s.dir_ = dir;
  const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
  const std::string single_path = (fs::path(dir) / "model.safetensors").string();
  if (fs::exists(index_path)) {
    auto mf = MappedFile::open(index_path);
    const char* p = reinterpret_cast<const char*>(mf->data());
    json idx = json::parse(p, p + mf->size(), nullptr, /*allow_exceptions=*/false);
    if (idx.is_discarded() || !idx.is_object()) fail(index_path, "not a valid JSON object");
    auto wm = idx.find("weight_map");
    if (wm == idx.end() || !wm->is_object()) fail(index_path, "missing weight_map object");
    std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string()) fail(index_path, "weight_map entry {} is not a string", name);
      const std::string fname = file.get<std::string>();
      if (fname.empty() || fname.find('/') != std::string::npos || fname == "." || fname == "..") {
        fail(index_path, "weight_map entry {}: invalid shard file name '{}'", name, fname);
      }
      auto it = shards.find(fname);
      if (it == shards.end()) {
        const std::string shard_path = (fs::path(dir) / fname).string();
        if (!fs::exists(shard_path)) {
          fail(index_path, "shard {} (for tensor {}) does not exist", fname, name);
        }
        it = shards.emplace(fname, SafetensorsFile::open(shard_path)).first;
        s.files_.push_back(it->second);
      }
      const TensorInfo* t = it->second->find(name);
      if (t == nullptr) {
        fail(it->second->path(), "tensor {} is listed in model.safetensors.index.json but absent",
             name);
      }
      s.by_name_[name] = t;
    }
    if (s.by_name_.empty()) fail(index_path, "weight_map is empty");
  } else if (fs::exists(single_path)) {
    s.files_.push_back(SafetensorsFile::open(single_path));
    for (const auto& t : s.files_[0]->tensors()) s.by_name_[t.name] = &t;
  } else {
    fail(dir, "no model.safetensors or model.safetensors.index.json");
  }
  return s;
}

const TensorInfo* TensorStore::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

const TensorInfo& TensorStore::get(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (t == nullptr) fail(dir_, "missing tensor {}", name);
  return *t;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [name, t] : by_name_) out.push_back(name);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

size_t TensorDecl::nbytes() const {
  const int64_t n = checked_numel(shape);
  if (n < 0) fail(name, "shape {} is negative or too large", shape_str(shape));
  return static_cast<size_t>(n) * dtype_size(dtype);
}

SafetensorsWriter::SafetensorsWriter(std::string path, std::vector<TensorDecl> decls,
                                     const std::map<std::string, std::string>& metadata)
    : path_(std::move(path)) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::set<std::string> seen;
  for (const auto& d : decls) {
    if (d.name == "__metadata__" || !seen.insert(d.name).second) {
      fail(path_, "cannot write tensor named {} (duplicate or reserved)", d.name);
    }
    const size_t nb = d.nbytes();
    h[d.name] = {{"dtype", dtype_name(d.dtype)},
                 {"shape", d.shape},
                 {"data_offsets", {data_bytes_, data_bytes_ + nb}}};
    data_bytes_ += nb;
  }
  std::string header = h.dump();
  header.resize((header.size() + 7) / 8 * 8, ' ');  // data buffer starts 8-byte aligned
  header_bytes_ = 8 + header.size();

  tmp_path_ = fmt::format("{}.tmp.{}", path_, ::getpid());
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "cannot create {}: {}", tmp_path_, sys_error());
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{header.size()} >> (8 * i));
  try {
    write_raw(len, 8);
    write_raw(header.data(), header.size());
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    ::unlink(tmp_path_.c_str());
    throw;
  }
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void SafetensorsWriter::write_raw(const void* bytes, size_t n) {
  const char* p = static_cast<const char*>(bytes);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail(path_, "write failed: {}", sys_error());
    }
    if (w == 0) fail(path_, "write failed: no progress");
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void SafetensorsWriter::write(const void* bytes, size_t n) {
  if (committed_ || fd_ < 0) fail(path_, "write after commit");
  if (n > data_bytes_ - written_) {
    fail(path_, "more tensor bytes written than declared ({} > {})", written_ + n, data_bytes_);
  }
  write_raw(bytes, n);
  written_ += n;
}

void SafetensorsWriter::commit() {
  if (committed_) return;
  if (written_ != data_bytes_) {
    fail(path_, "only {} of {} declared tensor bytes written", written_, data_bytes_);
  }
  if (::fsync(fd_) != 0) fail(path_, "fsync failed: {}", sys_error());
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail(path_, "close failed: {}", sys_error());
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    fail(path_, "cannot rename {}: {}", tmp_path_, sys_error());
  }
  committed_ = true;
}

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorDecl> decls;
  for (const auto& t : tensors) {
    decls.push_back({t.name, t.dtype, t.shape});
    if (decls.back().nbytes() != t.nbytes) {
      fail(path, "tensor {}: {} bytes given for shape {} of {}", t.name, t.nbytes,
           shape_str(t.shape), dtype_name(t.dtype));
    }
  }
  SafetensorsWriter w(path, std::move(decls), metadata);
  for (const auto& t : tensors) w.write(t.data, t.nbytes);
  w.commit();
}

std::vector<std::string> write_sharded_safetensors(
    const std::string& dir, const std::vector<TensorDecl>& decls, const TensorProducer& produce,
    size_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  // Greedy split in order, as Hugging Face's save_pretrained does; a tensor larger than the
  // limit gets a shard of its own.
  std::vector<std::vector<size_t>> shards(1);
  size_t cur = 0, total = 0;
  for (size_t i = 0; i < decls.size(); ++i) {
    const size_t nb = decls[i].nbytes();
    if (!shards.back().empty() && cur + nb > max_shard_bytes) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += nb;
    total += nb;
  }
  const size_t n = shards.size();
  std::vector<std::string> names;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < n; ++s) {
    const std::string fname =
        n == 1 ? "model.safetensors" : fmt::format("model-{:05}-of-{:05}.safetensors", s + 1, n);
    std::vector<TensorDecl> part;
    for (size_t i : shards[s]) {
      part.push_back(decls[i]);
      weight_map[decls[i].name] = fname;
    }
    SafetensorsWriter w((fs::path(dir) / fname).string(), std::move(part), metadata);
    for (size_t i : shards[s]) produce(i, w);
    w.commit();
    names.push_back(fname);
  }
  if (n > 1) {
    nlohmann::ordered_json idx;
    idx["metadata"] = {{"total_size", total}};
    idx["weight_map"] = weight_map;
    write_file_atomic((fs::path(dir) / "model.safetensors.index.json").string(),
                      idx.dump(2) + "\n");
    names.push_back("model.safetensors.index.json");
  }
  return names;
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "cannot create {}: {}", tmp, sys_error());
  const char* p = content.data();
  size_t n = content.size();
  bool ok = true;
  while (n > 0 && ok) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) {
      p += w;
      n -= static_cast<size_t>(w);
    }
  }
  const std::string err = ok ? "" : sys_error();
  ok = ok && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string e = err.empty() ? sys_error() : err;
    ::unlink(tmp.c_str());
    fail(path, "cannot write: {}", e);
  }
}

}  // namespace lowbit
