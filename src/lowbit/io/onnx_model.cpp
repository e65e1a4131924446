#include "lowbit/io/onnx_model.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <limits>

#include "lowbit/io/output_dir.h"
#include "lowbit/io/protobuf_wire.h"
#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit {

namespace fs = std::filesystem;

namespace {

// onnx.proto field numbers.
enum : uint32_t {
  kModelIrVersion = 1,
  kModelGraph = 7,
  kModelOpset = 8,
  kOpsetDomain = 1,
  kOpsetVersion = 2,
  kGraphNode = 1,
  kGraphInitializer = 5,
  kNodeInput = 1,
  kNodeOutput = 2,
  kNodeName = 3,
  kNodeOpType = 4,
  kNodeAttribute = 5,
  kNodeDomain = 7,
  kAttrName = 1,
  kAttrF = 2,
  kAttrI = 3,
  kAttrS = 4,
  kAttrInts = 8,
  kAttrType = 20,
  kTensorDims = 1,
  kTensorDataType = 2,
  kTensorFloatData = 4,
  kTensorInt32Data = 5,
  kTensorInt64Data = 7,
  kTensorName = 8,
  kTensorRawData = 9,
  kTensorDoubleData = 10,
  kTensorExternalData = 13,
  kTensorDataLocation = 14,
  kEntryKey = 1,
  kEntryValue = 2,
};

enum OnnxType : int {
  kFloat = 1,
  kUint8 = 2,
  kInt8 = 3,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kBool = 9,
  kFloat16 = 10,
  kDouble = 11,
  kBfloat16 = 16,
};

std::string str(std::string_view v) { return std::string(v); }

OnnxNode read_node(std::string_view msg, const std::string& where) {
  OnnxNode n;
  pb::Reader r(msg, where, "a node");
  pb::Field f;
  while (r.next(&f)) {
    if (f.wire != pb::kLen) continue;
    switch (f.number) {
      case kNodeInput:
        n.inputs.push_back(str(f.bytes));
        break;
      case kNodeOutput:
        n.outputs.push_back(str(f.bytes));
        break;
      case kNodeName:
        n.name = str(f.bytes);
        break;
      case kNodeOpType:
        n.op_type = str(f.bytes);
        break;
      case kNodeDomain:
        n.domain = str(f.bytes);
        break;
      case kNodeAttribute: {
        OnnxAttribute a;
        pb::Reader ar(f.bytes, where, "a node attribute");
        pb::Field af;
        while (ar.next(&af)) {
          if (af.number == kAttrName && af.wire == pb::kLen) a.name = str(af.bytes);
          if (af.number == kAttrType && af.wire == pb::kVarint) a.type = static_cast<int>(af.value);
          if (af.number == kAttrI && af.wire == pb::kVarint) a.i = static_cast<int64_t>(af.value);
          if (af.number == kAttrF && af.wire == pb::kFixed32) {
            const auto bits = static_cast<uint32_t>(af.value);
            std::memcpy(&a.f, &bits, sizeof(float));
          }
          if (af.number == kAttrS && af.wire == pb::kLen) a.s = str(af.bytes);
          if (af.number == kAttrInts && (af.wire == pb::kLen || af.wire == pb::kVarint)) {
            if (a.ints.size() > (size_t{1} << 24)) ar.bad();
            ar.packed_varints(af, [&](uint64_t v) { a.ints.push_back(static_cast<int64_t>(v)); });
          }
        }
        n.attributes.push_back(std::move(a));
        break;
      }
      default:
        break;
    }
  }
  return n;
}

}  // namespace

const OnnxAttribute* OnnxNode::attribute(const std::string& n) const {
  for (const OnnxAttribute& a : attributes) {
    if (a.name == n) return &a;
  }
  return nullptr;
}

int64_t OnnxNode::int_attribute(const std::string& n, int64_t dflt) const {
  const OnnxAttribute* a = attribute(n);
  return a == nullptr ? dflt : a->i;
}

float OnnxNode::float_attribute(const std::string& n, float dflt) const {
  const OnnxAttribute* a = attribute(n);
  return a == nullptr ? dflt : a->f;
}

bool onnx_dtype(int onnx_type, DType* out) {
  switch (onnx_type) {
    case kFloat:
      *out = DType::F32;
      return true;
    case kFloat16:
      *out = DType::F16;
      return true;
    case kBfloat16:
      *out = DType::BF16;
      return true;
    case kDouble:
      *out = DType::F64;
      return true;
    case kInt64:
      *out = DType::I64;
      return true;
    case kInt32:
      *out = DType::I32;
      return true;
    case kInt16:
      *out = DType::I16;
      return true;
    case kInt8:
      *out = DType::I8;
      return true;
    case kUint8:
      *out = DType::U8;
      return true;
    case kBool:
      *out = DType::BOOL;
      return true;
    default:
      return false;
  }
}

int onnx_type_of(DType t) {
  switch (t) {
    case DType::F32:
      return kFloat;
    case DType::F16:
      return kFloat16;
    case DType::BF16:
      return kBfloat16;
    case DType::F64:
      return kDouble;
    case DType::I64:
      return kInt64;
    case DType::I32:
      return kInt32;
    case DType::I16:
      return kInt16;
    case DType::I8:
      return kInt8;
    case DType::U8:
      return kUint8;
    case DType::BOOL:
      return kBool;
    default:
      return 0;
  }
}

std::shared_ptr<OnnxModel> OnnxModel::open(const std::string& path) {
  return from_bytes(path, read_file(path, kMaxOnnxBytes, "ONNX model"), true);
}

std::shared_ptr<OnnxModel> OnnxModel::from_bytes(const std::string& path, std::string bytes,
                                                 bool allow_external) {
  auto m = std::shared_ptr<OnnxModel>(new OnnxModel());
  m->path_ = path;
  if (bytes.empty()) fail(path, "empty file (not an ONNX model)");
  m->bytes_ = std::move(bytes);
  m->parse(allow_external);
  return m;
}

const TensorInfo* OnnxModel::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

int64_t OnnxModel::opset(const std::string& domain) const {
  for (const OnnxOpset& o : opsets_) {
    if (o.domain == domain || (domain.empty() && o.domain == "ai.onnx")) return o.version;
  }
  return 0;
}

void OnnxModel::parse(bool allow_external) {
  pb::Reader r(bytes_, path_, "the file (not an ONNX model: truncated or another format?)");
  pb::Field f;
  std::string_view graph;
  bool have_graph = false;
  while (r.next(&f)) {
    if (f.number == kModelIrVersion && f.wire == pb::kVarint) {
      ir_version_ = static_cast<int64_t>(f.value);
    } else if (f.number == kModelOpset && f.wire == pb::kLen) {
      OnnxOpset o;
      pb::Reader orr(f.bytes, path_, "an opset_import");
      pb::Field of;
      while (orr.next(&of)) {
        if (of.number == kOpsetDomain && of.wire == pb::kLen) o.domain = str(of.bytes);
        if (of.number == kOpsetVersion && of.wire == pb::kVarint)
          o.version = static_cast<int64_t>(of.value);
      }
      opsets_.push_back(o);
    } else if (f.number == kModelGraph) {
      if (f.wire != pb::kLen) r.bad();
      if (have_graph) fail(path_, "not an ONNX model this tool reads (the graph is given twice)");
      have_graph = true;
      graph = f.bytes;
    }
  }
  if (!have_graph || ir_version_ <= 0)
    fail(path_, "not an ONNX model (no {})", have_graph ? "ir_version" : "graph");
  pb::Reader gr(graph, path_, "the graph");
  while (gr.next(&f)) {
    if (f.wire != pb::kLen) continue;
    if (f.number == kGraphNode) nodes_.push_back(read_node(f.bytes, path_));
    if (f.number == kGraphInitializer) read_initializer(f.bytes, allow_external);
  }
}

void OnnxModel::read_initializer(std::string_view msg, bool allow_external) {
  const fs::path dir =
      fs::path(path_).parent_path().empty() ? fs::path(".") : fs::path(path_).parent_path();
  pb::Reader r(msg, path_, "an initializer");
  pb::Field f;
  std::string name, location;
  std::vector<int64_t> dims;
  int data_type = 0;
  bool external = false, have_raw = false;
  std::string_view raw;
  std::vector<pb::Field> typed;  // float/int32/int64/double data fields, in order
  uint64_t offset = 0, length = std::numeric_limits<uint64_t>::max();
  while (r.next(&f)) {
    // A field of the wrong wire type is not that field (protobuf keeps it as an unknown field).
    const bool is_len = f.wire == pb::kLen, is_varint = f.wire == pb::kVarint;
    switch (f.number) {
      case kTensorDims:
        if (!is_len && !is_varint) break;
        r.packed_varints(f, [&](uint64_t v) {
          if (dims.size() > 64) r.bad();
          dims.push_back(static_cast<int64_t>(v));
        });
        break;
      case kTensorDataType:
        if (is_varint) data_type = static_cast<int>(f.value);
        break;
      case kTensorName:
        if (is_len) name = str(f.bytes);
        break;
      case kTensorRawData:
        if (!is_len) break;
        have_raw = true;
        raw = f.bytes;
        break;
      case kTensorDataLocation:
        if (is_varint) external = f.value == 1;
        break;
      case kTensorFloatData:  // packed, or one fixed32 per value
        if (is_len || f.wire == pb::kFixed32) typed.push_back(f);
        break;
      case kTensorDoubleData:
        if (is_len || f.wire == pb::kFixed64) typed.push_back(f);
        break;
      case kTensorInt32Data:
      case kTensorInt64Data:
        if (is_len || is_varint) typed.push_back(f);
        break;
      case kTensorExternalData: {
        if (!is_len) break;
        std::string key, value;
        pb::Reader er(f.bytes, path_, "an external_data entry");
        pb::Field ef;
        while (er.next(&ef)) {
          if (ef.number == kEntryKey && ef.wire == pb::kLen) key = str(ef.bytes);
          if (ef.number == kEntryValue && ef.wire == pb::kLen) value = str(ef.bytes);
        }
        auto number = [&](const std::string& v) {
          if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
            fail(path_, "initializer {}: external data {} '{}' is not a number", name, key, v);
          return static_cast<uint64_t>(std::stoull(v));
        };
        if (key == "location") location = value;
        if (key == "offset") offset = number(value);
        if (key == "length") length = number(value);
        break;
      }
      default:
        break;
    }
  }
  if (name.empty()) fail(path_, "an initializer has no name");
  if (!all_initializers_.insert(name).second) fail(path_, "initializer {} is defined twice", name);
  DType dtype;
  if (!onnx_dtype(data_type, &dtype)) return;  // kept in the graph, not read
  TensorInfo info;
  info.name = name;
  info.dtype = dtype;
  info.file = path_;
  const size_t esize = dtype_size(dtype);
  uint64_t numel = 1;
  for (int64_t d : dims) {
    if (d < 0) fail(path_, "initializer {} has a negative dimension {}", name, d);
    if (d != 0 && numel > (uint64_t{1} << 56) / static_cast<uint64_t>(d))
      fail(path_, "initializer {} is impossibly large", name);
    numel *= static_cast<uint64_t>(d);
  }
  info.shape = dims;
  const uint64_t want = numel * esize;
  if (external) {
    if (!allow_external) fail(path_, "initializer {} uses external data (not allowed here)", name);
    const fs::path loc(location);
    bool bad = location.empty() || loc.is_absolute() || location.find('\0') != std::string::npos;
    for (const auto& part : loc) bad = bad || part == "..";
    if (bad || !path_within((dir / loc).string(), dir.string())) {
      fail(path_, "initializer {}: external data location '{}' is not a file inside {}", name,
           location, dir.string());
    }
    const std::string file = (dir / loc).string();
    auto it = external_.find(file);
    if (it == external_.end()) {
      uint64_t size = 0;
      const int fd = open_regular(file, &size);  // refuses FIFOs and devices
      ::close(fd);
      it = external_.emplace(file, MappedFile::open(file)).first;
    }
    const MappedFile& mf = *it->second;
    if (length == std::numeric_limits<uint64_t>::max()) length = want;
    if (offset > mf.size() || length > mf.size() - offset) {
      fail(path_, "initializer {}: external data [{}, +{}) lies outside {} ({} bytes)", name,
           offset, length, file, mf.size());
    }
    if (length != want) {
      fail(path_, "initializer {}: external data holds {} bytes, its shape needs {}", name, length,
           want);
    }
    info.data = mf.data() + offset;
    info.nbytes = static_cast<size_t>(length);
    info.file = file;
  } else if (have_raw) {
    if (raw.size() != want) {
      fail(path_, "initializer {} holds {} bytes, its shape [{}] needs {}", name, raw.size(),
           fmt::join(dims, ","), want);
    }
    info.data = reinterpret_cast<const uint8_t*>(raw.data());
    info.nbytes = static_cast<size_t>(want);
  } else {
    // Typed fields, converted to the raw little-endian layout once. float_data holds f32,
    // double_data f64, int64_data i64, int32_data one entry per element of the smaller types.
    if (want > (uint64_t{1} << 31)) fail(path_, "initializer {} is too large for typed data", name);
    const uint32_t field = dtype == DType::F32   ? kTensorFloatData
                           : dtype == DType::F64 ? kTensorDoubleData
                           : dtype == DType::I64 ? kTensorInt64Data
                                                 : kTensorInt32Data;
    // At most this many values are present (a packed varint takes at least one byte): a shape
    // asking for more is refused before anything is allocated for it.
    uint64_t most = 0;
    for (const pb::Field& t : typed) {
      if (t.number != field) continue;
      const uint64_t width = field == kTensorFloatData ? 4 : field == kTensorDoubleData ? 8 : 1;
      most += t.wire == pb::kLen ? t.bytes.size() / width : 1;
    }
    if (most < numel) {
      fail(path_, "initializer {} holds fewer values than its shape [{}] needs ({})", name,
           fmt::join(dims, ","), numel);
    }
    auto buf = std::make_shared<std::vector<uint8_t>>();
    buf->reserve(static_cast<size_t>(want));
    auto put = [&](uint64_t v, size_t n) {
      if (buf->size() + n > want) {
        fail(path_, "initializer {} holds more values than its shape [{}] needs", name,
             fmt::join(dims, ","));
      }
      for (size_t i = 0; i < n; ++i) buf->push_back(static_cast<uint8_t>(v >> (8 * i)));
    };
    for (const pb::Field& t : typed) {
      if (t.number != field) continue;
      if (field == kTensorFloatData || field == kTensorDoubleData) {
        const size_t n = field == kTensorFloatData ? 4 : 8;
        if (t.wire == pb::kLen) {
          if (t.bytes.size() % n != 0) r.bad();
          for (size_t i = 0; i < t.bytes.size(); i += n) {
            uint64_t v = 0;
            for (size_t k = 0; k < n; ++k)
              v |= static_cast<uint64_t>(static_cast<uint8_t>(t.bytes[i + k])) << (8 * k);
            put(v, n);
          }
        } else {
          put(t.value, n);
        }
      } else {
        r.packed_varints(t, [&](uint64_t v) { put(v, esize); });
      }
    }
    if (buf->size() != want) {
      fail(path_, "initializer {} holds {} bytes of values, its shape [{}] needs {}", name,
           buf->size(), fmt::join(dims, ","), want);
    }
    info.data = buf->data();
    info.nbytes = buf->size();
    owned_.push_back(buf);
  }
  by_name_[name] = tensors_.size();
  tensors_.push_back(std::move(info));
}

}  // namespace lowbit
