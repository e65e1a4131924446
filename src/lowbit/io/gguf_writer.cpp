#include "lowbit/io/gguf_writer.h"

#include <cstring>

#include "lowbit/util/error.h"
#include "lowbit/util/file.h"

namespace lowbit::gguf {

namespace {

template <typename T>
void put(std::string* s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // GGUF is little-endian, as is every machine lowbit runs on
  s->append(b, sizeof(T));
}

void put_str(std::string* s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s->append(v);
}

uint64_t align(uint64_t x) { return (x + kAlignment - 1) / kAlignment * kAlignment; }

}  // namespace

void Writer::key(const std::string& k, ValueType t) {
  put_str(&kv_, k);
  put<uint32_t>(&kv_, static_cast<uint32_t>(t));
  ++n_kv_;
}

void Writer::set_u32(const std::string& k, uint32_t v) {
  key(k, ValueType::kU32);
  put(&kv_, v);
}
void Writer::set_i32(const std::string& k, int32_t v) {
  key(k, ValueType::kI32);
  put(&kv_, v);
}
void Writer::set_f32(const std::string& k, float v) {
  key(k, ValueType::kF32);
  put(&kv_, v);
}
void Writer::set_bool(const std::string& k, bool v) {
  key(k, ValueType::kBool);
  put<uint8_t>(&kv_, v ? 1 : 0);
}
void Writer::set_string(const std::string& k, const std::string& v) {
  key(k, ValueType::kString);
  put_str(&kv_, v);
}
void Writer::set_strings(const std::string& k, const std::vector<std::string>& v) {
  key(k, ValueType::kArray);
  put<uint32_t>(&kv_, static_cast<uint32_t>(ValueType::kString));
  put<uint64_t>(&kv_, v.size());
  for (const auto& s : v) put_str(&kv_, s);
}
void Writer::set_f32s(const std::string& k, const std::vector<float>& v) {
  key(k, ValueType::kArray);
  put<uint32_t>(&kv_, static_cast<uint32_t>(ValueType::kF32));
  put<uint64_t>(&kv_, v.size());
  for (float x : v) put(&kv_, x);
}
void Writer::set_i32s(const std::string& k, const std::vector<int32_t>& v) {
  key(k, ValueType::kArray);
  put<uint32_t>(&kv_, static_cast<uint32_t>(ValueType::kI32));
  put<uint64_t>(&kv_, v.size());
  for (int32_t x : v) put(&kv_, x);
}

void Writer::add_tensor(const std::string& name, const std::vector<uint64_t>& ne, GgmlType type,
                        Producer produce) {
  uint64_t n = 1;
  for (uint64_t d : ne) n *= d;
  const uint64_t bytes = tensor_bytes(type, n);
  tensors_.push_back({name, ne, type, bytes, next_offset_, std::move(produce)});
  next_offset_ = align(next_offset_ + bytes);
}

uint64_t Writer::data_bytes() const { return next_offset_; }

void Writer::write(const std::string& path,
                   const std::function<void(size_t, size_t)>& on_tensor) const {
  std::string head;
  head.append("GGUF", 4);
  put<uint32_t>(&head, 3);
  put<uint64_t>(&head, tensors_.size());
  put<uint64_t>(&head, n_kv_);
  head += kv_;
  for (const Tensor& t : tensors_) {
    put_str(&head, t.name);
    put<uint32_t>(&head, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put<uint64_t>(&head, d);
    put<uint32_t>(&head, static_cast<uint32_t>(t.type));
    put<uint64_t>(&head, t.offset);
  }
  head.resize(align(head.size()), '\0');
  AtomicFile f(path);
  f.write(head.data(), head.size());
  const uint64_t data0 = f.written();
  std::vector<uint8_t> bytes;
  static const char zeros[kAlignment] = {};
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    bytes.clear();
    t.produce(&bytes);
    if (bytes.size() != t.bytes) {
      fail(path, "tensor {}: {} bytes produced, {} expected", t.name, bytes.size(), t.bytes);
    }
    const uint64_t at = f.written() - data0;
    if (at != t.offset) f.write(zeros, t.offset - at);
    f.write(bytes.data(), bytes.size());
    if (on_tensor) on_tensor(i + 1, tensors_.size());
  }
  const uint64_t end = f.written() - data0;
  if (end < next_offset_) f.write(zeros, next_offset_ - end);
  f.commit();
}

}  // namespace lowbit::gguf
