#include "lowbit/formats/checkpoint_layout.h"

#include <cctype>
#include <climits>
#include <cmath>
#include <cstring>

#include "lowbit/formats/minifloat.h"
#include "lowbit/formats/pack.h"
#include "lowbit/io/json_int.h"
#include "lowbit/io/json_read.h"
#include "lowbit/util/error.h"
#include "lowbit/util/half.h"

namespace lowbit {

namespace {

template <typename T>
PackedTensor make_tensor(std::string name, DType dtype, std::vector<int64_t> shape,
                         const std::vector<T>& values) {
  PackedTensor t{std::move(name), dtype, std::move(shape), {}};
  t.bytes.resize(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

DType scale_dtype(ScaleType t) {
  switch (t) {
    case ScaleType::kF32:
      return DType::F32;
    case ScaleType::kF16:
      return DType::F16;
    case ScaleType::kBF16:
      return DType::BF16;
    case ScaleType::kFP8E4M3:
      return DType::F8_E4M3;
  }
  return DType::F32;
}

// Scales in the dtype of t; the values are already rounded to it, so the conversion is exact.
PackedTensor scales_tensor(std::string name, std::vector<int64_t> shape,
                           const std::vector<float>& scales, ScaleType t) {
  switch (t) {
    case ScaleType::kF32:
      return make_tensor(std::move(name), DType::F32, std::move(shape), scales);
    case ScaleType::kF16:
    case ScaleType::kBF16: {
      std::vector<uint16_t> h(scales.size());
      for (size_t i = 0; i < h.size(); ++i) {
        h[i] = t == ScaleType::kF16 ? f32_to_f16(scales[i]) : f32_to_bf16(scales[i]);
      }
      return make_tensor(std::move(name), scale_dtype(t), std::move(shape), h);
    }
    case ScaleType::kFP8E4M3: {
      std::vector<uint8_t> b(scales.size());
      for (size_t i = 0; i < b.size(); ++i) b[i] = f32_to_fp8_e4m3(scales[i]);
      return make_tensor(std::move(name), DType::F8_E4M3, std::move(shape), b);
    }
  }
  return {};
}

const TensorInfo& require(const TensorLookup& lookup, const std::string& name,
                          const std::string& where) {
  const TensorInfo* t = lookup(name);
  if (t == nullptr) fail(where, "missing tensor {}", name);
  return *t;
}

std::string where_of(const TensorInfo& t) { return t.file.empty() ? t.name : t.file; }

void expect_shape(const TensorInfo& t, const std::vector<int64_t>& shape) {
  if (t.shape != shape) {
    fail(where_of(t), "tensor {} has shape [{}], expected [{}]", t.name, fmt::join(t.shape, ", "),
         fmt::join(shape, ", "));
  }
}

void expect_dtype(const TensorInfo& t, DType d) {
  if (t.dtype != d) {
    fail(where_of(t), "tensor {} has dtype {}, expected {}", t.name, dtype_name(t.dtype),
         dtype_name(d));
  }
}

int dim_as_int(const TensorInfo& t, size_t axis) {
  if (t.shape.size() != 2) {
    fail(where_of(t), "tensor {} has {} dimensions, expected 2", t.name, t.shape.size());
  }
  const int64_t d = t.shape[axis];
  if (d <= 0 || d > INT_MAX / 32) fail(where_of(t), "tensor {} has dimension {}", t.name, d);
  return static_cast<int>(d);
}

template <typename T>
std::vector<T> read_raw(const TensorInfo& t) {
  std::vector<T> v(t.nbytes / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t.data, v.size() * sizeof(T));
  return v;
}

// Scale values of a F32/F16/BF16/F8_E4M3 tensor, and the ScaleType that dtype means.
std::vector<float> read_scales(const TensorInfo& t, ScaleType* type) {
  const size_t n = static_cast<size_t>(t.numel());
  std::vector<float> v(n);
  switch (t.dtype) {
    case DType::F32:
      *type = ScaleType::kF32;
      return read_raw<float>(t);
    case DType::F16:
    case DType::BF16: {
      *type = t.dtype == DType::F16 ? ScaleType::kF16 : ScaleType::kBF16;
      const auto h = read_raw<uint16_t>(t);
      for (size_t i = 0; i < n; ++i) {
        v[i] = t.dtype == DType::F16 ? f16_to_f32(h[i]) : bf16_to_f32(h[i]);
      }
      return v;
    }
    case DType::F8_E4M3:
    case DType::U8:
      *type = ScaleType::kFP8E4M3;
      for (size_t i = 0; i < n; ++i) v[i] = fp8_e4m3_to_f32(t.data[i]);
      return v;
    default:
      fail(where_of(t), "tensor {} has dtype {}, expected F32, F16, BF16 or F8_E4M3", t.name,
           dtype_name(t.dtype));
  }
}

// Zero point of a group as an integer code; throws unless it is one.
int zero_code(const QuantizedWeight& w, const GroupParams& p, const std::string& where) {
  const float z = p.zero;
  if (!(z >= 0 && z <= static_cast<float>(int_maxq(w.scheme))) || z != std::floor(z)) {
    fail(where, "zero point {} is not an integer in [0, {}]", z, int_maxq(w.scheme));
  }
  return static_cast<int>(z);
}

std::vector<float> scales_of(const QuantizedWeight& w, bool transpose) {
  std::vector<float> s(w.params.size());
  for (int o = 0; o < w.out; ++o) {
    for (int g = 0; g < w.n_groups; ++g) {
      const float v = w.params[static_cast<size_t>(o) * w.n_groups + g].scale;
      s[transpose ? static_cast<size_t>(g) * w.out + o : static_cast<size_t>(o) * w.n_groups + g] =
          v;
    }
  }
  return s;
}

std::vector<int32_t> read_g_idx(const TensorInfo& t, int in) {
  expect_dtype(t, DType::I32);
  expect_shape(t, {in});
  return read_raw<int32_t>(t);
}

std::vector<int32_t> default_g_idx(const QuantScheme& s, int in) {
  std::vector<int32_t> g(in, 0);
  if (s.group_size > 0) {
    for (int i = 0; i < in; ++i) g[i] = i / s.group_size;
  }
  return g;
}

}  // namespace

bool gptq_v1_can_store(const QuantizedWeight& w) {
  for (const GroupParams& p : w.params) {
    if (p.zero < 1) return false;
  }
  return true;
}

std::vector<PackedTensor> to_gptq_tensors(const QuantizedWeight& w, const std::string& prefix,
                                          int version) {
  w.check(prefix);
  if (version != 1 && version != 2) fail(prefix, "GPTQ checkpoint format v{} is unknown", version);
  if (!gptq_layout_fits(w.scheme, w.out, w.in)) {
    fail(prefix, "{} [{}, {}] does not fit the GPTQ layout", scheme_name(w.scheme), w.out, w.in);
  }
  const int bits = w.scheme.bits, out = w.out, in = w.in, groups = w.n_groups;
  std::vector<uint8_t> zeros(static_cast<size_t>(groups) * out);
  for (int o = 0; o < out; ++o) {
    for (int g = 0; g < groups; ++g) {
      int z = zero_code(w, w.params[static_cast<size_t>(o) * groups + g], prefix);
      if (version == 1) {
        if (z == 0) {
          fail(prefix,
               "zero point 0 (row {}, group {}) cannot be stored in GPTQ format v1 "
               "(stores zero - 1); write gptq_v2",
               o, g);
        }
        --z;
      }
      zeros[static_cast<size_t>(g) * out + o] = static_cast<uint8_t>(z);
    }
  }
  std::vector<PackedTensor> t;
  t.push_back(make_tensor(prefix + ".qweight", DType::I32, {in * bits / 32, out},
                          pack_gptq_qweight(w.q.data(), out, in, bits)));
  t.push_back(make_tensor(prefix + ".qzeros", DType::I32, {groups, out * bits / 32},
                          pack_gptq_qzeros(zeros.data(), groups, out, bits)));
  t.push_back(
      scales_tensor(prefix + ".scales", {groups, out}, scales_of(w, true), ScaleType::kF16));
  t.push_back(make_tensor(prefix + ".g_idx", DType::I32, {in}, w.g_idx));
  return t;
}

QuantizedWeight from_gptq_tensors(const QuantScheme& s, const std::string& prefix,
                                  const TensorLookup& lookup, int version,
                                  std::optional<bool> desc_act) {
  const TensorInfo& qweight = require(lookup, prefix + ".qweight", prefix);
  const std::string where = where_of(qweight);
  validate_scheme(where, s);
  if (s.type != WeightType::kInt) fail(where, "GPTQ tensors hold int weights only");
  if (version != 1 && version != 2) fail(where, "GPTQ checkpoint format v{} is unknown", version);
  expect_dtype(qweight, DType::I32);
  const int rows = dim_as_int(qweight, 0), out = dim_as_int(qweight, 1), bits = s.bits;
  if ((static_cast<int64_t>(rows) * 32) % bits != 0) {
    fail(where, "{} has {} rows, not a whole number of {}-bit columns", qweight.name, rows, bits);
  }
  const int in = rows * 32 / bits;
  if ((static_cast<int64_t>(out) * bits) % 32 != 0) {
    fail(where, "{} outputs of {} bits cannot have packed zero points", out, bits);
  }
  QuantizedWeight w;
  w.scheme = s;
  w.out = out;
  w.in = in;
  w.n_groups = groups_per_row(s, in);
  const int groups = w.n_groups;

  const TensorInfo& qzeros = require(lookup, prefix + ".qzeros", where);
  expect_dtype(qzeros, DType::I32);
  expect_shape(qzeros, {groups, out * bits / 32});
  const TensorInfo& scales = require(lookup, prefix + ".scales", where);
  expect_shape(scales, {groups, out});
  const std::vector<float> scale_values = read_scales(scales, &w.scheme.scale_type);
  const TensorInfo* g_idx = lookup(prefix + ".g_idx");
  if (g_idx == nullptr && desc_act.value_or(false)) {
    fail(where,
         "quantization_config says desc_act (act-order) but {}.g_idx is missing: the column "
         "order is unknown",
         prefix);
  }
  w.g_idx = g_idx != nullptr ? read_g_idx(*g_idx, in) : default_g_idx(s, in);
  if (g_idx != nullptr && desc_act.has_value() && !*desc_act && w.g_idx != default_g_idx(s, in)) {
    fail(where, "{}.g_idx reorders the columns but quantization_config says desc_act is false",
         prefix);
  }

  w.q = unpack_gptq_qweight(read_raw<int32_t>(qweight).data(), out, in, bits);
  const std::vector<uint8_t> zeros =
      unpack_gptq_qzeros(read_raw<int32_t>(qzeros).data(), groups, out, bits);
  w.params.resize(static_cast<size_t>(out) * groups);
  for (int o = 0; o < out; ++o) {
    for (int g = 0; g < groups; ++g) {
      GroupParams& p = w.params[static_cast<size_t>(o) * groups + g];
      p.scale = scale_values[static_cast<size_t>(g) * out + o];
      // v1: loaders add 1 back (a stored 2^b − 1 thus reads as 2^b, as in their kernels).
      p.zero = static_cast<float>(zeros[static_cast<size_t>(g) * out + o] + (version == 1));
      if (s.sym && p.zero != static_cast<float>(1 << (bits - 1))) {
        fail(where,
             "quantization_config says sym but {}.qzeros holds zero point {} (row {}, group {}), "
             "not {}",
             prefix, p.zero, o, g, 1 << (bits - 1));
      }
    }
  }
  w.check(where + ": " + prefix);
  return w;
}

std::vector<PackedTensor> to_awq_tensors(const QuantizedWeight& w, const std::string& prefix) {
  w.check(prefix);
  std::string why;
  if (!awq_layout_fits(w.scheme, w.out, w.in, &why)) {
    fail(prefix, "{} [{}, {}] does not fit the AWQ GEMM layout: {}", scheme_name(w.scheme), w.out,
         w.in, why);
  }
  if (w.g_idx != default_g_idx(w.scheme, w.in)) {
    fail(prefix, "act-order (a g_idx column permutation) cannot be stored in the AWQ layout");
  }
  const int out = w.out, in = w.in, groups = w.n_groups;
  std::vector<uint8_t> codes(w.q.size());  // [in, out]
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i) {
      codes[static_cast<size_t>(i) * out + o] = w.q[static_cast<size_t>(o) * in + i];
    }
  }
  std::vector<uint8_t> zeros(static_cast<size_t>(groups) * out);
  for (int o = 0; o < out; ++o) {
    for (int g = 0; g < groups; ++g) {
      zeros[static_cast<size_t>(g) * out + o] =
          static_cast<uint8_t>(zero_code(w, w.params[static_cast<size_t>(o) * groups + g], prefix));
    }
  }
  std::vector<PackedTensor> t;
  t.push_back(
      make_tensor(prefix + ".qweight", DType::I32, {in, out / 8}, pack_awq(codes.data(), in, out)));
  t.push_back(make_tensor(prefix + ".qzeros", DType::I32, {groups, out / 8},
                          pack_awq(zeros.data(), groups, out)));
  t.push_back(
      scales_tensor(prefix + ".scales", {groups, out}, scales_of(w, true), ScaleType::kF16));
  return t;
}

QuantizedWeight from_awq_tensors(const QuantScheme& s, const std::string& prefix,
                                 const TensorLookup& lookup) {
  const TensorInfo& qweight = require(lookup, prefix + ".qweight", prefix);
  const std::string where = where_of(qweight);
  validate_scheme(where, s);
  if (s.type != WeightType::kInt || s.bits != 4) {
    fail(where, "AWQ GEMM tensors hold int4 weights, not {}", weight_type_name(s.type, s.bits));
  }
  expect_dtype(qweight, DType::I32);
  QuantizedWeight w;
  w.scheme = s;
  w.in = dim_as_int(qweight, 0);
  w.out = dim_as_int(qweight, 1) * 8;
  if (s.group_size > 0 && w.in % s.group_size != 0) {
    fail(where, "{} has {} input features, not a multiple of the group size {}", qweight.name, w.in,
         s.group_size);
  }
  w.n_groups = groups_per_row(s, w.in);
  const int out = w.out, in = w.in, groups = w.n_groups;
  const TensorInfo& qzeros = require(lookup, prefix + ".qzeros", where);
  expect_dtype(qzeros, DType::I32);
  expect_shape(qzeros, {groups, out / 8});
  const TensorInfo& scales = require(lookup, prefix + ".scales", where);
  expect_shape(scales, {groups, out});
  if (scales.dtype != DType::F16 && scales.dtype != DType::BF16 && scales.dtype != DType::F32) {
    fail(where, "tensor {} has dtype {}, expected F16", scales.name, dtype_name(scales.dtype));
  }
  const std::vector<float> scale_values = read_scales(scales, &w.scheme.scale_type);
  if (lookup(prefix + ".g_idx") != nullptr) {
    fail(where, "{}.g_idx is present but the AWQ layout has no act-order (column permutation)",
         prefix);
  }
  const std::vector<uint8_t> codes = unpack_awq(read_raw<int32_t>(qweight).data(), in, out);
  w.q.resize(codes.size());
  for (int i = 0; i < in; ++i) {
    for (int o = 0; o < out; ++o) {
      w.q[static_cast<size_t>(o) * in + i] = codes[static_cast<size_t>(i) * out + o];
    }
  }
  const std::vector<uint8_t> zeros = unpack_awq(read_raw<int32_t>(qzeros).data(), groups, out);
  w.params.resize(static_cast<size_t>(out) * groups);
  for (int o = 0; o < out; ++o) {
    for (int g = 0; g < groups; ++g) {
      GroupParams& p = w.params[static_cast<size_t>(o) * groups + g];
      p.scale = scale_values[static_cast<size_t>(g) * out + o];
      p.zero = static_cast<float>(zeros[static_cast<size_t>(g) * out + o]);
      if (s.sym && p.zero != 8.0f) {
        fail(where,
             "module is symmetric but {}.qzeros holds zero point {} (row {}, group {}), not 8",
             prefix, p.zero, o, g);
      }
    }
  }
  w.g_idx = default_g_idx(s, in);
  w.check(where + ": " + prefix);
  return w;
}

std::vector<PackedTensor> to_lowbit_tensors(const QuantizedWeight& w, const std::string& prefix) {
  w.check(prefix);
  if (w.scheme.type == WeightType::kGgml) {  // the encoded rows, ggml's blocks as they are
    return {make_tensor(prefix + ".qweight", DType::U8,
                        {w.out, static_cast<int64_t>(ggml_row_bytes(w.scheme, w.in))}, w.blocks)};
  }
  const bool has_zeros = w.scheme.type == WeightType::kInt && !w.scheme.sym;
  std::vector<PackedTensor> t;
  t.push_back(make_tensor(prefix + ".qweight", DType::U8,
                          {w.out, static_cast<int64_t>(packed_row_bytes(w.in, w.scheme.bits))},
                          pack_rows(w.q.data(), w.out, w.in, w.scheme.bits)));
  t.push_back(scales_tensor(prefix + ".scales", {w.out, w.n_groups}, scales_of(w, false),
                            w.scheme.scale_type));
  if (has_zeros) {
    std::vector<uint8_t> zeros(w.params.size());
    for (size_t i = 0; i < zeros.size(); ++i) {
      zeros[i] = static_cast<uint8_t>(zero_code(w, w.params[i], prefix));
    }
    t.push_back(make_tensor(prefix + ".zeros", DType::U8, {w.out, w.n_groups}, zeros));
  } else if (w.scheme.type == WeightType::kInt) {
    const float implied = static_cast<float>(1 << (w.scheme.bits - 1));
    for (const GroupParams& p : w.params) {
      if (p.zero != implied) fail(prefix, "symmetric zero point {} is not {}", p.zero, implied);
    }
  }
  t.push_back(make_tensor(prefix + ".g_idx", DType::I32, {w.in}, w.g_idx));
  return t;
}

QuantizedWeight from_lowbit_tensors(const QuantScheme& s, const std::string& prefix,
                                    const TensorLookup& lookup) {
  const TensorInfo& qweight = require(lookup, prefix + ".qweight", prefix);
  const std::string where = where_of(qweight);
  validate_scheme(where, s);
  expect_dtype(qweight, DType::U8);
  if (s.type == WeightType::kGgml) {
    const int64_t bb = gguf::block_bytes(s.ggml);
    if (qweight.shape.size() != 2 || qweight.shape[0] <= 0 || qweight.shape[1] <= 0 ||
        qweight.shape[1] % bb != 0 || qweight.shape[1] / bb * s.group_size > INT_MAX / 32) {
      fail(where, "tensor {} must have shape [out, whole {} blocks of {} bytes]", qweight.name,
           gguf::type_name(s.ggml), bb);
    }
    QuantizedWeight w;
    w.scheme = s;
    w.out = dim_as_int(qweight, 0);
    w.in = static_cast<int>(qweight.shape[1] / bb * s.group_size);
    w.n_groups = groups_per_row(s, w.in);
    w.g_idx.resize(static_cast<size_t>(w.in));
    for (int i = 0; i < w.in; ++i) w.g_idx[static_cast<size_t>(i)] = i / s.group_size;
    w.blocks = read_raw<uint8_t>(qweight);
    // Every block's scales must decode to finite values (a hostile file could hold NaN/Inf).
    std::vector<float> row(static_cast<size_t>(w.in));
    const size_t rb = ggml_row_bytes(s, w.in);
    for (int o = 0; o < w.out; ++o) {
      gguf::dequantize_row(s.ggml, &w.blocks[static_cast<size_t>(o) * rb], row.data(), w.in);
      for (float v : row)
        if (!std::isfinite(v)) fail(where, "{} row {} decodes to a non-finite value", prefix, o);
    }
    return w;
  }
  const TensorInfo& g_idx = require(lookup, prefix + ".g_idx", where);
  if (g_idx.shape.size() != 1 || g_idx.shape[0] <= 0 || g_idx.shape[0] > INT_MAX / 32) {
    fail(where, "tensor {} must have shape [in]", g_idx.name);
  }
  QuantizedWeight w;
  w.scheme = s;
  w.in = static_cast<int>(g_idx.shape[0]);
  w.out = dim_as_int(qweight, 0);
  w.n_groups = groups_per_row(s, w.in);
  expect_shape(qweight, {w.out, static_cast<int64_t>(packed_row_bytes(w.in, s.bits))});
  w.g_idx = read_g_idx(g_idx, w.in);
  const TensorInfo& scales = require(lookup, prefix + ".scales", where);
  expect_shape(scales, {w.out, w.n_groups});
  const std::vector<float> scale_values = read_scales(scales, &w.scheme.scale_type);
  w.q = unpack_rows(qweight.data, w.out, w.in, s.bits);
  w.params.resize(scale_values.size());
  std::vector<uint8_t> zeros;
  if ((s.type != WeightType::kInt || s.sym) && lookup(prefix + ".zeros") != nullptr) {
    fail(where, "{}.zeros is present but the module's scheme ({}) has no zero points", prefix,
         scheme_name(s));
  }
  if (s.type == WeightType::kInt && !s.sym) {
    const TensorInfo& z = require(lookup, prefix + ".zeros", where);
    expect_dtype(z, DType::U8);
    expect_shape(z, {w.out, w.n_groups});
    zeros = read_raw<uint8_t>(z);
  }
  for (size_t i = 0; i < w.params.size(); ++i) {
    w.params[i].scale = scale_values[i];
    if (!zeros.empty()) {
      if (zeros[i] > int_maxq(s)) fail(where, "zero point {} exceeds {}", zeros[i], int_maxq(s));
      w.params[i].zero = zeros[i];
    } else if (s.type == WeightType::kInt) {
      w.params[i].zero = static_cast<float>(1 << (s.bits - 1));
    }
  }
  w.check(where + ": " + prefix);
  return w;
}

nlohmann::json gptq_quantization_config(const QuantScheme& s, bool desc_act, bool static_groups,
                                        int version) {
  validate_scheme("gptq_quantization_config", s);
  if (s.type != WeightType::kInt) {
    fail("gptq_quantization_config", "{} cannot be written as GPTQ", scheme_name(s));
  }
  return {
      {"quant_method", "gptq"},
      {"bits", s.bits},
      {"group_size", s.group_size},
      {"desc_act", desc_act},
      {"static_groups", static_groups},
      {"sym", s.sym},
      {"true_sequential", true},
      {"lm_head", false},
      {"checkpoint_format", version == 2 ? "gptq_v2" : "gptq"},
      {"pack_dtype", "int32"},
      {"meta", {{"quantizer", {"lowbit:0.1.0"}}, {"int4_clip", s.int4_clip}}},
  };
}

nlohmann::json lowbit_quantization_config(const QuantScheme& s, bool desc_act) {
  validate_scheme("lowbit_quantization_config", s);
  return {
      {"desc_act", desc_act},
      {"quant_method", "lowbit"},
      {"format_version", 1},
      {"weight_type", weight_type_name(s)},
      {"bits", s.bits},
      {"group_size", s.group_size},
      {"sym", s.sym || s.type != WeightType::kInt},
      {"int4_clip", s.int4_clip && s.type == WeightType::kInt},
      {"scale_dtype", scale_type_name(s.scale_type)},
      {"packing", "uint8 rows along input features, low bits first"},
  };
}

nlohmann::json awq_quantization_config(const QuantScheme& s,
                                       const std::vector<std::string>& not_converted) {
  validate_scheme("awq_quantization_config", s);
  if (s.type != WeightType::kInt || s.bits != 4) {
    fail("awq_quantization_config", "{} cannot be written as AWQ (int4 only)", scheme_name(s));
  }
  nlohmann::json qc = {{"quant_method", "awq"},
                       {"bits", 4},
                       {"group_size", s.group_size},
                       {"zero_point", true},
                       {"version", "gemm"}};
  if (!not_converted.empty()) qc["modules_to_not_convert"] = not_converted;
  return qc;
}

QuantScheme scheme_from_quantization_config(const std::string& where, const nlohmann::json& cfg,
                                            int* gptq_version) {
  if (!cfg.is_object()) fail(where, "quantization_config is not an object");
  const auto get = [&](const char* key) -> const nlohmann::json& {
    if (!cfg.contains(key)) fail(where, "quantization_config has no '{}'", key);
    return cfg.at(key);
  };
  try {
    const std::string method = get("quant_method").get<std::string>();
    QuantScheme s;
    if (method == "awq") {
      // AutoAWQ's own keys (quant_config.json) or transformers' (config.json).
      const char* bits_key = cfg.contains("bits") ? "bits" : "w_bit";
      const char* group_key = cfg.contains("group_size") ? "group_size" : "q_group_size";
      s.type = WeightType::kInt;
      s.bits = json_to_int(where, get(bits_key), bits_key);
      s.group_size = json_to_int(where, get(group_key), group_key);
      s.sym = false;
      s.scale_type = ScaleType::kF16;
      if (s.bits != 4)
        fail(where, "AWQ with {} bits is not supported (lowbit reads 4-bit)", s.bits);
      if (!cfg.value("zero_point", true))
        fail(where, "AWQ zero_point false is not supported (GEMM checkpoints store zero points)");
      std::string version = cfg.value("version", std::string("gemm"));
      for (char& c : version) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (version != "gemm") {
        fail(where,
             "AWQ version '{}' is not supported (lowbit reads the gemm packing; gemv, gemv_fast, "
             "marlin, exllama and ipex pack differently)",
             version);
      }
      validate_scheme(where, s);
      return s;
    }
    s.group_size = json_to_int(where, get("group_size"), "group_size");
    if (method == "gptq") {
      s.type = WeightType::kInt;
      s.bits = json_to_int(where, get("bits"), "bits");
      s.sym = cfg.value("sym", true);
      s.scale_type = ScaleType::kF16;
      const std::string fmt = cfg.value("checkpoint_format", std::string("gptq"));
      if (fmt != "gptq" && fmt != "gptq_v2") fail(where, "checkpoint_format '{}' is unknown", fmt);
      if (gptq_version != nullptr) *gptq_version = fmt == "gptq_v2" ? 2 : 1;
    } else if (method == "lowbit") {
      apply_weight_type(where, get("weight_type").get<std::string>(), &s);
      s.sym = get("sym").get<bool>();
      s.int4_clip = cfg.value("int4_clip", false);
      s.scale_type = parse_scale_type(where, get("scale_dtype").get<std::string>());
      if (json_to_int(where, get("bits"), "bits") != s.bits)
        fail(where, "bits do not match the weight type");
    } else {
      fail(where, "quant_method '{}' is not gptq, lowbit or awq", method);
    }
    validate_scheme(where, s);
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail(where, "bad quantization_config: {}", json_error_text(e));
  }
}

bool ct_int8_fits(const QuantScheme& s) {
  return s.type == WeightType::kInt && s.bits == 8 && s.sym && !s.int4_clip && s.group_size == -1;
}

std::vector<PackedTensor> to_ct_int8_tensors(const QuantizedWeight& w, const std::string& prefix) {
  if (!ct_int8_fits(w.scheme))
    fail(prefix,
         "compressed-tensors int-quantized holds int8 per-channel symmetric weights, not {}",
         scheme_name(w.scheme));
  std::vector<int8_t> q(w.q.size());
  for (size_t i = 0; i < q.size(); ++i) q[i] = static_cast<int8_t>(static_cast<int>(w.q[i]) - 128);
  std::vector<float> scales(static_cast<size_t>(w.out));
  for (int o = 0; o < w.out; ++o)
    scales[static_cast<size_t>(o)] = w.params[static_cast<size_t>(o)].scale;
  std::vector<PackedTensor> t;
  t.push_back(make_tensor(prefix + ".weight", DType::I8, {w.out, w.in}, q));
  t.push_back(make_tensor(prefix + ".weight_scale", DType::F32, {w.out, 1}, scales));
  return t;
}

QuantizedWeight from_ct_int8_tensors(const std::string& prefix, const TensorLookup& lookup) {
  const TensorInfo& weight = require(lookup, prefix + ".weight", prefix);
  const std::string where = where_of(weight);
  expect_dtype(weight, DType::I8);
  if (weight.shape.size() != 2) fail(where, "tensor {} must have shape [out, in]", weight.name);
  QuantizedWeight w;
  w.scheme.type = WeightType::kInt;
  w.scheme.bits = 8;
  w.scheme.sym = true;
  w.scheme.group_size = -1;
  w.out = dim_as_int(weight, 0);
  w.in = dim_as_int(weight, 1);
  w.n_groups = 1;
  const TensorInfo& sc = require(lookup, prefix + ".weight_scale", where);
  expect_shape(sc, {w.out, 1});
  const std::vector<float> scales = read_scales(sc, &w.scheme.scale_type);
  const std::vector<int8_t> q = read_raw<int8_t>(weight);
  w.q.resize(q.size());
  for (size_t i = 0; i < q.size(); ++i) w.q[i] = static_cast<uint8_t>(static_cast<int>(q[i]) + 128);
  w.params.resize(static_cast<size_t>(w.out));
  for (int o = 0; o < w.out; ++o) {
    w.params[static_cast<size_t>(o)].scale = scales[static_cast<size_t>(o)];
    w.params[static_cast<size_t>(o)].zero = 128.0f;
  }
  w.g_idx.assign(static_cast<size_t>(w.in), 0);
  w.check(where + ": " + prefix);
  return w;
}

}  // namespace lowbit
