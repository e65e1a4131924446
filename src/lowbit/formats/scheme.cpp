#include "lowbit/formats/scheme.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "lowbit/formats/group_quant.h"
#include "lowbit/formats/minifloat.h"
#include "lowbit/util/error.h"
#include "lowbit/util/finite.h"
#include "lowbit/util/half.h"

namespace lowbit {

WeightType parse_weight_type(const std::string& where, const std::string& name, int* bits) {
  struct Entry {
    const char* name;
    WeightType type;
    int bits;
  };
  static const Entry kEntries[] = {
      {"int2", WeightType::kInt, 2},         {"int3", WeightType::kInt, 3},
      {"int4", WeightType::kInt, 4},         {"int8", WeightType::kInt, 8},
      {"nf4", WeightType::kNF4, 4},          {"fp4", WeightType::kFP4, 4},
      {"fp4_e2m1", WeightType::kFP4, 4},     {"fp8", WeightType::kFP8E4M3, 8},
      {"fp8_e4m3", WeightType::kFP8E4M3, 8}, {"fp8_e5m2", WeightType::kFP8E5M2, 8},
  };
  for (const Entry& e : kEntries) {
    if (name == e.name) {
      if (bits != nullptr) *bits = e.bits;
      return e.type;
    }
  }
  QuantScheme g;
  if (parse_ggml_scheme(name, &g)) {
    if (bits != nullptr) *bits = g.bits;
    return g.type;
  }
  fail(where,
       "unknown weight type '{}' (expected int2, int3, int4, int8, nf4, fp4, fp8_e4m3, "
       "fp8_e5m2, or a ggml type: q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k, iq4_nl)",
       name);
}

void apply_weight_type(const std::string& where, const std::string& name, QuantScheme* s) {
  if (parse_ggml_scheme(name, s)) return;
  s->type = parse_weight_type(where, name, &s->bits);
}

std::string weight_type_name(const QuantScheme& s) {
  return s.type == WeightType::kGgml ? gguf::type_name(s.ggml) : weight_type_name(s.type, s.bits);
}

bool parse_ggml_scheme(const std::string& name, QuantScheme* s) {
  gguf::GgmlType t;
  if (!gguf::parse_type(name.c_str(), &t) || !gguf::is_quantized(t)) return false;
  s->type = WeightType::kGgml;
  s->ggml = t;
  s->group_size = gguf::block_values(t);
  s->bits = name[1] - '0';  // nominal: q4_k → 4, iq4_nl → 4 (name "iq4_nl": digit at [2])
  if (name[0] == 'i') s->bits = name[2] - '0';
  s->sym = false;
  s->int4_clip = false;
  s->scale_type = ScaleType::kF16;
  return true;
}

size_t ggml_row_bytes(const QuantScheme& s, int in) {
  return static_cast<size_t>(gguf::tensor_bytes(s.ggml, static_cast<uint64_t>(in)));
}

ScaleType parse_scale_type(const std::string& where, const std::string& name) {
  if (name == "f32" || name == "fp32" || name == "float32") return ScaleType::kF32;
  if (name == "f16" || name == "fp16" || name == "float16") return ScaleType::kF16;
  if (name == "bf16" || name == "bfloat16") return ScaleType::kBF16;
  if (name == "fp8_e4m3" || name == "fp8" || name == "e4m3") return ScaleType::kFP8E4M3;
  fail(where, "unknown scale type '{}' (expected f32, f16, bf16, fp8_e4m3)", name);
}

std::string weight_type_name(WeightType t, int bits) {
  switch (t) {
    case WeightType::kInt:
      return "int" + std::to_string(bits);
    case WeightType::kNF4:
      return "nf4";
    case WeightType::kFP4:
      return "fp4";
    case WeightType::kFP8E4M3:
      return "fp8_e4m3";
    case WeightType::kFP8E5M2:
      return "fp8_e5m2";
    case WeightType::kGgml:
      return "ggml";
  }
  return "?";
}

std::string scale_type_name(ScaleType t) {
  switch (t) {
    case ScaleType::kF32:
      return "f32";
    case ScaleType::kF16:
      return "f16";
    case ScaleType::kBF16:
      return "bf16";
    case ScaleType::kFP8E4M3:
      return "fp8_e4m3";
  }
  return "?";
}

std::string scheme_name(const QuantScheme& s) {
  if (s.type == WeightType::kGgml) return std::string(gguf::type_name(s.ggml)) + " (ggml blocks)";
  std::string name = weight_type_name(s.type, s.bits);
  name += s.group_size < 0 ? " per-channel" : " g" + std::to_string(s.group_size);
  if (s.type == WeightType::kInt) {
    name += s.sym ? (s.int4_clip ? " sym-clip" : " sym") : " asym";
  }
  return name + " " + scale_type_name(s.scale_type) + "-scales";
}

void validate_scheme(const std::string& where, const QuantScheme& s) {
  if (s.group_size == 0 || s.group_size < -1) {
    fail(where, "group size {} is invalid (expected a positive number or -1 for per-channel)",
         s.group_size);
  }
  switch (s.type) {
    case WeightType::kInt:
      if (s.bits != 2 && s.bits != 3 && s.bits != 4 && s.bits != 8) {
        fail(where, "int weights have 2, 3, 4 or 8 bits, not {}", s.bits);
      }
      if (s.int4_clip && !s.sym) fail(where, "the clip range needs symmetric quantization");
      return;
    case WeightType::kNF4:
    case WeightType::kFP4:
      if (s.bits != 4)
        fail(where, "{} weights have 4 bits, not {}", weight_type_name(s.type, 4), s.bits);
      break;
    case WeightType::kFP8E4M3:
    case WeightType::kFP8E5M2:
      if (s.bits != 8)
        fail(where, "{} weights have 8 bits, not {}", weight_type_name(s.type, 8), s.bits);
      break;
    case WeightType::kGgml:
      if (!gguf::is_quantized(s.ggml) || gguf::block_values(s.ggml) == 0)
        fail(where, "ggml weights need a quantized ggml type");
      if (s.group_size != gguf::block_values(s.ggml))
        fail(where, "{} blocks hold {} values, not a group of {}", gguf::type_name(s.ggml),
             gguf::block_values(s.ggml), s.group_size);
      break;
  }
  // Codebook and float types have no zero point: sym and int4_clip do not apply and are ignored.
}

int groups_per_row(const QuantScheme& s, int in) {
  if (s.group_size < 0 || in <= 0) return 1;
  return (in + s.group_size - 1) / s.group_size;
}

float round_scale(ScaleType t, float scale) {
  if (!std::isfinite(scale)) return scale;
  const float mag = std::fabs(scale);
  float r = scale;
  float tiny = std::numeric_limits<float>::denorm_min(), big = std::numeric_limits<float>::max();
  switch (t) {
    case ScaleType::kF32:
      return scale;
    case ScaleType::kF16:
      r = f16_to_f32(f32_to_f16(scale));
      tiny = f16_to_f32(0x0001);
      big = 65504.0f;
      break;
    case ScaleType::kBF16:
      r = bf16_to_f32(f32_to_bf16(scale));
      tiny = bf16_to_f32(0x0001);
      big = bf16_to_f32(0x7f7f);
      break;
    case ScaleType::kFP8E4M3:
      r = fp8_e4m3_to_f32(f32_to_fp8_e4m3(scale));
      tiny = fp8_e4m3_to_f32(0x01);
      big = 448.0f;
      break;
  }
  if (mag > 0 && std::fabs(r) < tiny) r = std::copysign(tiny, scale);
  if (std::fabs(r) > big) r = std::copysign(big, scale);
  return r;
}

float round_scale_up(ScaleType t, float scale) {
  float r = round_scale(t, scale);
  if (!(r < scale) || !(scale > 0)) return r;
  switch (t) {
    case ScaleType::kF32:
      return r;
    case ScaleType::kF16:
      return std::min(f16_to_f32(static_cast<uint16_t>(f32_to_f16(r) + 1)), 65504.0f);
    case ScaleType::kBF16:
      return bf16_to_f32(static_cast<uint16_t>(f32_to_bf16(r) + 1));
    case ScaleType::kFP8E4M3: {
      const uint8_t c = f32_to_fp8_e4m3(r);
      return c >= 0x7E ? 448.0f : fp8_e4m3_to_f32(static_cast<uint8_t>(c + 1));
    }
  }
  return r;
}

void QuantizedWeight::check(const std::string& where) const {
  validate_scheme(where, scheme);
  if (out <= 0 || in <= 0) fail(where, "empty quantized weight [{}, {}]", out, in);
  if (scheme.type == WeightType::kGgml) {
    if (in % scheme.group_size != 0)
      fail(where, "{} columns are not a whole number of {} blocks ({} values)", in,
           gguf::type_name(scheme.ggml), scheme.group_size);
    const size_t want = static_cast<size_t>(out) * ggml_row_bytes(scheme, in);
    if (blocks.size() != want) fail(where, "{} bytes of blocks, expected {}", blocks.size(), want);
    return;
  }
  if (n_groups != groups_per_row(scheme, in)) {
    fail(where, "{} groups per row, expected {} for {} columns with {}", n_groups,
         groups_per_row(scheme, in), in, scheme_name(scheme));
  }
  const size_t numel = static_cast<size_t>(out) * static_cast<size_t>(in);
  if (q.size() != numel) fail(where, "{} codes, expected {}", q.size(), numel);
  if (params.size() != static_cast<size_t>(out) * static_cast<size_t>(n_groups)) {
    fail(where, "{} group params, expected {}", params.size(),
         static_cast<size_t>(out) * static_cast<size_t>(n_groups));
  }
  if (g_idx.size() != static_cast<size_t>(in))
    fail(where, "g_idx has {} entries, expected {}", g_idx.size(), in);
  for (int32_t g : g_idx) {
    if (g < 0 || g >= n_groups) fail(where, "g_idx entry {} outside [0, {})", g, n_groups);
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (!std::isfinite(params[i].scale)) {
      fail(where, "non-finite scale ({}) in row {}, group {}", nonfinite_name(params[i].scale),
           i / static_cast<size_t>(n_groups), i % static_cast<size_t>(n_groups));
    }
  }
  const int max_code = scheme.bits >= 8 ? 255 : (1 << scheme.bits) - 1;
  for (uint8_t c : q) {
    if (c > max_code) fail(where, "code {} does not fit in {} bits", c, scheme.bits);
  }
}

std::vector<float> QuantizedWeight::dequantize() const {
  check("dequantize");
  if (scheme.type == WeightType::kGgml) {
    std::vector<float> w(static_cast<size_t>(out) * static_cast<size_t>(in));
    const size_t rb = ggml_row_bytes(scheme, in);
#pragma omp parallel for schedule(static)
    for (int o = 0; o < out; ++o)
      gguf::dequantize_row(scheme.ggml, &blocks[static_cast<size_t>(o) * rb],
                           &w[static_cast<size_t>(o) * static_cast<size_t>(in)], in);
    return w;
  }
  std::vector<float> w(q.size());
  for (int o = 0; o < out; ++o) {
    const GroupParams* row_params = &params[static_cast<size_t>(o) * n_groups];
    const uint8_t* row_q = &q[static_cast<size_t>(o) * in];
    float* row_w = &w[static_cast<size_t>(o) * in];
    for (int i = 0; i < in; ++i)
      row_w[i] = dequantize_value(scheme, row_params[g_idx[i]], row_q[i]);
  }
  return w;
}

QuantizedWeight QuantizedWeight::select_rows(const std::vector<int>& rows) const {
  QuantizedWeight r;
  r.scheme = scheme;
  r.in = in;
  r.n_groups = n_groups;
  r.g_idx = g_idx;
  r.out = static_cast<int>(rows.size());
  if (scheme.type == WeightType::kGgml) {
    const size_t rb = ggml_row_bytes(scheme, in);
    r.blocks.resize(static_cast<size_t>(r.out) * rb);
    for (size_t i = 0; i < rows.size(); ++i) {
      const int o = rows[i];
      if (o < 0 || o >= out) fail("select_rows", "row {} outside [0, {})", o, out);
      std::copy_n(blocks.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(o) * rb), rb,
                  r.blocks.begin() + static_cast<ptrdiff_t>(i * rb));
    }
    return r;
  }
  r.q.resize(static_cast<size_t>(r.out) * in);
  r.params.resize(static_cast<size_t>(r.out) * n_groups);
  for (size_t i = 0; i < rows.size(); ++i) {
    const int o = rows[i];
    if (o < 0 || o >= out) fail("select_rows", "row {} outside [0, {})", o, out);
    std::copy_n(q.begin() + static_cast<ptrdiff_t>(o) * in, in,
                r.q.begin() + static_cast<ptrdiff_t>(i) * in);
    std::copy_n(params.begin() + static_cast<ptrdiff_t>(o) * n_groups, n_groups,
                r.params.begin() + static_cast<ptrdiff_t>(i) * n_groups);
  }
  return r;
}

QuantizedWeight stack_rows(const std::string& where, const std::vector<QuantizedWeight>& parts,
                           const std::vector<std::vector<int>>& rows_of, int total) {
  if (parts.empty() || parts.size() != rows_of.size()) fail(where, "no parts to stack");
  const QuantizedWeight& p0 = parts[0];
  QuantizedWeight w;
  w.scheme = p0.scheme;
  w.in = p0.in;
  w.n_groups = p0.n_groups;
  w.g_idx = p0.g_idx;
  w.out = total;
  const bool ggml = w.scheme.type == WeightType::kGgml;
  const size_t rb = ggml ? ggml_row_bytes(w.scheme, w.in) : 0;
  if (ggml) {
    w.blocks.resize(static_cast<size_t>(total) * rb);
  } else {
    w.q.resize(static_cast<size_t>(total) * w.in);
    w.params.resize(static_cast<size_t>(total) * w.n_groups);
  }
  std::vector<char> seen(static_cast<size_t>(total), 0);
  for (size_t p = 0; p < parts.size(); ++p) {
    const QuantizedWeight& part = parts[p];
    if (scheme_name(part.scheme) != scheme_name(w.scheme) || part.in != w.in ||
        part.g_idx != w.g_idx || static_cast<size_t>(part.out) != rows_of[p].size()) {
      fail(where, "the parts of a fused tensor were quantized differently ({} vs {})",
           scheme_name(part.scheme), scheme_name(w.scheme));
    }
    for (size_t i = 0; i < rows_of[p].size(); ++i) {
      const int o = rows_of[p][i];
      if (o < 0 || o >= total || seen[static_cast<size_t>(o)]) {
        fail(where, "fused row {} is not covered exactly once", o);
      }
      seen[static_cast<size_t>(o)] = 1;
      if (ggml) {
        std::copy_n(part.blocks.begin() + static_cast<ptrdiff_t>(i * rb), rb,
                    w.blocks.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(o) * rb));
        continue;
      }
      std::copy_n(part.q.begin() + static_cast<ptrdiff_t>(i) * w.in, w.in,
                  w.q.begin() + static_cast<ptrdiff_t>(o) * w.in);
      std::copy_n(part.params.begin() + static_cast<ptrdiff_t>(i) * w.n_groups, w.n_groups,
                  w.params.begin() + static_cast<ptrdiff_t>(o) * w.n_groups);
    }
  }
  if (std::find(seen.begin(), seen.end(), 0) != seen.end()) {
    fail(where, "the parts do not cover the fused tensor's {} rows", total);
  }
  return w;
}

}  // namespace lowbit
