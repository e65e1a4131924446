#include "lowbit/io/gguf_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

namespace lowbit::gguf {

namespace {

constexpr uint32_t kMaxDims = 4;          // GGML_MAX_DIMS
constexpr uint64_t kMaxNameBytes = 4096;  // keys and tensor names
constexpr uint64_t kMaxElements = uint64_t{1} << 50;

// Bytes of one scalar of a metadata type (0 for string / array / unknown).
size_t scalar_bytes(uint32_t t) {
  switch (static_cast<ValueType>(t)) {
    case ValueType::kU8:
    case ValueType::kI8:
    case ValueType::kBool:
      return 1;
    case ValueType::kU16:
    case ValueType::kI16:
      return 2;
    case ValueType::kU32:
    case ValueType::kI32:
    case ValueType::kF32:
      return 4;
    case ValueType::kU64:
    case ValueType::kI64:
    case ValueType::kF64:
      return 8;
    default:
      return 0;
  }
}

const char* value_type_name(ValueType t) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<uint32_t>(t);
  return i < 13 ? names[i] : "?";
}

// A bounded cursor over the header.
class Cursor {
 public:
  Cursor(const MappedFile& f) : f_(f) {}
  size_t at() const { return at_; }
  size_t left() const { return f_.size() - at_; }
  const uint8_t* here() const { return f_.data() + at_; }
  void need(uint64_t n, const char* what) const {
    if (n > left()) {
      fail(f_.path(), "truncated GGUF file: {} needs {} bytes at offset {}, {} left", what, n, at_,
           left());
    }
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, here(), sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  void skip(uint64_t n, const char* what) {
    need(n, what);
    at_ += static_cast<size_t>(n);
  }
  std::string str(const char* what, uint64_t max_len = std::numeric_limits<uint64_t>::max()) {
    const uint64_t n = read<uint64_t>(what);
    if (n > max_len) fail(f_.path(), "{} of {} bytes (at most {})", what, n, max_len);
    need(n, what);
    std::string s(reinterpret_cast<const char*>(here()), static_cast<size_t>(n));
    at_ += static_cast<size_t>(n);
    return s;
  }

 private:
  const MappedFile& f_;
  size_t at_ = 0;
};

void read_scalar(Cursor& c, ValueType t, Value* v, const char* what) {
  v->type = t;
  switch (t) {
    case ValueType::kU8:
    case ValueType::kBool:
      v->u = c.read<uint8_t>(what);
      break;
    case ValueType::kI8:
      v->i = c.read<int8_t>(what);
      break;
    case ValueType::kU16:
      v->u = c.read<uint16_t>(what);
      break;
    case ValueType::kI16:
      v->i = c.read<int16_t>(what);
      break;
    case ValueType::kU32:
      v->u = c.read<uint32_t>(what);
      break;
    case ValueType::kI32:
      v->i = c.read<int32_t>(what);
      break;
    case ValueType::kU64:
      v->u = c.read<uint64_t>(what);
      break;
    case ValueType::kI64:
      v->i = c.read<int64_t>(what);
      break;
    case ValueType::kF32:
      v->f = c.read<float>(what);
      break;
    case ValueType::kF64:
      v->f = c.read<double>(what);
      break;
    default:
      break;
  }
  if (t == ValueType::kI8 || t == ValueType::kI16 || t == ValueType::kI32 || t == ValueType::kI64) {
    v->u = v->i >= 0 ? static_cast<uint64_t>(v->i) : 0;
  } else if (t != ValueType::kF32 && t != ValueType::kF64) {
    v->i = v->u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? static_cast<int64_t>(v->u)
               : -1;
  }
}

// One element of a numeric array as a double.
double array_elem(const Value& v, uint64_t k) {
  const uint8_t* p = v.array_data + k * scalar_bytes(static_cast<uint32_t>(v.elem));
  auto get = [p]<typename T>(T) {
    T x;
    std::memcpy(&x, p, sizeof(T));
    return static_cast<double>(x);
  };
  switch (v.elem) {
    case ValueType::kU8:
    case ValueType::kBool:
      return get(uint8_t{});
    case ValueType::kI8:
      return get(int8_t{});
    case ValueType::kU16:
      return get(uint16_t{});
    case ValueType::kI16:
      return get(int16_t{});
    case ValueType::kU32:
      return get(uint32_t{});
    case ValueType::kI32:
      return get(int32_t{});
    case ValueType::kU64:
      return get(uint64_t{});
    case ValueType::kI64:
      return get(int64_t{});
    case ValueType::kF32:
      return get(float{});
    case ValueType::kF64:
      return get(double{});
    default:
      return 0;
  }
}

}  // namespace

bool Value::is_integer() const {
  return type != ValueType::kBool && scalar_bytes(static_cast<uint32_t>(type)) != 0 && !is_float();
}

Reader Reader::open(const std::string& path) { return from_file(MappedFile::open(path)); }

Reader Reader::from_file(std::shared_ptr<MappedFile> file) {
  Reader r;
  r.file_ = std::move(file);
  const std::string& path = r.file_->path();
  Cursor c(*r.file_);
  c.need(4, "the magic");
  if (std::memcmp(c.here(), "GGUF", 4) != 0) fail(path, "not a GGUF file (no GGUF magic)");
  c.skip(4, "the magic");
  r.version_ = c.read<uint32_t>("the version");
  if (r.version_ != 2 && r.version_ != 3) {
    fail(path, "GGUF version {} is not supported (2 and 3 are; a big-endian file reads as {})",
         r.version_, __builtin_bswap32(r.version_));
  }
  const uint64_t n_tensors = c.read<uint64_t>("the tensor count");
  const uint64_t n_kv = c.read<uint64_t>("the metadata count");
  // Smallest encodings: a key-value pair 8 + 1 + 4 + 1 bytes, a tensor 8 + 1 + 4 + 8 + 4 + 8.
  if (n_kv > c.left() / 14) {
    fail(path, "{} metadata entries cannot fit in the {} bytes of the file", n_kv, r.file_->size());
  }
  if (n_tensors > c.left() / 33) {
    fail(path, "{} tensors cannot fit in the {} bytes of the file", n_tensors, r.file_->size());
  }
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.str("a metadata key", kMaxNameBytes);
    const uint32_t type = c.read<uint32_t>("a metadata type");
    Value v;
    if (type > static_cast<uint32_t>(ValueType::kF64)) {
      fail(path, "metadata {} has unknown value type {}", key, type);
    }
    if (type == static_cast<uint32_t>(ValueType::kString)) {
      v.type = ValueType::kString;
      v.s = c.str("a string value");
    } else if (type == static_cast<uint32_t>(ValueType::kArray)) {
      v.type = ValueType::kArray;
      const uint32_t et = c.read<uint32_t>("an array type");
      v.count = c.read<uint64_t>("an array length");
      if (et == static_cast<uint32_t>(ValueType::kString)) {
        v.elem = ValueType::kString;
        if (v.count > c.left() / 8) {
          fail(path, "metadata {}: {} strings cannot fit in the rest of the file", key, v.count);
        }
        v.strings.reserve(static_cast<size_t>(v.count));
        for (uint64_t j = 0; j < v.count; ++j) v.strings.push_back(c.str("an array string"));
      } else {
        const size_t eb = scalar_bytes(et);
        if (eb == 0) {
          fail(path, "metadata {}: arrays of {} are not supported", key,
               et == static_cast<uint32_t>(ValueType::kArray) ? "arrays"
                                                              : std::to_string(et).c_str());
        }
        v.elem = static_cast<ValueType>(et);
        if (v.count > c.left() / eb) {
          fail(path, "metadata {}: {} elements of {} bytes run past the end of the file", key,
               v.count, eb);
        }
        v.array_data = c.here();
        c.skip(v.count * eb, "an array");
      }
    } else {
      read_scalar(c, static_cast<ValueType>(type), &v, "a metadata value");
    }
    if (!r.kv_.emplace(key, std::move(v)).second) fail(path, "metadata {} appears twice", key);
  }
  if (const Value* a = r.find("general.alignment")) {
    if (!a->is_integer() || a->u == 0 || a->u > (1u << 30) || (a->u & (a->u - 1)) != 0) {
      fail(path, "general.alignment must be a power of two, is {}", a->is_integer() ? a->i : -1);
    }
    r.alignment_ = static_cast<uint32_t>(a->u);
  }
  r.tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    Tensor t;
    t.name = c.str("a tensor name", kMaxNameBytes);
    const uint32_t nd = c.read<uint32_t>("a tensor's dimension count");
    if (nd == 0 || nd > kMaxDims) {
      fail(path, "tensor {} has {} dimensions (1 to {})", t.name, nd, kMaxDims);
    }
    t.numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = c.read<uint64_t>("a tensor dimension");
      if (n == 0 || n > kMaxElements || t.numel > kMaxElements / n) {
        fail(path, "tensor {} has an empty or overflowing shape (dimension {} = {})", t.name, d, n);
      }
      t.numel *= n;
      t.ne.push_back(n);
    }
    const uint32_t type = c.read<uint32_t>("a tensor type");
    if (!known_type(type)) fail(path, "tensor {} has unknown ggml type {}", t.name, type);
    t.type = static_cast<GgmlType>(type);
    if (t.ne[0] % static_cast<uint64_t>(block_values(t.type)) != 0) {
      fail(path, "tensor {}: rows of {} values are not whole {} blocks of {}", t.name, t.ne[0],
           type_name(t.type), block_values(t.type));
    }
    t.bytes = tensor_bytes(t.type, t.numel);
    t.offset = c.read<uint64_t>("a tensor offset");
    if (t.offset % r.alignment_ != 0) {
      fail(path, "tensor {} offset {} is not a multiple of the alignment {}", t.name, t.offset,
           r.alignment_);
    }
    if (!r.by_name_.emplace(t.name, r.tensors_.size()).second) {
      fail(path, "tensor {} appears twice", t.name);
    }
    r.tensors_.push_back(std::move(t));
  }
  const uint64_t size = r.file_->size();
  r.data_offset_ = (c.at() + r.alignment_ - 1) / r.alignment_ * r.alignment_;
  for (Tensor& t : r.tensors_) {
    if (r.data_offset_ > size || t.offset > size - r.data_offset_ ||
        t.bytes > size - r.data_offset_ - t.offset) {
      fail(path, "tensor {} ({} bytes at data offset {}) runs past the end of the file ({} bytes)",
           t.name, t.bytes, t.offset, size);
    }
    t.data = r.file_->data() + r.data_offset_ + t.offset;
  }
  return r;
}

const Value* Reader::find(const std::string& key) const {
  const auto it = kv_.find(key);
  return it == kv_.end() ? nullptr : &it->second;
}

const Tensor* Reader::tensor(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

std::string Reader::get_string(const std::string& key, bool required,
                               const std::string& dflt) const {
  const Value* v = find(key);
  if (v == nullptr) {
    if (required) fail(path(), "metadata {} is missing", key);
    return dflt;
  }
  if (v->type != ValueType::kString) {
    fail(path(), "metadata {} is a {}, expected a string", key, value_type_name(v->type));
  }
  return v->s;
}

uint64_t Reader::get_uint(const std::string& key, bool required, uint64_t dflt) const {
  const Value* v = find(key);
  if (v == nullptr) {
    if (required) fail(path(), "metadata {} is missing", key);
    return dflt;
  }
  if (!v->is_integer()) {
    fail(path(), "metadata {} is a {}, expected an integer", key, value_type_name(v->type));
  }
  if (v->i < 0) fail(path(), "metadata {} = {} is negative", key, v->i);
  return v->u;
}

double Reader::get_float(const std::string& key, bool required, double dflt) const {
  const Value* v = find(key);
  if (v == nullptr) {
    if (required) fail(path(), "metadata {} is missing", key);
    return dflt;
  }
  double x;
  if (v->is_float()) {
    x = v->f;
  } else if (v->is_integer()) {
    x = static_cast<double>(v->i);
  } else {
    fail(path(), "metadata {} is a {}, expected a number", key, value_type_name(v->type));
  }
  if (!std::isfinite(x)) fail(path(), "metadata {} is not finite", key);
  return x;
}

bool Reader::get_bool(const std::string& key, bool dflt) const {
  const Value* v = find(key);
  if (v == nullptr) return dflt;
  if (v->type != ValueType::kBool && !v->is_integer()) {
    fail(path(), "metadata {} is a {}, expected a bool", key, value_type_name(v->type));
  }
  return v->u != 0;
}

const std::vector<std::string>& Reader::get_strings(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr) fail(path(), "metadata {} is missing", key);
  if (v->type != ValueType::kArray || v->elem != ValueType::kString) {
    fail(path(), "metadata {} is not an array of strings", key);
  }
  return v->strings;
}

std::vector<float> Reader::get_f32s(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr) fail(path(), "metadata {} is missing", key);
  if (v->type != ValueType::kArray || v->elem == ValueType::kString) {
    fail(path(), "metadata {} is not an array of numbers", key);
  }
  std::vector<float> out(static_cast<size_t>(v->count));
  for (uint64_t k = 0; k < v->count; ++k) {
    const double x = array_elem(*v, k);
    if (std::isfinite(x) && std::fabs(x) > std::numeric_limits<float>::max()) {
      fail(path(), "metadata {}[{}] = {} does not fit in a float", key, k, x);
    }
    out[k] = static_cast<float>(x);
  }
  return out;
}

std::vector<int32_t> Reader::get_i32s(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr) fail(path(), "metadata {} is missing", key);
  if (v->type != ValueType::kArray || v->elem == ValueType::kString || v->elem == ValueType::kF32 ||
      v->elem == ValueType::kF64) {
    fail(path(), "metadata {} is not an array of integers", key);
  }
  std::vector<int32_t> out(static_cast<size_t>(v->count));
  for (uint64_t k = 0; k < v->count; ++k) {
    const double x = array_elem(*v, k);
    if (!(x >= std::numeric_limits<int32_t>::min() && x <= std::numeric_limits<int32_t>::max())) {
      fail(path(), "metadata {}[{}] = {} does not fit in 32 bits", key, k, x);
    }
    out[k] = static_cast<int32_t>(x);
  }
  return out;
}

bool has_gguf_magic(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return false;
  char magic[4] = {};
  const ssize_t n = ::read(fd, magic, 4);
  ::close(fd);
  return n == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

void to_f32(const Tensor& t, uint64_t first, uint64_t n, float* dst) {
  const uint64_t bv = static_cast<uint64_t>(block_values(t.type));
  const uint8_t* src = t.data + first / bv * static_cast<uint64_t>(block_bytes(t.type));
  switch (t.type) {
    case GgmlType::kF32:
      std::memcpy(dst, src, n * 4);
      return;
    case GgmlType::kF16:
      f16_to_f32_n(reinterpret_cast<const uint16_t*>(src), dst, n);
      return;
    case GgmlType::kBF16:
      bf16_to_f32_n(reinterpret_cast<const uint16_t*>(src), dst, n);
      return;
    default:
      dequantize_row(t.type, src, dst, static_cast<int64_t>(n));
  }
}

}  // namespace lowbit::gguf
