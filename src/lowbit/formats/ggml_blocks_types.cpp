// The table of ggml types lowbit knows: names, block sizes, bytes per block.
#include <cstring>

#include "lowbit/formats/ggml_blocks.h"

namespace lowbit::gguf {

namespace {

struct TypeRow {
  GgmlType type;
  const char* name;
  int values, bytes;  // per block
};

// Block layouts (ggml): q4_0 = f16 d + 16 B of nibbles; q4_1 = f16 d, m + 16 B; q5_0 = f16 d +
// 4 B high bits + 16 B; q5_1 = f16 d, m + 4 B + 16 B; q8_0 = f16 d + 32 int8; q4_k = f16 d, dmin +
// 12 B of 6-bit scales/mins + 128 B; q5_k = the same + 32 B high bits; q6_k = 128 B low nibbles +
// 64 B high 2 bits + 16 int8 scales + f16 d; iq4_nl = f16 d + 16 B of table indices.
constexpr TypeRow kTypes[] = {
    {GgmlType::kF32, "f32", 1, 4},         {GgmlType::kF16, "f16", 1, 2},
    {GgmlType::kQ4_0, "q4_0", 32, 18},     {GgmlType::kQ4_1, "q4_1", 32, 20},
    {GgmlType::kQ5_0, "q5_0", 32, 22},     {GgmlType::kQ5_1, "q5_1", 32, 24},
    {GgmlType::kQ8_0, "q8_0", 32, 34},     {GgmlType::kQ4_K, "q4_k", 256, 144},
    {GgmlType::kQ5_K, "q5_k", 256, 176},   {GgmlType::kQ6_K, "q6_k", 256, 210},
    {GgmlType::kIQ4_NL, "iq4_nl", 32, 18}, {GgmlType::kBF16, "bf16", 1, 2},
};

const TypeRow* row(GgmlType t) {
  for (const TypeRow& r : kTypes)
    if (r.type == t) return &r;
  return nullptr;
}

}  // namespace

bool known_type(uint32_t t) { return row(static_cast<GgmlType>(t)) != nullptr; }

const char* type_name(GgmlType t) {
  const TypeRow* r = row(t);
  return r ? r->name : "?";
}

bool parse_type(const char* name, GgmlType* t) {
  for (const TypeRow& r : kTypes)
    if (std::strcmp(r.name, name) == 0) {
      *t = r.type;
      return true;
    }
  return false;
}

int block_values(GgmlType t) {
  const TypeRow* r = row(t);
  return r ? r->values : 0;
}
int block_bytes(GgmlType t) {
  const TypeRow* r = row(t);
  return r ? r->bytes : 0;
}

uint64_t tensor_bytes(GgmlType t, uint64_t elements) {
  const TypeRow* r = row(t);
  if (!r) return 0;
  return elements / static_cast<uint64_t>(r->values) * static_cast<uint64_t>(r->bytes);
}

bool is_quantized(GgmlType t) {
  return t != GgmlType::kF32 && t != GgmlType::kF16 && t != GgmlType::kBF16;
}

}  // namespace lowbit::gguf
