// GGUF reader (versions 2 and 3) over a memory-mapped file: the header, every metadata value type
// (arrays of scalars and of strings), tensor descriptions and the aligned data section. Files
// come from strangers: every count, length, shape and offset is checked against the file's size
// before anything is allocated or read, unknown tensor types and shapes that overflow are refused,
// and every problem is one Error("<path>: <problem>").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "lowbit/formats/ggml_blocks.h"
#include "lowbit/io/gguf_writer.h"
#include "lowbit/util/mapped_file.h"

namespace lowbit::gguf {

// One metadata value. Scalars are held widened (unsigned in `u`, signed in `i`, floats in `f`,
// bool in `u`); a string in `s`; an array of strings in `strings`; an array of numbers stays in
// the file (`array_data`, `count` elements of `elem`).
struct Value {
  ValueType type = ValueType::kU8;
  uint64_t u = 0;
  int64_t i = 0;
  double f = 0;
  std::string s;
  ValueType elem = ValueType::kU8;  // arrays
  uint64_t count = 0;               // arrays
  const uint8_t* array_data = nullptr;
  std::vector<std::string> strings;
  bool is_integer() const;  // u8 .. i64, bool excluded
  bool is_float() const { return type == ValueType::kF32 || type == ValueType::kF64; }
};

struct Tensor {
  std::string name;
  std::vector<uint64_t> ne;  // innermost dimension first (ggml)
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // in the data section
  uint64_t numel = 0;
  uint64_t bytes = 0;
  const uint8_t* data = nullptr;  // inside the mapped file
  // Rows of a matrix (the product of ne[1..]) and their length (ne[0]).
  uint64_t rows() const { return ne.empty() ? 0 : numel / ne[0]; }
};

class Reader {
 public:
  static Reader open(const std::string& path);
  static Reader from_file(std::shared_ptr<MappedFile> file);

  const std::string& path() const { return file_->path(); }
  const std::shared_ptr<MappedFile>& file() const { return file_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }

  const std::map<std::string, Value>& metadata() const { return kv_; }
  const Value* find(const std::string& key) const;
  // Typed access; `required` keys that are absent, and values of the wrong type, are
  // Error("<path>: metadata <key> ...").
  std::string get_string(const std::string& key, bool required, const std::string& dflt = "") const;
  uint64_t get_uint(const std::string& key, bool required, uint64_t dflt = 0) const;
  double get_float(const std::string& key, bool required, double dflt = 0) const;
  bool get_bool(const std::string& key, bool dflt) const;
  // Arrays: strings; numbers converted to float / int32 (integers that do not fit are errors).
  const std::vector<std::string>& get_strings(const std::string& key) const;
  std::vector<float> get_f32s(const std::string& key) const;
  std::vector<int32_t> get_i32s(const std::string& key) const;

  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* tensor(const std::string& name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0, alignment_ = kAlignment;
  uint64_t data_offset_ = 0;
  std::map<std::string, Value> kv_;
  std::vector<Tensor> tensors_;
  std::map<std::string, size_t> by_name_;
};

// Whether the file starts with the GGUF magic ("GGUF"). False when it cannot be read.
bool has_gguf_magic(const std::string& path);

// Decodes `n` values of a tensor of type `t` starting at value `first` (a multiple of the block
// size) to fp32: f32/f16/bf16 convert, quantized types through dequantize_row.
void to_f32(const Tensor& t, uint64_t first, uint64_t n, float* dst);

}  // namespace lowbit::gguf
