#include "lowbit/io/dtype.h"

#include <array>
#include <utility>

namespace lowbit {

namespace {

struct DTypeRow {
  DType type;
  const char* name;
  size_t size;
};

constexpr std::array<DTypeRow, 12> kDTypes = {{
    {DType::F32, "F32", 4},
    {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2},
    {DType::F64, "F64", 8},
    {DType::I64, "I64", 8},
    {DType::I32, "I32", 4},
    {DType::I16, "I16", 2},
    {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
    {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1},
}};

const DTypeRow& row(DType t) {
  for (const auto& r : kDTypes) {
    if (r.type == t) return r;
  }
  return kDTypes[0];  // unreachable for valid enum values
}

}  // namespace

size_t dtype_size(DType t) { return row(t).size; }

const char* dtype_name(DType t) { return row(t).name; }

bool parse_dtype(const std::string& name, DType* out) {
  for (const auto& r : kDTypes) {
    if (name == r.name) {
      *out = r.type;
      return true;
    }
  }
  return false;
}

}  // namespace lowbit
