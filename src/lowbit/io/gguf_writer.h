// GGUF (version 3), the file format of llama.cpp / ggml: a header of typed key-value metadata and
// tensor descriptions, then the tensor data, each tensor at an offset aligned to 32 bytes.
// The writer holds the metadata and, per tensor, a function that produces its bytes when the
// data section is written, so a model is converted one tensor at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "lowbit/formats/ggml_blocks.h"

namespace lowbit::gguf {

// GGUF metadata value types (the numbers are the format's).
enum class ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

constexpr uint32_t kAlignment = 32;

class Writer {
 public:
  void set_u32(const std::string& key, uint32_t v);
  void set_i32(const std::string& key, int32_t v);
  void set_f32(const std::string& key, float v);
  void set_bool(const std::string& key, bool v);
  void set_string(const std::string& key, const std::string& v);
  void set_strings(const std::string& key, const std::vector<std::string>& v);
  void set_f32s(const std::string& key, const std::vector<float>& v);
  void set_i32s(const std::string& key, const std::vector<int32_t>& v);

  // A tensor of ggml shape `ne` (innermost dimension first: [in, out] for a linear weight) and
  // type `type`; `produce` fills exactly tensor_bytes(type, Π ne) bytes when the file is written.
  using Producer = std::function<void(std::vector<uint8_t>* bytes)>;
  void add_tensor(const std::string& name, const std::vector<uint64_t>& ne, GgmlType type,
                  Producer produce);

  size_t tensor_count() const { return tensors_.size(); }
  uint64_t data_bytes() const;  // the data section, padding included

  // Writes the file atomically (temp file + rename). `on_tensor(i, n)` is called after each
  // tensor (progress). Throws Error("<path>: ...") on a write error or a producer's error.
  void write(const std::string& path,
             const std::function<void(size_t, size_t)>& on_tensor = nullptr) const;

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    GgmlType type;
    uint64_t bytes, offset;
    Producer produce;
  };
  void key(const std::string& k, ValueType t);
  std::string kv_;  // serialized key-value pairs
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
  uint64_t next_offset_ = 0;
};

}  // namespace lowbit::gguf
