// Element types of stored tensors.
#pragma once

#include <cstddef>
#include <string>

namespace lowbit {

enum class DType { F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: "F32", "BF16", ...
// Returns false for a name safetensors does not define.
bool parse_dtype(const std::string& name, DType* out);

}  // namespace lowbit
