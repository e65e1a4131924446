#include "lowbit/formats/pack.h"

#include <fmt/format.h>

#include <cstring>

#include "lowbit/util/error.h"

namespace lowbit {

namespace {

// Writes `bits` low bits of v at bit position pos of a stream of 32-bit words, each word at
// words[index * stride].
inline void put_bits(uint32_t* words, size_t stride, size_t pos, int bits, uint32_t v) {
  const size_t w = pos >> 5;
  const unsigned sh = static_cast<unsigned>(pos & 31);
  words[w * stride] |= v << sh;
  if (sh + static_cast<unsigned>(bits) > 32) words[(w + 1) * stride] |= v >> (32 - sh);
}

inline uint32_t get_bits(const uint32_t* words, size_t stride, size_t pos, int bits) {
  const size_t w = pos >> 5;
  const unsigned sh = static_cast<unsigned>(pos & 31);
  uint64_t v = words[w * stride] >> sh;
  if (sh + static_cast<unsigned>(bits) > 32) {
    v |= static_cast<uint64_t>(words[(w + 1) * stride]) << (32 - sh);
  }
  return static_cast<uint32_t>(v) & ((1u << bits) - 1);
}

void check_bits(const char* where, int bits) {
  if (bits < 1 || bits > 8) fail(where, "cannot pack {}-bit codes", bits);
}

void check_multiple(const char* where, int n, int bits) {
  if ((static_cast<int64_t>(n) * bits) % 32 != 0) {
    fail(where, "{} {}-bit codes do not fill whole int32 words", n, bits);
  }
}

}  // namespace

std::vector<int32_t> pack_gptq_qweight(const uint8_t* codes, int out, int in, int bits) {
  check_bits("pack_gptq_qweight", bits);
  check_multiple("pack_gptq_qweight", in, bits);
  const size_t rows = static_cast<size_t>(in) * bits / 32;
  std::vector<uint32_t> words(rows * out, 0);
  const uint32_t mask = (1u << bits) - 1;
  for (int o = 0; o < out; ++o) {
    const uint8_t* row = codes + static_cast<size_t>(o) * in;
    for (int i = 0; i < in; ++i) {
      put_bits(words.data() + o, out, static_cast<size_t>(i) * bits, bits, row[i] & mask);
    }
  }
  std::vector<int32_t> result(words.size());
  std::memcpy(result.data(), words.data(), words.size() * 4);
  return result;
}

std::vector<uint8_t> unpack_gptq_qweight(const int32_t* qweight, int out, int in, int bits) {
  check_bits("unpack_gptq_qweight", bits);
  check_multiple("unpack_gptq_qweight", in, bits);
  const auto* words = reinterpret_cast<const uint32_t*>(qweight);
  std::vector<uint8_t> codes(static_cast<size_t>(out) * in);
  for (int o = 0; o < out; ++o) {
    for (int i = 0; i < in; ++i) {
      codes[static_cast<size_t>(o) * in + i] =
          static_cast<uint8_t>(get_bits(words + o, out, static_cast<size_t>(i) * bits, bits));
    }
  }
  return codes;
}

std::vector<int32_t> pack_gptq_qzeros(const uint8_t* zeros, int n_groups, int out, int bits) {
  check_bits("pack_gptq_qzeros", bits);
  check_multiple("pack_gptq_qzeros", out, bits);
  const size_t cols = static_cast<size_t>(out) * bits / 32;
  std::vector<uint32_t> words(cols * n_groups, 0);
  const uint32_t mask = (1u << bits) - 1;
  for (int g = 0; g < n_groups; ++g) {
    for (int o = 0; o < out; ++o) {
      put_bits(words.data() + g * cols, 1, static_cast<size_t>(o) * bits, bits,
               zeros[static_cast<size_t>(g) * out + o] & mask);
    }
  }
  std::vector<int32_t> result(words.size());
  std::memcpy(result.data(), words.data(), words.size() * 4);
  return result;
}

std::vector<uint8_t> unpack_gptq_qzeros(const int32_t* qzeros, int n_groups, int out, int bits) {
  check_bits("unpack_gptq_qzeros", bits);
  check_multiple("unpack_gptq_qzeros", out, bits);
  const size_t cols = static_cast<size_t>(out) * bits / 32;
  const auto* words = reinterpret_cast<const uint32_t*>(qzeros);
  std::vector<uint8_t> zeros(static_cast<size_t>(n_groups) * out);
  for (int g = 0; g < n_groups; ++g) {
    for (int o = 0; o < out; ++o) {
      zeros[static_cast<size_t>(g) * out + o] =
          static_cast<uint8_t>(get_bits(words + g * cols, 1, static_cast<size_t>(o) * bits, bits));
    }
  }
  return zeros;
}

size_t packed_row_bytes(int cols, int bits) { return (static_cast<size_t>(cols) * bits + 7) / 8; }

std::vector<uint8_t> pack_rows(const uint8_t* codes, int rows, int cols, int bits) {
  check_bits("pack_rows", bits);
  const size_t row_bytes = packed_row_bytes(cols, bits);
  std::vector<uint8_t> packed(row_bytes * rows, 0);
  const unsigned mask = (1u << bits) - 1;
  for (int r = 0; r < rows; ++r) {
    uint8_t* dst = packed.data() + r * row_bytes;
    for (int c = 0; c < cols; ++c) {
      const size_t pos = static_cast<size_t>(c) * bits;
      const unsigned v = codes[static_cast<size_t>(r) * cols + c] & mask;
      const unsigned sh = pos & 7;
      dst[pos >> 3] |= static_cast<uint8_t>(v << sh);
      if (sh + bits > 8) dst[(pos >> 3) + 1] |= static_cast<uint8_t>(v >> (8 - sh));
    }
  }
  return packed;
}

std::vector<uint8_t> unpack_rows(const uint8_t* packed, int rows, int cols, int bits) {
  check_bits("unpack_rows", bits);
  const size_t row_bytes = packed_row_bytes(cols, bits);
  std::vector<uint8_t> codes(static_cast<size_t>(rows) * cols);
  const unsigned mask = (1u << bits) - 1;
  for (int r = 0; r < rows; ++r) {
    const uint8_t* src = packed + r * row_bytes;
    for (int c = 0; c < cols; ++c) {
      const size_t pos = static_cast<size_t>(c) * bits;
      const unsigned sh = pos & 7;
      unsigned v = src[pos >> 3] >> sh;
      if (sh + bits > 8) v |= static_cast<unsigned>(src[(pos >> 3) + 1]) << (8 - sh);
      codes[static_cast<size_t>(r) * cols + c] = static_cast<uint8_t>(v & mask);
    }
  }
  return codes;
}

std::vector<int32_t> pack_awq(const uint8_t* codes, int rows, int cols) {
  if (cols % 8 != 0) fail("pack_awq", "{} columns are not a multiple of 8", cols);
  const int words = cols / 8;
  std::vector<int32_t> out(static_cast<size_t>(rows) * words);
  for (int r = 0; r < rows; ++r) {
    const uint8_t* row = codes + static_cast<size_t>(r) * cols;
    for (int j = 0; j < words; ++j) {
      uint32_t w = 0;
      for (int i = 0; i < 8; ++i) {
        const uint8_t c = row[8 * j + kAwqOrder[i]];
        if (c > 15) fail("pack_awq", "code {} does not fit in 4 bits", c);
        w |= static_cast<uint32_t>(c) << (4 * i);
      }
      out[static_cast<size_t>(r) * words + j] = static_cast<int32_t>(w);
    }
  }
  return out;
}

std::vector<uint8_t> unpack_awq(const int32_t* words, int rows, int cols) {
  if (cols % 8 != 0) fail("unpack_awq", "{} columns are not a multiple of 8", cols);
  const int n = cols / 8;
  std::vector<uint8_t> codes(static_cast<size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r) {
    uint8_t* row = codes.data() + static_cast<size_t>(r) * cols;
    for (int j = 0; j < n; ++j) {
      const uint32_t w = static_cast<uint32_t>(words[static_cast<size_t>(r) * n + j]);
      for (int i = 0; i < 8; ++i)
        row[8 * j + kAwqOrder[i]] = static_cast<uint8_t>((w >> (4 * i)) & 15);
    }
  }
  return codes;
}

bool awq_layout_fits(const QuantScheme& s, int out, int in, std::string* why) {
  auto no = [&](std::string reason) {
    if (why != nullptr) *why = std::move(reason);
    return false;
  };
  if (s.type != WeightType::kInt || s.bits != 4)
    return no(fmt::format("AWQ GEMM holds int4 weights, not {}", weight_type_name(s.type, s.bits)));
  if (s.scale_type != ScaleType::kF16)
    return no(fmt::format("AWQ GEMM stores f16 scales, not {}", scale_type_name(s.scale_type)));
  if (out <= 0 || in <= 0) return no("empty weight");
  if (out % 8 != 0) return no(fmt::format("{} output features are not a multiple of 8", out));
  if (s.group_size > 0 && in % s.group_size != 0)
    return no(fmt::format("group size {} does not divide {} input features", s.group_size, in));
  if (s.group_size <= 0 && s.group_size != -1)
    return no(fmt::format("group size {} is invalid", s.group_size));
  return true;
}

bool gptq_layout_fits(const QuantScheme& s, int out, int in) {
  if (s.type != WeightType::kInt || s.scale_type != ScaleType::kF16) return false;
  if (s.bits != 2 && s.bits != 3 && s.bits != 4 && s.bits != 8) return false;
  if (out <= 0 || in <= 0) return false;
  if ((static_cast<int64_t>(in) * s.bits) % 32 != 0) return false;
  if ((static_cast<int64_t>(out) * s.bits) % 32 != 0) return false;
  if (s.group_size > 0 && in % s.group_size != 0) return false;
  return s.group_size > 0 || s.group_size == -1;
}

std::optional<QuantScheme> nearest_fitting_scheme(const QuantScheme& s, int out, int in) {
  if (s.type != WeightType::kInt) return std::nullopt;
  QuantScheme f16 = s;
  f16.scale_type = ScaleType::kF16;
  QuantScheme per_channel = f16;
  per_channel.group_size = -1;
  QuantScheme int8 = f16;
  int8.bits = 8;
  QuantScheme int8_per_channel = int8;
  int8_per_channel.group_size = -1;
  for (const QuantScheme& c : {s, f16, per_channel, int8, int8_per_channel}) {
    if (gptq_layout_fits(c, out, in)) return c;
  }
  return std::nullopt;
}

}  // namespace lowbit
