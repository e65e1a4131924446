#include "lowbit/io/onnx_model.h"

#include <cstring>
#include <filesystem>
#include <limits>

#include "lowbit/io/output_dir.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace fs = std::filesystem;

bool onnx_dtype(int onnx_type, DType* out) {
  using TP = onnx::TensorProto;
  switch (onnx_type) {
    case TP::FLOAT:
      *out = DType::F32;
      return true;
    case TP::FLOAT16:
      *out = DType::F16;
      return true;
    case TP::BFLOAT16:
      *out = DType::BF16;
      return true;
    case TP::DOUBLE:
      *out = DType::F64;
      return true;
    case TP::INT64:
      *out = DType::I64;
      return true;
    case TP::INT32:
      *out = DType::I32;
      return true;
    case TP::INT16:
      *out = DType::I16;
      return true;
    case TP::INT8:
      *out = DType::I8;
      return true;
    case TP::UINT8:
      *out = DType::U8;
      return true;
    case TP::BOOL:
      *out = DType::BOOL;
      return true;
    default:
      return false;
  }
}

int onnx_type_of(DType t) {
  using TP = onnx::TensorProto;
  switch (t) {
    case DType::F32:
      return TP::FLOAT;
    case DType::F16:
      return TP::FLOAT16;
    case DType::BF16:
      return TP::BFLOAT16;
    case DType::F64:
      return TP::DOUBLE;
    case DType::I64:
      return TP::INT64;
    case DType::I32:
      return TP::INT32;
    case DType::I16:
      return TP::INT16;
    case DType::I8:
      return TP::INT8;
    case DType::U8:
      return TP::UINT8;
    case DType::BOOL:
      return TP::BOOL;
    default:
      return TP::UNDEFINED;
  }
}

void set_onnx_tensor(onnx::TensorProto* t, const std::string& name, DType dtype,
                     const std::vector<int64_t>& dims, const void* data, size_t nbytes) {
  t->Clear();
  t->set_name(name);
  t->set_data_type(onnx_type_of(dtype));
  for (int64_t d : dims) t->add_dims(d);
  t->set_raw_data(data, nbytes);
}

std::shared_ptr<OnnxModel> OnnxModel::open(const std::string& path) {
  const std::string bytes = read_file(path, kMaxOnnxBytes, "ONNX model");
  return from_bytes(path, bytes, true);
}

std::shared_ptr<OnnxModel> OnnxModel::from_bytes(const std::string& path, const std::string& bytes,
                                                 bool allow_external) {
  auto m = std::shared_ptr<OnnxModel>(new OnnxModel());
  m->path_ = path;
  if (bytes.empty()) fail(path, "empty file (not an ONNX model)");
  if (!m->proto_.ParseFromString(bytes)) {
    fail(path, "not an ONNX model (the protobuf does not parse: truncated or another format)");
  }
  if (!m->proto_.has_graph()) fail(path, "not an ONNX model (no graph)");
  m->index(allow_external);
  return m;
}

const TensorInfo* OnnxModel::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

int64_t OnnxModel::opset(const std::string& domain) const {
  for (const auto& o : proto_.opset_import()) {
    if (o.domain() == domain || (domain.empty() && o.domain() == "ai.onnx")) return o.version();
  }
  return 0;
}

void OnnxModel::index(bool allow_external) {
  const fs::path dir = fs::path(path_).parent_path().empty() ? fs::path(".")
                                                             : fs::path(path_).parent_path();
  std::map<std::string, std::shared_ptr<MappedFile>> files;
  for (const onnx::TensorProto& t : proto_.graph().initializer()) {
    const std::string& name = t.name();
    if (name.empty()) fail(path_, "an initializer has no name");
    if (by_name_.count(name) != 0) fail(path_, "initializer {} is defined twice", name);
    DType dtype;
    if (!onnx_dtype(t.data_type(), &dtype)) continue;  // kept in the graph, not read
    TensorInfo info;
    info.name = name;
    info.dtype = dtype;
    info.file = path_;
    const size_t esize = dtype_size(dtype);
    uint64_t numel = 1;
    for (int64_t d : t.dims()) {
      if (d < 0) fail(path_, "initializer {} has a negative dimension {}", name, d);
      if (d != 0 && numel > (uint64_t{1} << 56) / static_cast<uint64_t>(d))
        fail(path_, "initializer {} is impossibly large", name);
      numel *= static_cast<uint64_t>(d);
      info.shape.push_back(d);
    }
    const uint64_t want = numel * esize;
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
      if (!allow_external) fail(path_, "initializer {} uses external data (not allowed here)", name);
      std::string location;
      uint64_t offset = 0, length = std::numeric_limits<uint64_t>::max();
      for (const auto& kv : t.external_data()) {
        auto number = [&](const std::string& v) {
          if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
            fail(path_, "initializer {}: external data {} '{}' is not a number", name, kv.key(), v);
          return static_cast<uint64_t>(std::stoull(v));
        };
        if (kv.key() == "location") location = kv.value();
        if (kv.key() == "offset") offset = number(kv.value());
        if (kv.key() == "length") length = number(kv.value());
      }
      const fs::path loc(location);
      bool bad = location.empty() || loc.is_absolute() ||
                 location.find('\0') != std::string::npos;
      for (const auto& part : loc) bad = bad || part == "..";
      if (bad) {
        fail(path_, "initializer {}: external data location '{}' is not a file inside {}", name,
             location, dir.string());
      }
      const std::string file = (dir / loc).string();
      if (!path_within(file, dir.string())) {
        fail(path_, "initializer {}: external data location '{}' leaves the model's folder", name,
             location);
      }
      auto it = files.find(file);
      if (it == files.end()) {
        uint64_t size = 0;
        const int fd = open_regular(file, &size);  // refuses FIFOs and devices
        ::close(fd);
        it = files.emplace(file, MappedFile::open(file)).first;
        external_.push_back(it->second);
      }
      const MappedFile& f = *it->second;
      if (length == std::numeric_limits<uint64_t>::max()) length = want;
      if (offset > f.size() || length > f.size() - offset) {
        fail(path_, "initializer {}: external data [{}, +{}) lies outside {} ({} bytes)", name,
             offset, length, file, f.size());
      }
      if (length != want) {
        fail(path_, "initializer {}: external data holds {} bytes, its shape needs {}", name,
             length, want);
      }
      info.data = f.data() + offset;
      info.nbytes = static_cast<size_t>(length);
      info.file = file;
    } else if (t.has_raw_data()) {
      if (t.raw_data().size() != want) {
        fail(path_, "initializer {} holds {} bytes, its shape [{}] needs {}", name,
             t.raw_data().size(), fmt::join(info.shape, ","), want);
      }
      info.data = reinterpret_cast<const uint8_t*>(t.raw_data().data());
      info.nbytes = static_cast<size_t>(want);
    } else {
      // Typed fields: converted to the raw little-endian layout once.
      auto buf = std::make_shared<std::vector<uint8_t>>();
      auto need = [&](int64_t have) {
        if (static_cast<uint64_t>(have) != numel)
          fail(path_, "initializer {} holds {} values, its shape [{}] needs {}", name, have,
               fmt::join(info.shape, ","), numel);
        buf->resize(static_cast<size_t>(want));
      };
      if (dtype == DType::F32) {
        need(t.float_data_size());
        if (numel) std::memcpy(buf->data(), t.float_data().data(), buf->size());
      } else if (dtype == DType::I64) {
        need(t.int64_data_size());
        if (numel) std::memcpy(buf->data(), t.int64_data().data(), buf->size());
      } else if (dtype == DType::F64) {
        need(t.double_data_size());
        if (numel) std::memcpy(buf->data(), t.double_data().data(), buf->size());
      } else {  // int32_data holds one element per entry (f16/bf16 as their bit patterns)
        need(t.int32_data_size());
        for (uint64_t i = 0; i < numel; ++i) {
          const int32_t v = t.int32_data(static_cast<int>(i));
          std::memcpy(buf->data() + i * esize, &v, esize);  // little-endian low bytes
        }
      }
      info.data = buf->data();
      info.nbytes = buf->size();
      owned_.push_back(buf);
    }
    by_name_[name] = tensors_.size();
    tensors_.push_back(std::move(info));
  }
}

void write_onnx(const std::string& path, const onnx::ModelProto& model) {
  const size_t n = model.ByteSizeLong();
  if (n > static_cast<size_t>(std::numeric_limits<int>::max())) {
    fail(path, "the model is {} bytes, over protobuf's 2 GiB limit for one file", n);
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) fail(path, "cannot serialize the ONNX model");
  write_file_atomic(path, bytes);
}

}  // namespace lowbit
