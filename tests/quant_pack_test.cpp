// Bit packing of quantized weights: hand-computed GPTQ words, exact round trips for every bit
// width and awkward shapes, and save -> load of both checkpoint layouts with identical
// dequantized weights.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <vector>

#include "lowbit/formats/checkpoint_layout.h"
#include "lowbit/formats/group_quant.h"
#include "lowbit/formats/pack.h"
#include "lowbit/io/safetensors.h"
#include "lowbit/util/error.h"

namespace lowbit {
namespace {

int32_t word(uint32_t u) { return static_cast<int32_t>(u); }

std::vector<int32_t> words_of(const PackedTensor& t) {
  std::vector<int32_t> w(t.bytes.size() / 4);
  std::memcpy(w.data(), t.bytes.data(), t.bytes.size());
  return w;
}

TEST(QuantPack, GptqQweight4BitHandExample) {
  // 2 outputs x 8 inputs, 4 bits: one int32 per output column, input i in bits [4i, 4i + 4).
  //   output 0 codes 1 2 3 4 5 6 7 8  -> nibbles from the low end: 0x87654321
  //   output 1 codes 15 0 0 0 0 0 0 10 -> 0xA000000F
  const std::vector<uint8_t> codes = {1, 2, 3, 4, 5, 6, 7, 8, 15, 0, 0, 0, 0, 0, 0, 10};
  const std::vector<int32_t> packed = pack_gptq_qweight(codes.data(), 2, 8, 4);
  EXPECT_EQ(packed, (std::vector<int32_t>{word(0x87654321u), word(0xA000000Fu)}));
  EXPECT_EQ(unpack_gptq_qweight(packed.data(), 2, 8, 4), codes);
}

TEST(QuantPack, GptqQweight3BitStraddlesWords) {
  // 1 output x 32 inputs, 3 bits: 3 words, code k at stream bits [3k, 3k + 3).
  //   code 0  = 7 (0b111) -> word0 bits 0..2                       -> word0 |= 0x00000007
  //   code 10 = 5 (0b101) -> bits 30..31 get 0b01, word1 bit 0 gets 1 -> word0 |= 0x40000000,
  //                                                                      word1 |= 0x00000001
  //   code 11 = 7         -> stream bits 33..35 = word1 bits 1..3  -> word1 |= 0x0000000E
  //   code 21 = 7         -> word1 bit 31 and word2 bits 0..1      -> word1 |= 0x80000000,
  //                                                                      word2 |= 0x00000003
  //   code 31 = 1         -> stream bit 93 = word2 bit 29          -> word2 |= 0x20000000
  std::vector<uint8_t> codes(32, 0);
  codes[0] = 7;
  codes[10] = 5;
  codes[11] = 7;
  codes[21] = 7;
  codes[31] = 1;
  const std::vector<int32_t> packed = pack_gptq_qweight(codes.data(), 1, 32, 3);
  EXPECT_EQ(packed,
            (std::vector<int32_t>{word(0x40000007u), word(0x8000000Fu), word(0x20000003u)}));
  EXPECT_EQ(unpack_gptq_qweight(packed.data(), 1, 32, 3), codes);
}

TEST(QuantPack, GptqQweight2And8BitHandExample) {
  // 8 bits: 4 codes per word, byte k = code k -> 0x44332211.
  const std::vector<uint8_t> bytes = {0x11, 0x22, 0x33, 0x44};
  EXPECT_EQ(pack_gptq_qweight(bytes.data(), 1, 4, 8), std::vector<int32_t>{word(0x44332211u)});
  // 2 bits: 16 codes per word; codes 1,2,3,0 repeated -> each byte 0b00'11'10'01 = 0x39.
  std::vector<uint8_t> two;
  for (int k = 0; k < 16; ++k) two.push_back(static_cast<uint8_t>((k + 1) % 4));
  EXPECT_EQ(pack_gptq_qweight(two.data(), 1, 16, 2), std::vector<int32_t>{word(0x39393939u)});
  EXPECT_THROW(pack_gptq_qweight(two.data(), 1, 12, 2), Error);  // 24 bits: not a whole word
}

TEST(QuantPack, GptqQzerosPackAlongOutputs) {
  // 1 group x 8 outputs, 4 bits, zeros 1..8 -> 0x87654321; 2 bits, 16 outputs of 3 -> 0xFFFFFFFF.
  const std::vector<uint8_t> zeros = {1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(pack_gptq_qzeros(zeros.data(), 1, 8, 4), std::vector<int32_t>{word(0x87654321u)});
  const std::vector<uint8_t> threes(16, 3);
  EXPECT_EQ(pack_gptq_qzeros(threes.data(), 1, 16, 2), std::vector<int32_t>{word(0xFFFFFFFFu)});
  EXPECT_EQ(unpack_gptq_qzeros(pack_gptq_qzeros(zeros.data(), 1, 8, 4).data(), 1, 8, 4), zeros);
  EXPECT_THROW(pack_gptq_qzeros(zeros.data(), 1, 7, 4), Error);  // 28 bits: not whole words
}

// The 8 x 8, 4-bit, group 8 weight of the hand example: code (o + i) % 16, scale 0.5 + o / 4.
QuantizedWeight hand_weight(bool sym) {
  QuantizedWeight w;
  w.scheme.bits = 4;
  w.scheme.group_size = 8;
  w.scheme.sym = sym;
  w.scheme.scale_type = ScaleType::kF16;
  w.out = 8;
  w.in = 8;
  w.n_groups = 1;
  for (int o = 0; o < 8; ++o) {
    for (int i = 0; i < 8; ++i) w.q.push_back(static_cast<uint8_t>((o + i) % 16));
    w.params.push_back({0.5f + o / 4.0f, sym ? 8.0f : static_cast<float>(o + 1)});
  }
  w.g_idx.assign(8, 0);
  return w;
}

TEST(QuantPack, GptqTensorsHandExampleV1AndV2) {
  const std::vector<int32_t> qweight = {word(0x76543210u), word(0x87654321u), word(0x98765432u),
                                        word(0xA9876543u), word(0xBA987654u), word(0xCBA98765u),
                                        word(0xDCBA9876u), word(0xEDCBA987u)};
  // sym: zero 8 everywhere; v1 stores 8 - 1 = 7 in each nibble, v2 stores 8.
  auto t = to_gptq_tensors(hand_weight(true), "l", 1);
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].name, "l.qweight");
  EXPECT_EQ(t[0].dtype, DType::I32);
  EXPECT_EQ(t[0].shape, (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(words_of(t[0]), qweight);
  EXPECT_EQ(t[1].name, "l.qzeros");
  EXPECT_EQ(t[1].shape, (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(words_of(t[1]), std::vector<int32_t>{word(0x77777777u)});
  EXPECT_EQ(t[2].name, "l.scales");
  EXPECT_EQ(t[2].dtype, DType::F16);
  EXPECT_EQ(t[2].shape, (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(t[2].bytes[0], 0x00);  // 0.5 in f16 = 0x3800, little-endian
  EXPECT_EQ(t[2].bytes[1], 0x38);
  EXPECT_EQ(t[3].name, "l.g_idx");
  EXPECT_EQ(t[3].shape, (std::vector<int64_t>{8}));
  t = to_gptq_tensors(hand_weight(true), "l", 2);
  EXPECT_EQ(words_of(t[1]), std::vector<int32_t>{word(0x88888888u)});
  // asym: zero of output o is o + 1; v1 stores o (0x76543210), v2 stores o + 1 (0x87654321).
  EXPECT_EQ(words_of(to_gptq_tensors(hand_weight(false), "l", 1)[1]),
            std::vector<int32_t>{word(0x76543210u)});
  EXPECT_EQ(words_of(to_gptq_tensors(hand_weight(false), "l", 2)[1]),
            std::vector<int32_t>{word(0x87654321u)});
}

TEST(QuantPack, GptqV1ReadsZeroPlusOne) {
  // A v1 field holding 15 reads as zero 16, as the loaders' kernels compute it.
  QuantizedWeight w = hand_weight(false);
  w.params[2].zero = 15;
  auto file_tensors = to_gptq_tensors(w, "l", 2);  // v2 stores 15 as is
  std::vector<TensorInfo> infos;
  for (const PackedTensor& t : file_tensors) {
    TensorInfo info;
    info.name = t.name;
    info.dtype = t.dtype;
    info.shape = t.shape;
    info.data = t.bytes.data();
    info.nbytes = t.bytes.size();
    infos.push_back(info);
  }
  const TensorLookup lookup = [&](const std::string& n) -> const TensorInfo* {
    for (const TensorInfo& i : infos) {
      if (i.name == n) return &i;
    }
    return nullptr;
  };
  EXPECT_EQ(from_gptq_tensors(w.scheme, "l", lookup, 2).params[2].zero, 15.0f);
  EXPECT_EQ(from_gptq_tensors(w.scheme, "l", lookup, 1).params[2].zero, 16.0f);
  EXPECT_EQ(from_gptq_tensors(w.scheme, "l", lookup, 1).params[3].zero, 5.0f);  // stored 4
}

TEST(QuantPack, GptqV1CannotStoreZeroPointZero) {
  QuantizedWeight w = hand_weight(false);
  w.params[3].zero = 0;
  EXPECT_FALSE(gptq_v1_can_store(w));
  EXPECT_THROW(to_gptq_tensors(w, "l", 1), Error);
  EXPECT_EQ(words_of(to_gptq_tensors(w, "l", 2)[1]), std::vector<int32_t>{word(0x87650321u)});
}

TEST(QuantPack, RandomRoundTripsEveryBitWidth) {
  std::mt19937 rng(3);
  for (int bits : {2, 3, 4, 8}) {
    std::uniform_int_distribution<int> code(0, (1 << bits) - 1);
    for (int trial = 0; trial < 4; ++trial) {
      const int out = 32 * (1 + trial), in = 32 * (3 - trial % 3);
      std::vector<uint8_t> q(static_cast<size_t>(out) * in);
      for (auto& c : q) c = static_cast<uint8_t>(code(rng));
      EXPECT_EQ(
          unpack_gptq_qweight(pack_gptq_qweight(q.data(), out, in, bits).data(), out, in, bits), q);
      EXPECT_EQ(unpack_gptq_qzeros(pack_gptq_qzeros(q.data(), in, out, bits).data(), in, out, bits),
                q);
    }
    for (int cols : {1, 7, 33, 172}) {  // ragged rows for the lowbit layout
      const int rows = 5;
      std::vector<uint8_t> q(static_cast<size_t>(rows) * cols);
      for (auto& c : q) c = static_cast<uint8_t>(code(rng));
      const std::vector<uint8_t> packed = pack_rows(q.data(), rows, cols, bits);
      ASSERT_EQ(packed.size(), rows * ((static_cast<size_t>(cols) * bits + 7) / 8));
      EXPECT_EQ(unpack_rows(packed.data(), rows, cols, bits), q) << bits << " " << cols;
    }
  }
  // Row bytes start at byte boundaries, low bits first: 3-bit codes 1,2,3 -> 0b011'010'001.
  const std::vector<uint8_t> three = {1, 2, 3};
  EXPECT_EQ(pack_rows(three.data(), 1, 3, 3), (std::vector<uint8_t>{0xD1, 0x00}));
}

TEST(QuantPack, GptqLayoutFitsAndFallback) {
  QuantScheme s;
  s.bits = 4;
  s.group_size = 32;
  EXPECT_TRUE(gptq_layout_fits(s, 64, 64));
  EXPECT_FALSE(gptq_layout_fits(s, 64, 172));  // stories260K MLP: 172 * 4 % 32 != 0
  EXPECT_FALSE(gptq_layout_fits(s, 4, 64));    // qzeros need out * bits % 32 == 0
  auto f = nearest_fitting_scheme(s, 64, 172);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->bits, 8);
  EXPECT_EQ(f->group_size, -1);  // 172 = 4 * 43: no group of 32
  s.group_size = 43;
  f = nearest_fitting_scheme(s, 64, 172);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->bits, 8);
  EXPECT_EQ(f->group_size, 43);
  s.group_size = 48;
  EXPECT_FALSE(gptq_layout_fits(s, 64, 64));  // 48 does not divide 64
  EXPECT_EQ(nearest_fitting_scheme(s, 64, 64)->group_size, -1);
  s.group_size = 32;
  s.scale_type = ScaleType::kBF16;
  EXPECT_FALSE(gptq_layout_fits(s, 64, 64));
  EXPECT_EQ(nearest_fitting_scheme(s, 64, 64)->scale_type, ScaleType::kF16);
  s.type = WeightType::kNF4;
  EXPECT_FALSE(nearest_fitting_scheme(s, 64, 64).has_value());
}

// A round-to-nearest quantized random weight; with `permute`, g_idx is shuffled (act-order).
QuantizedWeight random_weight(const QuantScheme& s, int out, int in, std::mt19937& rng,
                              bool permute) {
  std::normal_distribution<float> normal(0.0f, 0.05f);
  QuantizedWeight w;
  w.scheme = s;
  w.out = out;
  w.in = in;
  w.n_groups = groups_per_row(s, in);
  w.g_idx.resize(in);
  for (int i = 0; i < in; ++i) w.g_idx[i] = s.group_size > 0 ? i / s.group_size : 0;
  if (permute) std::shuffle(w.g_idx.begin(), w.g_idx.end(), rng);
  std::vector<float> dense(static_cast<size_t>(out) * in);
  for (float& x : dense) x = normal(rng);
  w.q.resize(dense.size());
  for (int o = 0; o < out; ++o) {
    for (int g = 0; g < w.n_groups; ++g) {
      std::vector<float> members;
      for (int i = 0; i < in; ++i) {
        if (w.g_idx[i] == g) members.push_back(dense[static_cast<size_t>(o) * in + i]);
      }
      GroupParams p = fit_group(s, members.data(), static_cast<int>(members.size()));
      if (p.zero == 0 && s.type == WeightType::kInt) p.zero = 1;  // keep v1-storable
      w.params.push_back(p);
    }
    for (int i = 0; i < in; ++i) {
      const size_t k = static_cast<size_t>(o) * in + i;
      w.q[k] =
          quantize_value(s, w.params[static_cast<size_t>(o) * w.n_groups + w.g_idx[i]], dense[k]);
    }
  }
  return w;
}

// Writes the tensors to a safetensors file, reopens it and returns the file.
std::shared_ptr<SafetensorsFile> save_and_open(const std::vector<PackedTensor>& tensors) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("lowbit_quant_pack_" + std::to_string(getpid()) + ".safetensors"))
                               .string();
  std::vector<TensorToWrite> views;
  for (const PackedTensor& t : tensors) views.push_back(t.view());
  write_safetensors(path, views);
  auto file = SafetensorsFile::open(path);
  std::filesystem::remove(path);  // the mapping stays valid
  return file;
}

TEST(QuantPack, GptqSaveLoadIdenticalDequantized) {
  std::mt19937 rng(11);
  for (int bits : {2, 3, 4, 8}) {
    for (bool sym : {false, true}) {
      for (int version : {1, 2}) {
        QuantScheme s;
        s.bits = bits;
        s.sym = sym;
        s.group_size = bits == 3 ? 32 : (bits == 8 ? -1 : 64);
        const QuantizedWeight w = random_weight(s, 32, 128, rng, version == 2);
        auto file = save_and_open(to_gptq_tensors(w, "model.layers.0.mlp.up_proj", version));
        const QuantizedWeight r = from_gptq_tensors(
            s, "model.layers.0.mlp.up_proj", [&](const std::string& n) { return file->find(n); },
            version);
        EXPECT_EQ(r.q, w.q);
        EXPECT_EQ(r.g_idx, w.g_idx);
        EXPECT_EQ(r.dequantize(), w.dequantize()) << bits << " " << sym << " v" << version;
      }
    }
  }
}

TEST(QuantPack, GptqLoadRejectsInconsistentTensors) {
  std::mt19937 rng(5);
  QuantScheme s;
  s.group_size = 32;
  auto tensors = to_gptq_tensors(random_weight(s, 32, 64, rng, false), "l", 1);
  tensors[2].shape = {1, 64};  // scales claim 1 group of 64 outputs
  auto file = save_and_open(tensors);
  const TensorLookup lookup = [&](const std::string& n) { return file->find(n); };
  EXPECT_THROW(from_gptq_tensors(s, "l", lookup, 1), Error);
  EXPECT_THROW(from_gptq_tensors(s, "missing", lookup, 1), Error);
  s.bits = 3;  // 64 rows * 32 / 3 is not whole
  EXPECT_THROW(from_gptq_tensors(s, "l", lookup, 1), Error);
}

TEST(QuantPack, LowbitSaveLoadEveryTypeAndScaleRagged) {
  std::mt19937 rng(13);
  struct Case {
    WeightType type;
    int bits;
    bool sym;
  };
  const Case cases[] = {{WeightType::kInt, 2, false},    {WeightType::kInt, 3, false},
                        {WeightType::kInt, 4, true},     {WeightType::kInt, 8, false},
                        {WeightType::kNF4, 4, true},     {WeightType::kFP4, 4, true},
                        {WeightType::kFP8E4M3, 8, true}, {WeightType::kFP8E5M2, 8, true}};
  for (const Case& c : cases) {
    for (ScaleType st : {ScaleType::kF32, ScaleType::kF16, ScaleType::kBF16, ScaleType::kFP8E4M3}) {
      QuantScheme s;
      s.type = c.type;
      s.bits = c.bits;
      s.sym = c.sym;
      s.scale_type = st;
      s.group_size = 32;  // 172 = 5 * 32 + a ragged group of 12
      const QuantizedWeight w = random_weight(s, 3, 172, rng, st == ScaleType::kBF16);
      auto file = save_and_open(to_lowbit_tensors(w, "m.w"));
      const QuantizedWeight r =
          from_lowbit_tensors(s, "m.w", [&](const std::string& n) { return file->find(n); });
      EXPECT_EQ(r.scheme.scale_type, st);
      EXPECT_EQ(r.q, w.q);
      EXPECT_EQ(r.dequantize(), w.dequantize()) << scheme_name(s);
    }
  }
}

TEST(QuantPack, QuantizationConfigs) {
  QuantScheme s;
  s.bits = 4;
  s.group_size = 128;
  s.sym = true;
  const nlohmann::json g = gptq_quantization_config(s, true, false, 1);
  EXPECT_EQ(g["quant_method"], "gptq");
  EXPECT_EQ(g["bits"], 4);
  EXPECT_EQ(g["group_size"], 128);
  EXPECT_EQ(g["desc_act"], true);
  EXPECT_EQ(g["sym"], true);
  EXPECT_EQ(g["checkpoint_format"], "gptq");
  int version = 0;
  QuantScheme back = scheme_from_quantization_config("c", g, &version);
  EXPECT_EQ(version, 1);
  EXPECT_EQ(back.bits, 4);
  EXPECT_TRUE(back.sym);
  EXPECT_EQ(gptq_quantization_config(s, false, false, 2)["checkpoint_format"], "gptq_v2");
  s.type = WeightType::kFP8E5M2;
  s.bits = 8;
  s.scale_type = ScaleType::kBF16;
  EXPECT_THROW(gptq_quantization_config(s, false, false), Error);
  back = scheme_from_quantization_config("c", lowbit_quantization_config(s));
  EXPECT_EQ(back.type, WeightType::kFP8E5M2);
  EXPECT_EQ(back.scale_type, ScaleType::kBF16);
  EXPECT_EQ(back.group_size, 128);
  EXPECT_THROW(
      scheme_from_quantization_config("c", nlohmann::json{{"quant_method", "bitsandbytes"}}),
      Error);
  EXPECT_THROW(scheme_from_quantization_config(
                   "c", nlohmann::json{{"quant_method", "gptq"}, {"group_size", "x"}}),
               Error);
}

}  // namespace
}  // namespace lowbit
