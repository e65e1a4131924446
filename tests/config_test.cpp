// Hugging Face config.json parsing and the architecture table.
#include "lowbit/model/config.h"

#include <gtest/gtest.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "lowbit/model/arch.h"
#include "lowbit/util/error.h"

namespace lowbit {
namespace {

using json = nlohmann::json;

json llama_json() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
    "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
    "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0, "rope_scaling": null, "tie_word_embeddings": true,
    "bos_token_id": 1, "eos_token_id": 2})");
}

std::string error_of(const json& j) {
  try {
    parse_hf_config("cfg/config.json", j.dump());
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Config, ParsesLlama) {
  ModelConfig c = parse_hf_config("config.json", llama_json().dump());
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.family, "llama");
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.hidden_dim, 172);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.max_seq_len, 512);
  EXPECT_FLOAT_EQ(c.norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_TRUE(c.rope_scaling.type.empty());
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_id, 2);
}

TEST(Config, DefaultsAndVariants) {
  json j = llama_json();
  j.erase("num_key_value_heads");
  j.erase("rope_theta");
  j.erase("tie_word_embeddings");
  j["eos_token_id"] = {128001, 128008, 128009};
  ModelConfig c = parse_hf_config("config.json", j.dump());
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
  EXPECT_FALSE(c.tied_embeddings) << "LlamaConfig default is untied";
  EXPECT_EQ(c.eos_id, 128001);

  j = llama_json();
  j["architectures"] = {"Qwen2ForCausalLM"};
  c = parse_hf_config("config.json", j.dump());
  EXPECT_EQ(c.family, "qwen2");
  EXPECT_TRUE(c.qkv_bias);

  j = llama_json();
  j["architectures"] = {"MistralForCausalLM"};
  EXPECT_EQ(parse_hf_config("config.json", j.dump()).family, "mistral");

  j = llama_json();
  j["head_dim"] = 16;  // explicit head_dim need not divide hidden_size
  j["hidden_size"] = 100;
  c = parse_hf_config("config.json", j.dump());
  EXPECT_EQ(c.head_dim, 16);

  j = llama_json();
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 32.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  c = parse_hf_config("config.json", j.dump());
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_FLOAT_EQ(c.rope_scaling.factor, 32.0f);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);

  j["rope_scaling"] = {{"type", "default"}};
  EXPECT_TRUE(parse_hf_config("config.json", j.dump()).rope_scaling.type.empty());
}

TEST(Config, Errors) {
  json j = llama_json();
  j.erase("hidden_size");
  EXPECT_EQ(error_of(j), "cfg/config.json: missing required field hidden_size");

  j = llama_json();
  j["architectures"] = {"FooForCausalLM"};
  EXPECT_EQ(error_of(j), "cfg/config.json: unsupported architecture FooForCausalLM (supported: " +
                             supported_architectures() + ")");
  EXPECT_NE(supported_architectures().find("GPTJForCausalLM"), std::string::npos);

  j = llama_json();
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  EXPECT_EQ(error_of(j), "cfg/config.json: unsupported rope_scaling type yarn");

  j = llama_json();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("not a multiple of num_key_value_heads"), std::string::npos);

  j = llama_json();
  j["hidden_size"] = 65;
  EXPECT_NE(error_of(j).find("not a multiple of num_attention_heads"), std::string::npos);

  j = llama_json();
  j["num_hidden_layers"] = 0;
  EXPECT_NE(error_of(j).find("num_hidden_layers = 0"), std::string::npos);

  j = llama_json();
  j["vocab_size"] = "512";
  EXPECT_NE(error_of(j).find("vocab_size must be an integer"), std::string::npos);

  j = llama_json();
  j["hidden_size"] = 1e12;
  EXPECT_NE(error_of(j).find("hidden_size"), std::string::npos);

  EXPECT_EQ(error_of(json::array()), "cfg/config.json: config is not a JSON object");
  try {
    parse_hf_config("cfg/config.json", "{oops");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "cfg/config.json: not valid JSON (truncated or corrupt?)");
  }
  EXPECT_THROW(load_hf_config("/nonexistent/config.json"), Error);
}

// Found by fuzz/config_fuzz (regress_norm_eps_overflows_float): a number beyond float's range
// became inf and was accepted (inf passes "> 0"), and written back as null. Token ids were cut to
// 32 bits the same silent way.
TEST(Config, NumbersOutOfRangeAreErrors) {
  json j = llama_json();
  j["rms_norm_eps"] = 1e53;
  EXPECT_EQ(error_of(j), "cfg/config.json: field rms_norm_eps = 1e+53 is out of range");
  j = llama_json();
  j["rope_theta"] = -1e39;
  EXPECT_EQ(error_of(j), "cfg/config.json: field rope_theta = -1e+39 is out of range");
  j = llama_json();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"high_freq_factor", 1e300}};
  EXPECT_EQ(error_of(j), "cfg/config.json: field high_freq_factor = 1e+300 is out of range");
  // 1e400 overflows double too: still a one-line error, whatever the JSON reader makes of it.
  const std::string text = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8,
    "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e400})";
  EXPECT_THROW(parse_hf_config("cfg/config.json", text), Error);
  // Token ids were cut to 32 bits (4294967297 read as 1); unsigned values past INT64_MAX wrapped.
  j = llama_json();
  j["eos_token_id"] = {4294967297LL, 2};
  EXPECT_EQ(error_of(j), "cfg/config.json: field eos_token_id = 4294967297 is out of range");
  j = llama_json();
  j["bos_token_id"] = -4294967295LL;
  EXPECT_EQ(error_of(j), "cfg/config.json: field bos_token_id = -4294967295 is out of range");
  j = llama_json();
  j["hidden_size"] = 18446744073709551615ULL;
  EXPECT_EQ(error_of(j),
            "cfg/config.json: field hidden_size = 18446744073709551615 is out of range");
  // The largest float still loads.
  j = llama_json();
  j["rope_theta"] = 3.4028234663852886e38;
  EXPECT_EQ(parse_hf_config("c", j.dump()).rope_theta, std::numeric_limits<float>::max());
}

// Found by fuzz/json_read_fuzz (regress_nul_ends_json): nlohmann stops at a NUL byte as if the
// input ended there, so "{...}\0<anything>" was read as the part before it.
TEST(Config, NulByteIsNotTheEndOfTheFile) {
  const std::string text = llama_json().dump();
  try {
    parse_hf_config("cfg/config.json", text + std::string("\0\0garbage", 9));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(
        std::string(e.what()),
        fmt::format("cfg/config.json: not valid JSON (a NUL byte at offset {})", text.size()));
  }
}

// Found by fuzz/config_fuzz (regress_mistral_attention_bias): to_hf_config_json wrote
// attention_bias for Llama only, so a Mistral config with q/k/v biases came back without them.
TEST(Config, WriteThenParseKeepsAttentionBiasOfEveryFamily) {
  json j = llama_json();
  j["architectures"] = {"MistralForCausalLM"};
  j["attention_bias"] = true;
  const ModelConfig a = parse_hf_config("a", j.dump());
  ASSERT_TRUE(a.qkv_bias);
  EXPECT_TRUE(parse_hf_config("b", to_hf_config_json(a)).qkv_bias);
  // Without biases nothing changes for Mistral (no key) nor Qwen2 (biases are its default).
  j["attention_bias"] = false;
  EXPECT_EQ(to_hf_config_json(parse_hf_config("c", j.dump())).find("attention_bias"),
            std::string::npos);
  j["architectures"] = {"Qwen2ForCausalLM"};
  j.erase("attention_bias");
  const ModelConfig q = parse_hf_config("d", j.dump());
  EXPECT_EQ(to_hf_config_json(q).find("attention_bias"), std::string::npos);
  EXPECT_TRUE(parse_hf_config("e", to_hf_config_json(q)).qkv_bias);
}

TEST(Config, WriteThenParseRoundTrip) {
  json j = llama_json();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
  j["rope_theta"] = 500000.0;
  ModelConfig a = parse_hf_config("a", j.dump());
  const std::string text = to_hf_config_json(a, "bfloat16");
  EXPECT_NE(text.find("\"rms_norm_eps\": 1e-05"), std::string::npos) << text;
  ModelConfig b = parse_hf_config("b", text);
  EXPECT_EQ(b.architecture, a.architecture);
  EXPECT_EQ(b.dim, a.dim);
  EXPECT_EQ(b.n_kv_heads, a.n_kv_heads);
  EXPECT_EQ(b.head_dim, a.head_dim);
  EXPECT_EQ(b.norm_eps, a.norm_eps);
  EXPECT_EQ(b.rope_theta, a.rope_theta);
  EXPECT_EQ(b.rope_scaling.type, "llama3");
  EXPECT_EQ(b.rope_scaling.factor, 8.0f);
  EXPECT_EQ(b.tied_embeddings, a.tied_embeddings);
}

TEST(Arch, TableDescribesLlamaTensors) {
  const ArchSpec* q = find_arch("Qwen2ForCausalLM");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(find_arch("BertModel"), nullptr);
  ModelConfig c = parse_hf_config("c", llama_json().dump());
  int per_layer = 0, present = 0;
  for (const auto& spec : q->tensors) {
    if (tensor_present(spec, c)) ++present;
    if (is_per_layer(spec.role)) ++per_layer;
    if (spec.role == TensorRole::kWk) {
      EXPECT_EQ(tensor_name(spec, 3), "model.layers.3.self_attn.k_proj.weight");
      EXPECT_EQ(expected_shape(spec, c), (std::vector<int64_t>{32, 64}));
    }
    if (spec.role == TensorRole::kWDown) {
      EXPECT_EQ(expected_shape(spec, c), (std::vector<int64_t>{64, 172}));
    }
  }
  EXPECT_EQ(per_layer, 16);  // 9 weights/norms + q/k/v/o and gate/up/down biases
  EXPECT_EQ(present, 11);    // llama config: no biases, tied -> no lm_head
}

}  // namespace
}  // namespace lowbit
