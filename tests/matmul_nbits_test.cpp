// MatMulNBits layout (formats/matmul_nbits.h): pack -> unpack identity, dequantization per the
// operator's spec equal to QuantizedWeight::dequantize(), byte order, what is refused.
#include "lowbit/formats/matmul_nbits.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "test_util.h"

namespace lowbit {
namespace {

// A random quantized weight [out, in] in scheme s; `act_order` shuffles which columns form a group.
QuantizedWeight random_weight(const QuantScheme& s, int out, int in, bool act_order,
                              uint32_t seed) {
  std::mt19937 rng(seed);
  QuantizedWeight w;
  w.scheme = s;
  w.out = out;
  w.in = in;
  w.n_groups = groups_per_row(s, in);
  const int G = s.group_size < 0 ? in : s.group_size;
  std::vector<int> perm(static_cast<size_t>(in));
  std::iota(perm.begin(), perm.end(), 0);
  if (act_order) std::shuffle(perm.begin(), perm.end(), rng);
  w.g_idx.resize(static_cast<size_t>(in));
  for (int j = 0; j < in; ++j) w.g_idx[static_cast<size_t>(perm[static_cast<size_t>(j)])] = j / G;
  const int maxq = (1 << s.bits) - 1;
  std::uniform_int_distribution<int> code(0, maxq);
  std::uniform_real_distribution<float> scale(0.001f, 0.1f);
  w.q.resize(static_cast<size_t>(out) * in);
  for (auto& c : w.q) c = static_cast<uint8_t>(code(rng));
  w.params.resize(static_cast<size_t>(out) * w.n_groups);
  for (auto& p : w.params) {
    p.scale = round_scale(s.scale_type, scale(rng));
    p.zero = s.sym ? static_cast<float>(1 << (s.bits - 1)) : static_cast<float>(code(rng));
  }
  w.check("random_weight");
  return w;
}

void expect_same_weight(const QuantizedWeight& a, const QuantizedWeight& b) {
  EXPECT_EQ(a.out, b.out);
  EXPECT_EQ(a.in, b.in);
  EXPECT_EQ(a.n_groups, b.n_groups);
  EXPECT_EQ(a.scheme.bits, b.scheme.bits);
  EXPECT_EQ(a.scheme.group_size, b.scheme.group_size);
  EXPECT_EQ(a.scheme.sym, b.scheme.sym);
  EXPECT_EQ(a.q, b.q);
  EXPECT_EQ(a.g_idx, b.g_idx);
  ASSERT_EQ(a.params.size(), b.params.size());
  for (size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_EQ(a.params[i].scale, b.params[i].scale) << i;
    EXPECT_EQ(a.params[i].zero, b.params[i].zero) << i;
  }
}

struct Case {
  int bits, group;
  bool sym, act_order;
  int out, in;
};

TEST(OnnxExportMatMulNBits, PackUnpackIdentityAndSpecDequantization) {
  const Case cases[] = {
      {4, 32, false, false, 24, 64}, {4, 32, true, false, 24, 64}, {8, 64, false, false, 16, 128},
      {8, 32, true, false, 8, 96},   {4, 32, false, true, 24, 96}, {4, 128, true, true, 8, 256},
      {8, 16, false, true, 8, 48},   {2, 32, false, false, 8, 64}, {4, 32, false, false, 8, 80},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << "int" << c.bits << " g" << c.group << (c.sym ? " sym" : " asym")
                 << (c.act_order ? " act-order" : "") << " [" << c.out << ", " << c.in << "]");
    const QuantScheme s = test::int_scheme(c.bits, c.group, c.sym);
    const QuantizedWeight w = random_weight(s, c.out, c.in, c.act_order, 7u + c.bits + c.group);
    const MatMulNBitsWeight m = to_matmul_nbits("w", w);
    EXPECT_EQ(m.K, c.in);
    EXPECT_EQ(m.N, c.out);
    EXPECT_EQ(m.bits, c.bits);
    EXPECT_EQ(m.block_size, c.group);
    EXPECT_EQ(m.zero_points.empty(), c.sym);
    EXPECT_EQ(m.perm.empty(), !c.act_order);
    EXPECT_TRUE(m.g_idx.empty());
    EXPECT_EQ(m.B.size(), static_cast<size_t>(c.out) * m.k_blocks() * (c.group * c.bits / 8));
    expect_same_weight(from_matmul_nbits("w", m), w);
    EXPECT_EQ(dequantize_matmul_nbits("w", m), w.dequantize());
  }
}

TEST(OnnxExportMatMulNBits, ByteLayoutFollowsTheSpec) {
  // One row, K = 40 (two blocks of 32, the second padded): code k = k % 16, asym zeros 3 and 12.
  QuantizedWeight w;
  w.scheme = test::int_scheme(4, 32, false);
  w.out = 1;
  w.in = 40;
  w.n_groups = 2;
  for (int k = 0; k < 40; ++k) {
    w.q.push_back(static_cast<uint8_t>(k % 16));
    w.g_idx.push_back(k / 32);
  }
  w.params = {{0.5f, 3.0f}, {0.25f, 12.0f}};
  const MatMulNBitsWeight m = to_matmul_nbits("w", w);
  ASSERT_EQ(m.B.size(), 2u * 16u);
  EXPECT_EQ(m.B[0], 0x10);  // codes 0 (low nibble) and 1 (high nibble)
  EXPECT_EQ(m.B[1], 0x32);
  EXPECT_EQ(m.B[16], 0x10);  // block 1 starts at column 32: code 0, 1
  EXPECT_EQ(m.B[20], 0xCC);  // padding (columns 40, 41) holds the block's zero point
  ASSERT_EQ(m.zero_points.size(), 1u);
  EXPECT_EQ(m.zero_points[0], 0xC3);  // block 0's zero in the low nibble
  EXPECT_EQ(m.scales, (std::vector<float>{0.5f, 0.25f}));
}

TEST(OnnxExportMatMulNBits, MappedSchemesDequantizeTheSame) {
  // int3 -> 4-bit codes with explicit zeros; g48 -> blocks of 16; per-channel K=288 -> blocks of
  // 32; per-channel K=40 -> one block of 64.
  const Case cases[] = {{3, 128, true, false, 8, 256}, {3, 32, false, true, 8, 64},
                        {4, 48, false, false, 8, 96},  {4, -1, false, false, 8, 288},
                        {8, -1, true, false, 4, 40},   {4, 48, true, true, 8, 96}};
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message()
                 << "int" << c.bits << " g" << c.group << " [" << c.out << ", " << c.in << "]");
    const QuantizedWeight w =
        random_weight(test::int_scheme(c.bits, c.group, c.sym), c.out, c.in, c.act_order, 11);
    const MatMulNBitsWeight m = to_matmul_nbits("w", w);
    EXPECT_EQ(m.bits, c.bits == 3 ? 4 : c.bits);
    EXPECT_GE(m.block_size, 16);
    EXPECT_EQ(m.block_size & (m.block_size - 1), 0);
    if (c.bits == 3) {
      EXPECT_FALSE(m.zero_points.empty());
    }
    EXPECT_EQ(dequantize_matmul_nbits("w", m), w.dequantize());
    EXPECT_EQ(from_matmul_nbits("w", m).dequantize(), w.dequantize());
  }
  const QuantizedWeight pc = random_weight(test::int_scheme(4, -1), 4, 288, false, 3);
  EXPECT_EQ(to_matmul_nbits("w", pc).block_size, 32);
  const QuantizedWeight g48 = random_weight(test::int_scheme(4, 48), 4, 96, false, 3);
  EXPECT_EQ(to_matmul_nbits("w", g48).block_size, 16);
}

TEST(OnnxExportMatMulNBits, ReadsForeignGIdx) {
  // A graph with the deprecated g_idx input: code at its natural position, block g_idx[k].
  const QuantizedWeight w = random_weight(test::int_scheme(4, 32, false), 4, 64, false, 5);
  MatMulNBitsWeight m = to_matmul_nbits("w", w);
  std::mt19937 rng(1);
  m.g_idx.resize(64);
  for (auto& g : m.g_idx) g = static_cast<int32_t>(rng() % 2);
  const QuantizedWeight back = from_matmul_nbits("w", m);
  EXPECT_EQ(back.dequantize(), dequantize_matmul_nbits("w", m));
  for (int k = 0; k < 64; ++k)
    EXPECT_EQ(back.g_idx[static_cast<size_t>(k)], m.g_idx[static_cast<size_t>(k)]);
}

TEST(OnnxExportMatMulNBits, RefusesWhatItCannotExpress) {
  QuantScheme nf4;
  nf4.type = WeightType::kNF4;
  nf4.group_size = 32;
  QuantizedWeight w = random_weight(test::int_scheme(4, 32), 4, 64, false, 1);
  w.scheme = nf4;
  EXPECT_NE(test::error_of([&] { to_matmul_nbits("q_proj", w); }).find("nf4 weights cannot"),
            std::string::npos);
  const QuantizedWeight g24 = random_weight(test::int_scheme(4, 24), 4, 96, false, 1);
  EXPECT_NE(test::error_of([&] { to_matmul_nbits("q_proj", g24); }).find("group size 24"),
            std::string::npos);
  QuantizedWeight frac = random_weight(test::int_scheme(4, 32), 4, 64, false, 1);
  frac.params[3].zero = 2.5f;
  EXPECT_NE(test::error_of([&] { to_matmul_nbits("q_proj", frac); }).find("zero point 2.5"),
            std::string::npos);
  // Groups that are not consecutive runs of G columns in any order (group 0 holds 3 columns).
  QuantizedWeight uneven = random_weight(test::int_scheme(4, 32), 4, 64, false, 1);
  uneven.g_idx[40] = 0;
  EXPECT_NE(test::error_of([&] { to_matmul_nbits("q_proj", uneven); }).find("consecutive groups"),
            std::string::npos);
}

TEST(OnnxExportMatMulNBits, RejectsInconsistentTensors) {
  const MatMulNBitsWeight good =
      to_matmul_nbits("w", random_weight(test::int_scheme(4, 32), 4, 64, true, 2));
  auto err = [](MatMulNBitsWeight m) {
    return test::error_of([&] { from_matmul_nbits("model.onnx: node q", m); });
  };
  MatMulNBitsWeight m = good;
  m.B.pop_back();
  EXPECT_NE(err(m).find("B has"), std::string::npos);
  m = good;
  m.block_size = 24;
  EXPECT_NE(err(m).find("block_size 24"), std::string::npos);
  m = good;
  m.bits = 3;
  EXPECT_NE(err(m).find("bits 3"), std::string::npos);
  m = good;
  m.scales.resize(3);
  EXPECT_NE(err(m).find("scales has"), std::string::npos);
  m = good;
  m.zero_points.resize(1);
  EXPECT_NE(err(m).find("zero_points has"), std::string::npos);
  m = good;
  m.perm[0] = m.perm[1];
  EXPECT_NE(err(m).find("not a permutation"), std::string::npos);
  m = good;
  m.perm.clear();
  m.g_idx.assign(64, 7);
  EXPECT_NE(err(m).find("g_idx entry 7"), std::string::npos);
  m = good;
  m.K = -1;
  EXPECT_NE(err(m).find("out of range"), std::string::npos);
  EXPECT_EQ(err(good), "(no error)");
  EXPECT_EQ(err(m).rfind("model.onnx: node q: ", 0), 0u);
}

}  // namespace
}  // namespace lowbit
