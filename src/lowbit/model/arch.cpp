#include "lowbit/model/arch.h"

#include <fmt/format.h>

#include <cmath>

#include "lowbit/util/error.h"

namespace lowbit {

namespace {

using enum TensorRole;

// ---- config.json of each family ------------------------------------------------------------
// Dimensions are read under every name the family's configs use; features are set from the
// family's own switches; a switch lowbit does not implement is an error naming it.

void head_dim_from(const ConfigReader& r, ModelConfig* c) {
  if (c->n_heads <= 0) fail(r.where(), "num_attention_heads = {} must be positive", c->n_heads);
  if (r.has({"head_dim"})) {
    c->head_dim = r.get_int({"head_dim"}, true);
    return;
  }
  if (c->dim % c->n_heads != 0) {
    fail(r.where(), "hidden_size {} is not a multiple of num_attention_heads {}", c->dim,
         c->n_heads);
  }
  c->head_dim = c->dim / c->n_heads;
}

ops::Activation activation(const ConfigReader& r, std::initializer_list<const char*> keys,
                           const char* dflt) {
  return ops::parse_activation(r.where(), r.get_string(keys, dflt));
}

// Llama, Mistral, Qwen2: RMSNorm, RoPE, SwiGLU, separate q/k/v.
void configure_llama(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"hidden_size"}, true);
  c->hidden_dim = r.get_int({"intermediate_size"}, true);
  c->n_layers = r.get_int({"num_hidden_layers"}, true);
  c->n_heads = r.get_int({"num_attention_heads"}, true);
  c->n_kv_heads = r.get_int({"num_key_value_heads"}, false, c->n_heads);
  c->vocab_size = r.get_int({"vocab_size"}, true);
  c->max_seq_len = r.get_int({"max_position_embeddings"}, true);
  c->norm_eps = r.get_float({"rms_norm_eps"}, true);
  c->rope_theta = r.get_float({"rope_theta"}, false, 10000.0);
  head_dim_from(r, c);
  c->act = activation(r, {"hidden_act"}, "silu");
  // Qwen2's q/k/v always carry biases (its o_proj none); Llama's attention_bias puts them on
  // q/k/v and o_proj alike, and so does lowbit for Mistral.
  if (c->family == "qwen2") {
    c->qkv_bias = true;
  } else {
    c->qkv_bias = c->o_bias = r.get_bool({"attention_bias"}, false);
  }
  c->mlp_bias = r.get_bool({"mlp_bias"}, false);
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, false);
}

// GPT-2: LayerNorm with bias, learned positions, fused [q|k|v] Conv1D, gelu_new, biases.
void configure_gpt2(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"n_embd", "hidden_size"}, true);
  c->n_layers = r.get_int({"n_layer", "num_hidden_layers"}, true);
  c->n_heads = r.get_int({"n_head", "num_attention_heads"}, true);
  c->n_kv_heads = c->n_heads;
  c->hidden_dim = r.get_int({"n_inner"}, false, 4 * c->dim);
  c->vocab_size = r.get_int({"vocab_size"}, true);
  c->max_seq_len = r.get_int({"n_positions", "max_position_embeddings"}, true);
  c->norm_eps = r.get_float({"layer_norm_epsilon"}, false, 1e-5);
  head_dim_from(r, c);
  r.require_bool("scale_attn_weights", true, "unscaled attention scores");
  r.require_bool("scale_attn_by_inverse_layer_idx", false, "per-layer score scaling");
  c->norm = NormKind::kLayer;
  c->norm_bias = true;
  c->position = PositionKind::kLearned;
  c->qkv_layout = QkvLayout::kConcat;
  c->qkv_bias = c->o_bias = c->mlp_bias = true;
  c->gated_mlp = false;
  c->act = activation(r, {"activation_function"}, "gelu_new");
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, true);
}

// OPT: LayerNorm, learned positions offset by 2, ReLU MLP, biases, pre- or post-norm.
void configure_opt(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"hidden_size"}, true);
  c->hidden_dim = r.get_int({"ffn_dim"}, true);
  c->n_layers = r.get_int({"num_hidden_layers"}, true);
  c->n_heads = r.get_int({"num_attention_heads"}, true);
  c->n_kv_heads = c->n_heads;
  c->vocab_size = r.get_int({"vocab_size"}, true);
  c->max_seq_len = r.get_int({"max_position_embeddings"}, true);
  c->norm_eps = 1e-5f;  // OPT's LayerNorms use torch's default
  head_dim_from(r, c);
  r.require_bool("layer_norm_elementwise_affine", true, "LayerNorms without weights");
  c->norm = NormKind::kLayer;
  c->norm_bias = true;
  c->position = PositionKind::kLearned;
  c->position_offset = 2;
  const bool pre = r.get_bool({"do_layer_norm_before"}, true);
  c->post_norm = !pre;
  c->final_norm = pre && !r.get_bool({"_remove_final_layer_norm"}, false);
  const int proj = r.get_int({"word_embed_proj_dim"}, false, c->dim);
  c->proj_dim = proj == c->dim ? 0 : proj;
  const bool bias = r.get_bool({"enable_bias"}, true);
  c->qkv_bias = c->o_bias = c->mlp_bias = bias;
  c->gated_mlp = false;
  c->act = activation(r, {"activation_function"}, "relu");
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, true);
}

// Bloom: ALiBi, embedding LayerNorm, per-head fused qkv, tanh GELU, biases.
void configure_bloom(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"hidden_size", "n_embed"}, true);
  c->n_layers = r.get_int({"n_layer", "num_hidden_layers"}, true);
  c->n_heads = r.get_int({"n_head", "num_attention_heads"}, true);
  c->n_kv_heads = c->n_heads;
  c->hidden_dim = 4 * c->dim;
  c->vocab_size = r.get_int({"vocab_size"}, true);
  // ALiBi has no position table: the context is bounded only by what was trained (seq_length
  // where the config records it).
  c->max_seq_len = r.get_int({"seq_length", "max_position_embeddings"}, false, 2048);
  c->norm_eps = r.get_float({"layer_norm_epsilon"}, false, 1e-5);
  head_dim_from(r, c);
  r.require_bool("apply_residual_connection_post_layernorm", false,
                 "residuals taken after the norm");
  c->norm = NormKind::kLayer;
  c->norm_bias = true;
  c->embed_norm = true;
  c->position = PositionKind::kAlibi;
  c->qkv_layout = QkvLayout::kPerHead;
  c->qkv_bias = c->o_bias = c->mlp_bias = true;
  c->gated_mlp = false;
  c->act = ops::Activation::kGeluTanh;  // bloom_gelu_forward: the tanh approximation
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, true);
}

// Falcon: LayerNorm, RoPE, parallel attention + MLP; multi-query (7b), grouped (40b's new
// decoder architecture) or per-head fused qkv.
void configure_falcon(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"hidden_size", "n_embed"}, true);
  c->n_layers = r.get_int({"num_hidden_layers", "n_layer"}, true);
  c->n_heads = r.get_int({"num_attention_heads", "n_head"}, true);
  c->hidden_dim = r.get_int({"ffn_hidden_size"}, false, 4 * c->dim);
  c->vocab_size = r.get_int({"vocab_size"}, true);
  c->max_seq_len = r.get_int({"max_position_embeddings"}, false, 2048);
  c->norm_eps = r.get_float({"layer_norm_epsilon"}, false, 1e-5);
  c->rope_theta = r.get_float({"rope_theta"}, false, 10000.0);
  head_dim_from(r, c);
  r.require_bool("alibi", false, "Falcon with ALiBi positions");
  c->norm = NormKind::kLayer;
  c->norm_bias = true;
  const bool new_arch = r.get_bool({"new_decoder_architecture"}, false);
  if (new_arch) {
    // Falcon-40b/180b: kv groups, fused per group; two LayerNorms (ln_attn, ln_mlp) unless
    // num_ln_in_parallel_attn says one.
    c->n_kv_heads = r.get_int({"num_kv_heads", "n_head_kv"}, true);
    c->qkv_layout = QkvLayout::kGrouped;
    c->parallel_block = true;
    c->shared_norm = r.get_int({"num_ln_in_parallel_attn"}, false, 2) == 1;
  } else {
    const bool mq = r.get_bool({"multi_query"}, true);
    c->n_kv_heads = mq ? 1 : c->n_heads;
    c->qkv_layout = mq ? QkvLayout::kConcat : QkvLayout::kPerHead;
    c->parallel_block = r.get_bool({"parallel_attn"}, true);
    c->shared_norm = c->parallel_block;
  }
  const bool bias = r.get_bool({"bias"}, false);
  c->qkv_bias = c->o_bias = c->mlp_bias = bias;
  c->gated_mlp = false;
  c->act = activation(r, {"activation"}, "gelu");
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, true);
}

// GPT-NeoX (Pythia, Dolly-v2): LayerNorm, partial rotate-half RoPE, per-head fused qkv, parallel
// residual with two norms.
void configure_gpt_neox(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"hidden_size"}, true);
  c->hidden_dim = r.get_int({"intermediate_size"}, true);
  c->n_layers = r.get_int({"num_hidden_layers"}, true);
  c->n_heads = r.get_int({"num_attention_heads"}, true);
  c->n_kv_heads = c->n_heads;
  c->vocab_size = r.get_int({"vocab_size"}, true);
  c->max_seq_len = r.get_int({"max_position_embeddings"}, true);
  c->norm_eps = r.get_float({"layer_norm_eps"}, false, 1e-5);
  c->rope_theta = r.get_float({"rotary_emb_base", "rope_theta"}, false, 10000.0);
  head_dim_from(r, c);
  const double pct = r.get_num({"rotary_pct"}, false, 1.0);
  if (!(pct > 0 && pct <= 1)) fail(r.where(), "rotary_pct {} must be in (0, 1]", pct);
  c->rope_dims = static_cast<int>(c->head_dim * pct);
  c->norm = NormKind::kLayer;
  c->norm_bias = true;
  c->qkv_layout = QkvLayout::kPerHead;
  const bool bias = r.get_bool({"attention_bias"}, true);
  c->qkv_bias = c->o_bias = bias;
  c->mlp_bias = true;
  c->parallel_block = r.get_bool({"use_parallel_residual"}, true);
  c->gated_mlp = false;
  c->act = activation(r, {"hidden_act"}, "gelu");
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, false);
}

// GPT-J: LayerNorm, partial interleaved RoPE, parallel block with one norm, biased lm_head.
void configure_gptj(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"n_embd", "hidden_size"}, true);
  c->n_layers = r.get_int({"n_layer", "num_hidden_layers"}, true);
  c->n_heads = r.get_int({"n_head", "num_attention_heads"}, true);
  c->n_kv_heads = c->n_heads;
  c->hidden_dim = r.get_int({"n_inner"}, false, 4 * c->dim);
  c->vocab_size = r.get_int({"vocab_size"}, true);
  c->max_seq_len = r.get_int({"n_positions", "max_position_embeddings"}, true);
  c->norm_eps = r.get_float({"layer_norm_epsilon"}, false, 1e-5);
  head_dim_from(r, c);
  c->rope_dims = r.get_int({"rotary_dim"}, false, c->head_dim);
  c->rope_interleaved = true;
  c->norm = NormKind::kLayer;
  c->norm_bias = true;
  c->parallel_block = c->shared_norm = true;
  c->mlp_bias = true;
  c->lm_head_bias = true;
  c->gated_mlp = false;
  c->act = activation(r, {"activation_function"}, "gelu_new");
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, false);
}

// Phi (phi-1, 1.5, 2; transformers >= 4.37 layout): LayerNorm, partial RoPE, parallel block with
// one norm, biases, biased lm_head.
void configure_phi(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"hidden_size"}, true);
  c->hidden_dim = r.get_int({"intermediate_size"}, true);
  c->n_layers = r.get_int({"num_hidden_layers"}, true);
  c->n_heads = r.get_int({"num_attention_heads"}, true);
  c->n_kv_heads = r.get_int({"num_key_value_heads"}, false, c->n_heads);
  c->vocab_size = r.get_int({"vocab_size"}, true);
  c->max_seq_len = r.get_int({"max_position_embeddings"}, true);
  c->norm_eps = r.get_float({"layer_norm_eps"}, false, 1e-5);
  c->rope_theta = r.get_float({"rope_theta"}, false, 10000.0);
  head_dim_from(r, c);
  const double f = r.get_num({"partial_rotary_factor"}, false, 1.0);
  if (!(f > 0 && f <= 1)) fail(r.where(), "partial_rotary_factor {} must be in (0, 1]", f);
  c->rope_dims = static_cast<int>(c->head_dim * f);
  r.require_bool("qk_layernorm", false, "LayerNorms on q and k");
  c->norm = NormKind::kLayer;
  c->norm_bias = true;
  c->parallel_block = c->shared_norm = true;
  c->qkv_bias = c->o_bias = c->mlp_bias = true;
  c->lm_head_bias = true;
  c->gated_mlp = false;
  c->act = activation(r, {"hidden_act"}, "gelu_new");
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, false);
}

// Baichuan (7B, 13B) and Baichuan2: Llama's math with a fused [q|k|v] W_pack. As vLLM tells them
// apart: the 7B class BaiChuanForCausalLM and any 4096-wide BaichuanForCausalLM use RoPE, the
// 13B ones ALiBi; Baichuan2 (its 125696-token vocabulary) normalizes the lm_head rows.
void configure_baichuan(const ConfigReader& r, ModelConfig* c) {
  c->dim = r.get_int({"hidden_size"}, true);
  c->hidden_dim = r.get_int({"intermediate_size"}, true);
  c->n_layers = r.get_int({"num_hidden_layers"}, true);
  c->n_heads = r.get_int({"num_attention_heads"}, true);
  c->n_kv_heads = c->n_heads;
  c->vocab_size = r.get_int({"vocab_size"}, true);
  c->max_seq_len = r.get_int({"max_position_embeddings", "model_max_length"}, true);
  c->norm_eps = r.get_float({"rms_norm_eps"}, false, 1e-6);
  c->rope_theta = r.get_float({"rope_theta"}, false, 10000.0);
  head_dim_from(r, c);
  const bool rope = c->architecture == "BaiChuanForCausalLM" || c->dim == 4096;
  c->position = rope ? PositionKind::kRope : PositionKind::kAlibi;
  c->qkv_layout = QkvLayout::kConcat;
  c->norm_head = c->vocab_size == 125696;
  c->act = activation(r, {"hidden_act"}, "silu");
  c->tied_embeddings = r.get_bool({"tie_word_embeddings"}, false);
}

// Phi-3: Llama's math with fused [q|k|v] qkv_proj and [gate|up] gate_up_proj.
void configure_phi3(const ConfigReader& r, ModelConfig* c) {
  configure_llama(r, c);
  c->qkv_bias = c->o_bias = c->mlp_bias = false;
  const double f = r.get_num({"partial_rotary_factor"}, false, 1.0);
  if (!(f > 0 && f <= 1)) fail(r.where(), "partial_rotary_factor {} must be in (0, 1]", f);
  c->rope_dims = static_cast<int>(c->head_dim * f);
  c->qkv_layout = QkvLayout::kConcat;
  c->fused_gate_up = true;
}

// ChatGLM2 and ChatGLM3 (THUDM's modeling_chatglm.py, read, not run): pre-norm RMSNorm blocks,
// multi-query attention with `multi_query_group_num` kv groups, a fused [q | k | v]
// query_key_value with biases, a fused [gate | up] dense_h_to_4h with SwiGLU, an untied
// output_layer, and RoPE on the first half of each head's dims in interleaved pairs, frequencies
// over those dims, base 10000 · rope_ratio. ChatGLM-6B (v1: 2D positions, GLM blocks) is another
// model under the same class names and is refused.
void configure_chatglm(const ConfigReader& r, ModelConfig* c) {
  if (r.has({"position_encoding_2d"}) || !r.has({"padded_vocab_size"})) {
    fail(r.where(),
         "ChatGLM-6B (v1, position_encoding_2d) is not supported; ChatGLM2/ChatGLM3 are (their "
         "config has padded_vocab_size)");
  }
  c->dim = r.get_int({"hidden_size"}, true);
  c->hidden_dim = r.get_int({"ffn_hidden_size"}, true);
  c->n_layers = r.get_int({"num_layers"}, true);
  c->n_heads = r.get_int({"num_attention_heads"}, true);
  c->n_kv_heads = r.get_bool({"multi_query_attention"}, false)
                      ? r.get_int({"multi_query_group_num"}, true)
                      : c->n_heads;
  c->vocab_size = r.get_int({"padded_vocab_size"}, true);
  c->max_seq_len = r.get_int({"seq_length"}, true);
  c->norm_eps = r.get_float({"layernorm_epsilon"}, false, 1e-5);
  if (r.has({"kv_channels"})) {
    if (c->n_heads <= 0) fail(r.where(), "num_attention_heads = {} must be positive", c->n_heads);
    c->head_dim = r.get_int({"kv_channels"}, true);
  } else {
    head_dim_from(r, c);
  }
  const double ratio = r.get_num({"rope_ratio"}, false, 1.0);
  if (!(ratio > 0)) fail(r.where(), "rope_ratio {} must be positive", ratio);
  c->rope_theta = static_cast<float>(10000.0 * ratio);
  c->rope_dims = c->head_dim / 2;
  c->rope_interleaved = true;
  c->norm = r.get_bool({"rmsnorm"}, true) ? NormKind::kRms : NormKind::kLayer;
  c->norm_bias = c->norm == NormKind::kLayer;
  r.require_bool("apply_residual_connection_post_layernorm", false,
                 "the residual taken after the norm");
  r.require_bool("original_rope", true, "the GLM-style rotary embedding");
  c->final_norm = r.get_bool({"post_layer_norm"}, true);
  c->qkv_layout = QkvLayout::kConcat;
  c->qkv_bias = r.get_bool({"add_qkv_bias"}, false);
  c->o_bias = c->mlp_bias = r.get_bool({"add_bias_linear"}, false);
  c->fused_gate_up = true;
  c->gated_mlp = true;
  c->act = ops::Activation::kSilu;
  c->tied_embeddings = false;
}

// ---- tensor names ---------------------------------------------------------------------------

std::vector<TensorSpec> llama_tensors() {
  return {
      {kTokEmbeddings, "model.embed_tokens.weight"},
      {kAttnNorm, "model.layers.{i}.input_layernorm.weight"},
      {kWq, "model.layers.{i}.self_attn.q_proj.weight"},
      {kWk, "model.layers.{i}.self_attn.k_proj.weight"},
      {kWv, "model.layers.{i}.self_attn.v_proj.weight"},
      {kBq, "model.layers.{i}.self_attn.q_proj.bias"},
      {kBk, "model.layers.{i}.self_attn.k_proj.bias"},
      {kBv, "model.layers.{i}.self_attn.v_proj.bias"},
      {kWo, "model.layers.{i}.self_attn.o_proj.weight"},
      {kBo, "model.layers.{i}.self_attn.o_proj.bias"},
      {kFfnNorm, "model.layers.{i}.post_attention_layernorm.weight"},
      {kWGate, "model.layers.{i}.mlp.gate_proj.weight"},
      {kWUp, "model.layers.{i}.mlp.up_proj.weight"},
      {kWDown, "model.layers.{i}.mlp.down_proj.weight"},
      {kBGate, "model.layers.{i}.mlp.gate_proj.bias"},
      {kBUp, "model.layers.{i}.mlp.up_proj.bias"},
      {kBDown, "model.layers.{i}.mlp.down_proj.bias"},
      {kFinalNorm, "model.norm.weight"},
      {kLmHead, "lm_head.weight"},
  };
}

std::vector<TensorSpec> baichuan_tensors() {
  return {
      {kTokEmbeddings, "model.embed_tokens.weight"},
      {kAttnNorm, "model.layers.{i}.input_layernorm.weight"},
      {kWqkv, "model.layers.{i}.self_attn.W_pack.weight"},
      {kWo, "model.layers.{i}.self_attn.o_proj.weight"},
      {kFfnNorm, "model.layers.{i}.post_attention_layernorm.weight"},
      {kWGate, "model.layers.{i}.mlp.gate_proj.weight"},
      {kWUp, "model.layers.{i}.mlp.up_proj.weight"},
      {kWDown, "model.layers.{i}.mlp.down_proj.weight"},
      {kFinalNorm, "model.norm.weight"},
      {kLmHead, "lm_head.weight"},
  };
}

std::vector<TensorSpec> chatglm_tensors() {
  return {
      {kTokEmbeddings, "transformer.embedding.word_embeddings.weight"},
      {kAttnNorm, "transformer.encoder.layers.{i}.input_layernorm.weight"},
      {kAttnNormBias, "transformer.encoder.layers.{i}.input_layernorm.bias"},
      {kWqkv, "transformer.encoder.layers.{i}.self_attention.query_key_value.weight"},
      {kBqkv, "transformer.encoder.layers.{i}.self_attention.query_key_value.bias"},
      {kWo, "transformer.encoder.layers.{i}.self_attention.dense.weight"},
      {kBo, "transformer.encoder.layers.{i}.self_attention.dense.bias"},
      {kFfnNorm, "transformer.encoder.layers.{i}.post_attention_layernorm.weight"},
      {kFfnNormBias, "transformer.encoder.layers.{i}.post_attention_layernorm.bias"},
      {kWGateUp, "transformer.encoder.layers.{i}.mlp.dense_h_to_4h.weight"},
      {kBGateUp, "transformer.encoder.layers.{i}.mlp.dense_h_to_4h.bias"},
      {kWDown, "transformer.encoder.layers.{i}.mlp.dense_4h_to_h.weight"},
      {kBDown, "transformer.encoder.layers.{i}.mlp.dense_4h_to_h.bias"},
      {kFinalNorm, "transformer.encoder.final_layernorm.weight"},
      {kFinalNormBias, "transformer.encoder.final_layernorm.bias"},
      {kLmHead, "transformer.output_layer.weight"},
  };
}

std::vector<TensorSpec> phi3_tensors() {
  return {
      {kTokEmbeddings, "model.embed_tokens.weight"},
      {kAttnNorm, "model.layers.{i}.input_layernorm.weight"},
      {kWqkv, "model.layers.{i}.self_attn.qkv_proj.weight"},
      {kWo, "model.layers.{i}.self_attn.o_proj.weight"},
      {kFfnNorm, "model.layers.{i}.post_attention_layernorm.weight"},
      {kWGateUp, "model.layers.{i}.mlp.gate_up_proj.weight"},
      {kWDown, "model.layers.{i}.mlp.down_proj.weight"},
      {kFinalNorm, "model.norm.weight"},
      {kLmHead, "lm_head.weight"},
  };
}

std::vector<TensorSpec> gpt2_tensors() {
  return {
      {kTokEmbeddings, "transformer.wte.weight"},
      {kPosEmbeddings, "transformer.wpe.weight"},
      {kAttnNorm, "transformer.h.{i}.ln_1.weight"},
      {kAttnNormBias, "transformer.h.{i}.ln_1.bias"},
      {kWqkv, "transformer.h.{i}.attn.c_attn.weight", true},
      {kBqkv, "transformer.h.{i}.attn.c_attn.bias"},
      {kWo, "transformer.h.{i}.attn.c_proj.weight", true},
      {kBo, "transformer.h.{i}.attn.c_proj.bias"},
      {kFfnNorm, "transformer.h.{i}.ln_2.weight"},
      {kFfnNormBias, "transformer.h.{i}.ln_2.bias"},
      {kWUp, "transformer.h.{i}.mlp.c_fc.weight", true},
      {kBUp, "transformer.h.{i}.mlp.c_fc.bias"},
      {kWDown, "transformer.h.{i}.mlp.c_proj.weight", true},
      {kBDown, "transformer.h.{i}.mlp.c_proj.bias"},
      {kFinalNorm, "transformer.ln_f.weight"},
      {kFinalNormBias, "transformer.ln_f.bias"},
      {kLmHead, "lm_head.weight"},
  };
}

std::vector<TensorSpec> opt_tensors() {
  return {
      {kTokEmbeddings, "model.decoder.embed_tokens.weight"},
      {kPosEmbeddings, "model.decoder.embed_positions.weight"},
      {kProjIn, "model.decoder.project_in.weight"},
      {kProjOut, "model.decoder.project_out.weight"},
      {kAttnNorm, "model.decoder.layers.{i}.self_attn_layer_norm.weight"},
      {kAttnNormBias, "model.decoder.layers.{i}.self_attn_layer_norm.bias"},
      {kWq, "model.decoder.layers.{i}.self_attn.q_proj.weight"},
      {kWk, "model.decoder.layers.{i}.self_attn.k_proj.weight"},
      {kWv, "model.decoder.layers.{i}.self_attn.v_proj.weight"},
      {kBq, "model.decoder.layers.{i}.self_attn.q_proj.bias"},
      {kBk, "model.decoder.layers.{i}.self_attn.k_proj.bias"},
      {kBv, "model.decoder.layers.{i}.self_attn.v_proj.bias"},
      {kWo, "model.decoder.layers.{i}.self_attn.out_proj.weight"},
      {kBo, "model.decoder.layers.{i}.self_attn.out_proj.bias"},
      {kFfnNorm, "model.decoder.layers.{i}.final_layer_norm.weight"},
      {kFfnNormBias, "model.decoder.layers.{i}.final_layer_norm.bias"},
      {kWUp, "model.decoder.layers.{i}.fc1.weight"},
      {kBUp, "model.decoder.layers.{i}.fc1.bias"},
      {kWDown, "model.decoder.layers.{i}.fc2.weight"},
      {kBDown, "model.decoder.layers.{i}.fc2.bias"},
      {kFinalNorm, "model.decoder.final_layer_norm.weight"},
      {kFinalNormBias, "model.decoder.final_layer_norm.bias"},
      {kLmHead, "lm_head.weight"},
  };
}

std::vector<TensorSpec> bloom_tensors() {
  return {
      {kTokEmbeddings, "transformer.word_embeddings.weight"},
      {kEmbedNorm, "transformer.word_embeddings_layernorm.weight"},
      {kEmbedNormBias, "transformer.word_embeddings_layernorm.bias"},
      {kAttnNorm, "transformer.h.{i}.input_layernorm.weight"},
      {kAttnNormBias, "transformer.h.{i}.input_layernorm.bias"},
      {kWqkv, "transformer.h.{i}.self_attention.query_key_value.weight"},
      {kBqkv, "transformer.h.{i}.self_attention.query_key_value.bias"},
      {kWo, "transformer.h.{i}.self_attention.dense.weight"},
      {kBo, "transformer.h.{i}.self_attention.dense.bias"},
      {kFfnNorm, "transformer.h.{i}.post_attention_layernorm.weight"},
      {kFfnNormBias, "transformer.h.{i}.post_attention_layernorm.bias"},
      {kWUp, "transformer.h.{i}.mlp.dense_h_to_4h.weight"},
      {kBUp, "transformer.h.{i}.mlp.dense_h_to_4h.bias"},
      {kWDown, "transformer.h.{i}.mlp.dense_4h_to_h.weight"},
      {kBDown, "transformer.h.{i}.mlp.dense_4h_to_h.bias"},
      {kFinalNorm, "transformer.ln_f.weight"},
      {kFinalNormBias, "transformer.ln_f.bias"},
      {kLmHead, "lm_head.weight"},
  };
}

std::vector<TensorSpec> falcon_tensors() {
  // The new decoder architecture names its two norms ln_attn / ln_mlp; the one-norm layouts use
  // input_layernorm (and post_attention_layernorm when sequential). Both names are listed: a
  // role takes the first that the checkpoint has (see the loader).
  return {
      {kTokEmbeddings, "transformer.word_embeddings.weight"},
      {kAttnNorm, "transformer.h.{i}.input_layernorm.weight"},
      {kAttnNormBias, "transformer.h.{i}.input_layernorm.bias"},
      {kAttnNorm, "transformer.h.{i}.ln_attn.weight"},
      {kAttnNormBias, "transformer.h.{i}.ln_attn.bias"},
      {kWqkv, "transformer.h.{i}.self_attention.query_key_value.weight"},
      {kBqkv, "transformer.h.{i}.self_attention.query_key_value.bias"},
      {kWo, "transformer.h.{i}.self_attention.dense.weight"},
      {kBo, "transformer.h.{i}.self_attention.dense.bias"},
      {kFfnNorm, "transformer.h.{i}.post_attention_layernorm.weight"},
      {kFfnNormBias, "transformer.h.{i}.post_attention_layernorm.bias"},
      {kFfnNorm, "transformer.h.{i}.ln_mlp.weight"},
      {kFfnNormBias, "transformer.h.{i}.ln_mlp.bias"},
      {kWUp, "transformer.h.{i}.mlp.dense_h_to_4h.weight"},
      {kBUp, "transformer.h.{i}.mlp.dense_h_to_4h.bias"},
      {kWDown, "transformer.h.{i}.mlp.dense_4h_to_h.weight"},
      {kBDown, "transformer.h.{i}.mlp.dense_4h_to_h.bias"},
      {kFinalNorm, "transformer.ln_f.weight"},
      {kFinalNormBias, "transformer.ln_f.bias"},
      {kLmHead, "lm_head.weight"},
  };
}

std::vector<TensorSpec> gpt_neox_tensors() {
  return {
      {kTokEmbeddings, "gpt_neox.embed_in.weight"},
      {kAttnNorm, "gpt_neox.layers.{i}.input_layernorm.weight"},
      {kAttnNormBias, "gpt_neox.layers.{i}.input_layernorm.bias"},
      {kWqkv, "gpt_neox.layers.{i}.attention.query_key_value.weight"},
      {kBqkv, "gpt_neox.layers.{i}.attention.query_key_value.bias"},
      {kWo, "gpt_neox.layers.{i}.attention.dense.weight"},
      {kBo, "gpt_neox.layers.{i}.attention.dense.bias"},
      {kFfnNorm, "gpt_neox.layers.{i}.post_attention_layernorm.weight"},
      {kFfnNormBias, "gpt_neox.layers.{i}.post_attention_layernorm.bias"},
      {kWUp, "gpt_neox.layers.{i}.mlp.dense_h_to_4h.weight"},
      {kBUp, "gpt_neox.layers.{i}.mlp.dense_h_to_4h.bias"},
      {kWDown, "gpt_neox.layers.{i}.mlp.dense_4h_to_h.weight"},
      {kBDown, "gpt_neox.layers.{i}.mlp.dense_4h_to_h.bias"},
      {kFinalNorm, "gpt_neox.final_layer_norm.weight"},
      {kFinalNormBias, "gpt_neox.final_layer_norm.bias"},
      {kLmHead, "embed_out.weight"},
  };
}

std::vector<TensorSpec> gptj_tensors() {
  return {
      {kTokEmbeddings, "transformer.wte.weight"},
      {kAttnNorm, "transformer.h.{i}.ln_1.weight"},
      {kAttnNormBias, "transformer.h.{i}.ln_1.bias"},
      {kWq, "transformer.h.{i}.attn.q_proj.weight"},
      {kWk, "transformer.h.{i}.attn.k_proj.weight"},
      {kWv, "transformer.h.{i}.attn.v_proj.weight"},
      {kWo, "transformer.h.{i}.attn.out_proj.weight"},
      {kWUp, "transformer.h.{i}.mlp.fc_in.weight"},
      {kBUp, "transformer.h.{i}.mlp.fc_in.bias"},
      {kWDown, "transformer.h.{i}.mlp.fc_out.weight"},
      {kBDown, "transformer.h.{i}.mlp.fc_out.bias"},
      {kFinalNorm, "transformer.ln_f.weight"},
      {kFinalNormBias, "transformer.ln_f.bias"},
      {kLmHead, "lm_head.weight"},
      {kLmHeadBias, "lm_head.bias"},
  };
}

std::vector<TensorSpec> phi_tensors() {
  return {
      {kTokEmbeddings, "model.embed_tokens.weight"},
      {kAttnNorm, "model.layers.{i}.input_layernorm.weight"},
      {kAttnNormBias, "model.layers.{i}.input_layernorm.bias"},
      {kWq, "model.layers.{i}.self_attn.q_proj.weight"},
      {kWk, "model.layers.{i}.self_attn.k_proj.weight"},
      {kWv, "model.layers.{i}.self_attn.v_proj.weight"},
      {kBq, "model.layers.{i}.self_attn.q_proj.bias"},
      {kBk, "model.layers.{i}.self_attn.k_proj.bias"},
      {kBv, "model.layers.{i}.self_attn.v_proj.bias"},
      {kWo, "model.layers.{i}.self_attn.dense.weight"},
      {kBo, "model.layers.{i}.self_attn.dense.bias"},
      {kWUp, "model.layers.{i}.mlp.fc1.weight"},
      {kBUp, "model.layers.{i}.mlp.fc1.bias"},
      {kWDown, "model.layers.{i}.mlp.fc2.weight"},
      {kBDown, "model.layers.{i}.mlp.fc2.bias"},
      {kFinalNorm, "model.final_layernorm.weight"},
      {kFinalNormBias, "model.final_layernorm.bias"},
      {kLmHead, "lm_head.weight"},
      {kLmHeadBias, "lm_head.bias"},
  };
}

}  // namespace

const std::vector<ArchSpec>& all_archs() {
  static const std::vector<ArchSpec> archs = {
      {"LlamaForCausalLM", "llama", "model.", configure_llama, llama_tensors(), "llama"},
      {"MistralForCausalLM", "mistral", "model.", configure_llama, llama_tensors(), "llama"},
      {"Qwen2ForCausalLM", "qwen2", "model.", configure_llama, llama_tensors(), "qwen2"},
      {"GPT2LMHeadModel", "gpt2", "transformer.", configure_gpt2, gpt2_tensors()},
      {"OPTForCausalLM", "opt", "model.", configure_opt, opt_tensors()},
      {"BloomForCausalLM", "bloom", "transformer.", configure_bloom, bloom_tensors()},
      {"FalconForCausalLM", "falcon", "transformer.", configure_falcon, falcon_tensors()},
      // Falcon's first releases (model_type "RefinedWeb" / "RefinedWebModel").
      {"RWForCausalLM", "falcon", "transformer.", configure_falcon, falcon_tensors()},
      {"GPTNeoXForCausalLM", "gpt_neox", "gpt_neox.", configure_gpt_neox, gpt_neox_tensors()},
      {"GPTJForCausalLM", "gptj", "transformer.", configure_gptj, gptj_tensors()},
      {"PhiForCausalLM", "phi", "model.", configure_phi, phi_tensors()},
      {"Phi3ForCausalLM", "phi3", "model.", configure_phi3, phi3_tensors()},
      {"BaichuanForCausalLM", "baichuan", "model.", configure_baichuan, baichuan_tensors()},
      {"BaiChuanForCausalLM", "baichuan", "model.", configure_baichuan, baichuan_tensors()},
      {"ChatGLMModel", "chatglm", "transformer.", configure_chatglm, chatglm_tensors()},
      {"ChatGLMForConditionalGeneration", "chatglm", "transformer.", configure_chatglm,
       chatglm_tensors()},
  };
  return archs;
}

const ArchSpec* find_arch(const std::string& architecture) {
  for (const auto& a : all_archs()) {
    if (architecture == a.architecture) return &a;
  }
  return nullptr;
}

std::string supported_architectures() {
  std::string s;
  for (const auto& a : all_archs()) s += (s.empty() ? "" : ", ") + std::string(a.architecture);
  return s;
}

bool is_per_layer(TensorRole r) { return r >= kAttnNorm; }

bool is_linear_weight(TensorRole r) {
  switch (r) {
    case kWq:
    case kWk:
    case kWv:
    case kWqkv:
    case kWo:
    case kWGate:
    case kWUp:
    case kWGateUp:
    case kWDown:
    case kLmHead:
    case kProjIn:
    case kProjOut:
      return true;
    default:
      return false;
  }
}

bool tensor_present(TensorRole role, const ModelConfig& c) {
  const bool fused_qkv = c.qkv_layout != QkvLayout::kSeparate;
  const bool ffn_norm = !(c.parallel_block && c.shared_norm);
  switch (role) {
    case kTokEmbeddings:
    case kAttnNorm:
    case kWo:
    case kWDown:
      return true;
    case kPosEmbeddings:
      return c.position == PositionKind::kLearned;
    case kEmbedNorm:
      return c.embed_norm;
    case kEmbedNormBias:
      return c.embed_norm && c.norm_bias;
    case kProjIn:
    case kProjOut:
      return c.proj_dim > 0;
    case kFinalNorm:
      return c.final_norm;
    case kFinalNormBias:
      return c.final_norm && c.norm_bias;
    case kLmHead:
      return !c.tied_embeddings;
    case kLmHeadBias:
      return c.lm_head_bias;
    case kAttnNormBias:
      return c.norm_bias;
    case kFfnNorm:
      return ffn_norm;
    case kFfnNormBias:
      return ffn_norm && c.norm_bias;
    case kWq:
    case kWk:
    case kWv:
      return !fused_qkv;
    case kWqkv:
      return fused_qkv;
    case kBq:
    case kBk:
    case kBv:
      return !fused_qkv && c.qkv_bias;
    case kBqkv:
      return fused_qkv && c.qkv_bias;
    case kBo:
      return c.o_bias;
    case kWGate:
      return c.gated_mlp && !c.fused_gate_up;
    case kWUp:
      return !c.fused_gate_up;
    case kWGateUp:
      return c.fused_gate_up;
    case kBGate:
      return c.gated_mlp && c.mlp_bias && !c.fused_gate_up;
    case kBUp:
      return c.mlp_bias && !c.fused_gate_up;
    case kBGateUp:
      return c.mlp_bias && c.fused_gate_up;
    case kBDown:
      return c.mlp_bias;
  }
  return false;
}

std::string tensor_name(const TensorSpec& spec, int layer) {
  std::string s = spec.name;
  const auto pos = s.find("{i}");
  if (pos != std::string::npos) s.replace(pos, 3, std::to_string(layer));
  return s;
}

std::vector<int64_t> role_shape(TensorRole role, const ModelConfig& c) {
  const int64_t d = c.dim, h = c.hidden_dim, q = c.q_dim(), kv = c.kv_dim();
  switch (role) {
    case kTokEmbeddings:
      return {c.vocab_size, c.embed_dim()};
    case kPosEmbeddings:
      return {int64_t{c.max_seq_len} + c.position_offset, c.embed_dim()};
    case kProjIn:
      return {d, c.embed_dim()};
    case kProjOut:
      return {c.embed_dim(), d};
    case kLmHead:
      return {c.vocab_size, c.embed_dim()};
    case kLmHeadBias:
      return {c.vocab_size};
    case kEmbedNorm:
    case kEmbedNormBias:
    case kFinalNorm:
    case kFinalNormBias:
    case kAttnNorm:
    case kAttnNormBias:
    case kFfnNorm:
    case kFfnNormBias:
    case kBo:
    case kBDown:
      return {d};
    case kWq:
      return {q, d};
    case kWk:
    case kWv:
      return {kv, d};
    case kWqkv:
      return {q + 2 * kv, d};
    case kBq:
      return {q};
    case kBk:
    case kBv:
      return {kv};
    case kBqkv:
      return {q + 2 * kv};
    case kWo:
      return {d, q};
    case kWGate:
    case kWUp:
      return {h, d};
    case kWGateUp:
      return {2 * h, d};
    case kBGate:
    case kBUp:
      return {h};
    case kBGateUp:
      return {2 * h};
    case kWDown:
      return {d, h};
  }
  return {};
}

std::vector<int64_t> expected_shape(const TensorSpec& spec, const ModelConfig& cfg) {
  std::vector<int64_t> s = role_shape(spec.role, cfg);
  if (spec.transposed && s.size() == 2) std::swap(s[0], s[1]);
  return s;
}

std::vector<std::vector<int>> fused_rows(TensorRole fused, const ModelConfig& c) {
  if (fused == kWGateUp || fused == kBGateUp) {
    std::vector<int> gate(static_cast<size_t>(c.hidden_dim)), up(gate.size());
    for (int i = 0; i < c.hidden_dim; ++i) {
      gate[static_cast<size_t>(i)] = i;
      up[static_cast<size_t>(i)] = c.hidden_dim + i;
    }
    return {gate, up};
  }
  if (c.qkv_layout == QkvLayout::kSeparate) fail("fused_rows", "q/k/v are stored separately");
  const int hd = c.head_dim, nh = c.n_heads, nkv = c.n_kv_heads;
  std::vector<int> q, k, v;
  auto run = [](std::vector<int>& dst, int first, int count) {
    for (int i = 0; i < count; ++i) dst.push_back(first + i);
  };
  switch (c.qkv_layout) {
    case QkvLayout::kSeparate:
      break;
    case QkvLayout::kConcat:
      run(q, 0, nh * hd);
      run(k, nh * hd, nkv * hd);
      run(v, (nh + nkv) * hd, nkv * hd);
      break;
    case QkvLayout::kPerHead:  // [h: q k v] for each head (multi-head only)
      for (int h = 0; h < nh; ++h) {
        run(q, 3 * h * hd, hd);
        run(k, (3 * h + 1) * hd, hd);
        run(v, (3 * h + 2) * hd, hd);
      }
      break;
    case QkvLayout::kGrouped: {  // [g: q × (nh/nkv), k, v] for each kv group
      const int per = nh / nkv, stride = (per + 2) * hd;
      for (int g = 0; g < nkv; ++g) {
        run(q, g * stride, per * hd);
        run(k, g * stride + per * hd, hd);
        run(v, g * stride + (per + 1) * hd, hd);
      }
      break;
    }
  }
  return {q, k, v};
}

std::vector<BlockLinear> block_linears(const ModelConfig& c) {
  const bool fused = c.qkv_layout != QkvLayout::kSeparate;
  const InputPoint mlp_in =
      c.parallel_block && c.shared_norm ? InputPoint::kAttnIn : InputPoint::kMlpIn;
  const TensorRole qkv_module_q = fused ? kWqkv : kWq, qkv_module_k = fused ? kWqkv : kWk,
                   qkv_module_v = fused ? kWqkv : kWv;
  const TensorRole gate_module = c.fused_gate_up ? kWGateUp : kWGate,
                   up_module = c.fused_gate_up ? kWGateUp : kWUp;
  std::vector<BlockLinear> v = {
      {kWq, InputPoint::kAttnIn, qkv_module_q, c.q_dim(), c.dim},
      {kWk, InputPoint::kAttnIn, qkv_module_k, c.kv_dim(), c.dim},
      {kWv, InputPoint::kAttnIn, qkv_module_v, c.kv_dim(), c.dim},
  };
  // A parallel block with one norm feeds the MLP from the attention input: its first linears
  // belong with q/k/v.
  std::vector<BlockLinear> mlp_first;
  if (c.gated_mlp) mlp_first.push_back({kWGate, mlp_in, gate_module, c.hidden_dim, c.dim});
  mlp_first.push_back({kWUp, mlp_in, up_module, c.hidden_dim, c.dim});
  if (mlp_in == InputPoint::kAttnIn) v.insert(v.end(), mlp_first.begin(), mlp_first.end());
  v.push_back({kWo, InputPoint::kAttnOut, kWo, c.dim, c.q_dim()});
  if (mlp_in != InputPoint::kAttnIn) v.insert(v.end(), mlp_first.begin(), mlp_first.end());
  v.push_back({kWDown, InputPoint::kMlpAct, kWDown, c.dim, c.hidden_dim});
  return v;
}

std::vector<InputGroup> block_input_groups(const ModelConfig& c) {
  std::vector<InputGroup> groups;
  for (const BlockLinear& l : block_linears(c)) {
    if (groups.empty() || groups.back().point != l.input) {
      groups.push_back({l.input, {}, Preceding::kNone});
    }
    groups.back().linears.push_back(l.role);
  }
  for (InputGroup& g : groups) {
    switch (g.point) {
      case InputPoint::kAttnIn:
        g.preceding = c.post_norm ? Preceding::kNone : Preceding::kAttnNorm;
        break;
      case InputPoint::kAttnOut:
        g.preceding = Preceding::kValue;
        break;
      case InputPoint::kMlpIn:
        g.preceding = c.post_norm ? Preceding::kNone : Preceding::kFfnNorm;
        break;
      case InputPoint::kMlpAct:
        g.preceding =
            c.gated_mlp || c.act == ops::Activation::kRelu ? Preceding::kUp : Preceding::kNone;
        break;
    }
  }
  return groups;
}

}  // namespace lowbit
