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

#include "lowbit/io/json_read.h"
#include "lowbit/io/limits.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"
#include "lowbit/util/memory.h"
#include "lowbit/util/signals.h"

namespace lowbit {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

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

// The header as safetensors states it, read by a SAX handler straight into TensorInfo: no JSON
// tree is built (a 100 MB header would cost gigabytes as one), nesting is bounded, and each entry
// is validated as soon as it closes.
class HeaderReader {
 public:
  using json = nlohmann::json;
  HeaderReader(std::string where, const uint8_t* buffer, uint64_t buffer_size)
      : where_(std::move(where)), buffer_(buffer), buffer_size_(buffer_size) {}

  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  std::map<std::string, size_t> index;              // name -> position in tensors
  std::vector<std::pair<uint64_t, size_t>> ranges;  // (begin, tensor index), non-empty ones
  bool saw_object = false;

  // SAX interface (nlohmann::json::sax_parse).
  bool null() { return scalar(); }
  bool boolean(bool) { return scalar(); }
  bool number_integer(json::number_integer_t v) {
    if (collecting()) {
      if (field_ == Field::kShape) {
        raw_.shape.push_back(v);
      } else {
        raw_.offsets_bad = true;
      }
      return true;
    }
    return scalar();
  }
  bool number_unsigned(json::number_unsigned_t v) {
    if (collecting()) {
      if (field_ == Field::kShape) {
        if (v > static_cast<uint64_t>(kMaxNumel)) fail(where_, "tensor {}: shape too large", name_);
        raw_.shape.push_back(static_cast<int64_t>(v));
      } else {
        raw_.offsets.push_back(v);
      }
      return true;
    }
    return scalar();
  }
  bool number_float(json::number_float_t, const std::string&) {
    if (collecting()) return bad_element();
    return scalar();
  }
  bool string(std::string& v) {
    if (collecting()) return bad_element();
    if (skip_ > 0) return true;
    if (depth_ == 2 && meta_) {
      metadata[meta_key_] = std::move(v);
      return true;
    }
    if (depth_ == 2 && field_ == Field::kDtype) {
      raw_.dtype = std::move(v);
      raw_.has_dtype = true;
      return true;
    }
    return scalar();
  }
  bool binary(json::binary_t&) { return scalar(); }
  bool start_object(std::size_t) { return open(/*object=*/true); }
  bool start_array(std::size_t) { return open(/*object=*/false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string& k) {
    if (skip_ > 0) return true;
    if (depth_ == 1) {
      if (index.count(k) != 0 || (k == "__metadata__" && seen_metadata_)) {
        fail(where_, "invalid safetensors header: duplicate tensor {}", k);
      }
      meta_ = k == "__metadata__";
      seen_metadata_ = seen_metadata_ || meta_;
      name_ = std::move(k);
    } else if (depth_ == 2 && meta_) {
      meta_key_ = std::move(k);
    } else if (depth_ == 2) {
      field_ = k == "dtype"          ? Field::kDtype
               : k == "shape"        ? Field::kShape
               : k == "data_offsets" ? Field::kOffsets
                                     : Field::kOther;
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;  // sax_parse returns false: "not valid JSON"
  }

 private:
  enum class Field { kNone, kDtype, kShape, kOffsets, kOther };
  static constexpr int kMaxDepth = 16;  // a valid header needs 3

  // Raw fields of the entry being read.
  struct Raw {
    bool has_dtype = false, has_shape = false, has_offsets = false;
    bool dtype_bad = false, shape_bad = false, shape_not_int = false, offsets_bad = false;
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<uint64_t> offsets;
  };

  bool collecting() const { return skip_ == 0 && depth_ == 3 && !meta_ && in_list_; }

  bool bad_element() {
    if (field_ == Field::kShape) {
      raw_.shape_not_int = true;
    } else {
      raw_.offsets_bad = true;
    }
    return true;
  }

  void mark_field_bad() {
    if (field_ == Field::kDtype) raw_.dtype_bad = true;
    if (field_ == Field::kShape) raw_.shape_bad = true;
    if (field_ == Field::kOffsets) raw_.offsets_bad = true;
  }

  // A scalar where the header needs something else.
  bool scalar() {
    if (skip_ > 0) return true;
    if (depth_ == 0) fail(where_, "invalid safetensors header: JSON is not an object");
    if (depth_ == 1) not_an_object();
    if (depth_ == 2 && meta_) fail(where_, "__metadata__ value of {} is not a string", meta_key_);
    if (depth_ == 2) mark_field_bad();
    return true;
  }

  [[noreturn]] void not_an_object() const {
    if (meta_) fail(where_, "__metadata__ is not an object");
    fail(where_, "tensor {}: entry is not an object", name_);
  }

  bool open(bool object) {
    ++depth_;
    if (depth_ > kMaxDepth) {
      fail(where_, "invalid safetensors header: JSON nested deeper than {} levels", kMaxDepth);
    }
    if (skip_ > 0) return true;
    if (depth_ == 1) {
      if (!object) fail(where_, "invalid safetensors header: JSON is not an object");
      saw_object = true;
    } else if (depth_ == 2) {
      if (!object) not_an_object();
      if (meta_) return true;
      raw_ = Raw{};
      field_ = Field::kNone;
    } else if (depth_ == 3 && meta_) {
      fail(where_, "__metadata__ value of {} is not a string", meta_key_);
    } else if (depth_ == 3 && !object && (field_ == Field::kShape || field_ == Field::kOffsets)) {
      in_list_ = true;
      if (field_ == Field::kShape) raw_.has_shape = true;
      if (field_ == Field::kOffsets) raw_.has_offsets = true;
    } else {
      // Any other container: a wrong type for a known field, or an unknown field's value.
      if (depth_ == 3) {
        mark_field_bad();
      } else if (in_list_) {
        bad_element();
      }
      skip_ = depth_;
    }
    return true;
  }

  bool close() {
    if (skip_ > 0 && depth_ == skip_) skip_ = 0;
    if (skip_ == 0) {
      if (depth_ == 3) in_list_ = false;
      if (depth_ == 2 && !meta_) finish_entry();
    }
    --depth_;
    return true;
  }

  void finish_entry() {
    Raw& r = raw_;
    const std::string& name = name_;
    TensorInfo t;
    t.name = name;
    t.file = where_;
    if (!r.has_dtype || r.dtype_bad) fail(where_, "tensor {}: missing dtype", name);
    if (!parse_dtype(r.dtype, &t.dtype)) fail(where_, "tensor {}: unknown dtype {}", name, r.dtype);
    if (!r.has_shape || r.shape_bad) fail(where_, "tensor {}: missing shape", name);
    if (r.shape_not_int) fail(where_, "tensor {}: shape entries must be integers", name);
    t.shape = std::move(r.shape);
    const int64_t numel = checked_numel(t.shape);
    if (numel < 0) {
      fail(where_, "tensor {}: shape {} is negative or too large", name, shape_str(t.shape));
    }
    if (!r.has_offsets || r.offsets_bad || r.offsets.size() != 2) {
      fail(where_, "tensor {}: data_offsets must be two non-negative integers", name);
    }
    const uint64_t b = r.offsets[0], e = r.offsets[1];
    if (b > e) fail(where_, "tensor {}: data_offsets begin {} > end {}", name, b, e);
    if (e > buffer_size_) {
      fail(where_, "tensor {}: data_offsets end {} is past the end of the data ({} bytes)", name, e,
           buffer_size_);
    }
    const uint64_t expect = static_cast<uint64_t>(numel) * dtype_size(t.dtype);
    if (e - b != expect) {
      fail(where_, "tensor {}: {} bytes for shape {} of {}, expected {}", name, e - b,
           shape_str(t.shape), dtype_name(t.dtype), expect);
    }
    t.nbytes = static_cast<size_t>(e - b);
    t.data = buffer_ + b;
    index[name] = tensors.size();
    if (t.nbytes > 0) ranges.emplace_back(b, tensors.size());
    tensors.push_back(std::move(t));
  }

  std::string where_;
  const uint8_t* buffer_;
  uint64_t buffer_size_;
  int depth_ = 0;
  int skip_ = 0;  // depth of a container being skipped (0: none)
  bool meta_ = false, seen_metadata_ = false, in_list_ = false;
  Field field_ = Field::kNone;
  std::string name_, meta_key_;
  Raw raw_;
};

std::string sys_error() { return errno_text(errno); }

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
  if (n > kMaxSafetensorsHeaderBytes || n > size - 8) {
    fail(where, "invalid safetensors header length {} (file is {} bytes)", n, size);
  }
  // Parsed entries take a few times the header's size (names, shapes, the index).
  require_memory(where, fmt::format("its {}-byte safetensors header", n), n * 8);
  const char* hbegin = reinterpret_cast<const char*>(file->data() + 8);
  // nlohmann's lexer takes a NUL byte for the end of the input: "{...}\0\0" would pass. The
  // reference loader refuses such a header (padding must be spaces), and so does lowbit.
  if (const void* nul = std::memchr(hbegin, 0, n); nul != nullptr) {
    fail(where, "invalid safetensors header: a NUL byte at offset {} (padding must be spaces)",
         8 + (static_cast<const char*>(nul) - hbegin));
  }
  HeaderReader reader(where, file->data() + 8 + n, size - 8 - n);
  if (!json::sax_parse(hbegin, hbegin + n, &reader)) {
    fail(where, "invalid safetensors header: not valid JSON");
  }
  if (!reader.saw_object) fail(where, "invalid safetensors header: JSON is not an object");

  auto st = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
  st->tensors_ = std::move(reader.tensors);
  st->metadata_ = std::move(reader.metadata);
  std::vector<std::pair<uint64_t, size_t>>& ranges = reader.ranges;
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    const TensorInfo& prev = st->tensors_[ranges[i - 1].second];
    const uint64_t prev_end = ranges[i - 1].first + prev.nbytes;
    if (ranges[i].first < prev_end) {
      fail(where, "tensors {} and {} have overlapping data ranges", prev.name,
           st->tensors_[ranges[i].second].name);
    }
  }
  st->index_ = std::move(reader.index);
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
  if (path_exists(index_path)) {
    const json idx = read_json_file(index_path, kMaxIndexBytes, "safetensors index");
    if (!idx.is_object()) fail(index_path, "not a JSON object");
    auto wm = idx.find("weight_map");
    if (wm == idx.end() || !wm->is_object()) fail(index_path, "missing weight_map object");
    std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
    for (const auto& [name, file] : wm->items()) {
      if (!file.is_string()) fail(index_path, "weight_map entry {} is not a string", name);
      const std::string fname = file.get<std::string>();
      // A NUL ("\u0000" in JSON) would cut the name short where the file system reads it.
      if (fname.empty() || fname.find('/') != std::string::npos ||
          fname.find('\0') != std::string::npos || fname == "." || fname == "..") {
        fail(index_path, "weight_map entry {}: invalid shard file name '{}'", name,
             fname.find('\0') != std::string::npos ? json(fname).dump() : fname);
      }
      auto it = shards.find(fname);
      if (it == shards.end()) {
        const std::string shard_path = (fs::path(dir) / fname).string();
        if (!path_exists(shard_path)) {
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
  } else if (path_exists(single_path)) {
    s.files_.push_back(SafetensorsFile::open(single_path));
    for (const auto& t : s.files_[0]->tensors()) s.by_name_[t.name] = &t;
  } else {
    fail(dir, "no model.safetensors or model.safetensors.index.json");
  }
  return s;
}

TensorStore TensorStore::from_tensors(const std::string& where, std::vector<TensorInfo> tensors,
                                      std::shared_ptr<const void> owner) {
  TensorStore s;
  s.dir_ = where;
  s.owner_ = std::move(owner);
  s.own_tensors_ = std::make_shared<std::vector<TensorInfo>>(std::move(tensors));
  for (const TensorInfo& t : *s.own_tensors_) {
    if (!s.by_name_.emplace(t.name, &t).second) fail(where, "tensor {} is defined twice", t.name);
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
  signal_guard_ = signals::register_temp(tmp_path_);
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
  signals::unregister_temp(signal_guard_);
}

void SafetensorsWriter::write_raw(const void* bytes, size_t n) {
  if (const int e = write_all(fd_, bytes, n); e != 0)
    fail(path_, "write failed: {}", errno_text(e));
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

}  // namespace lowbit
