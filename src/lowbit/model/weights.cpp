// Where each tensor role of the architecture table lives in ModelWeights.
#include "lowbit/model/weights.h"

namespace lowbit {

using enum TensorRole;

// Where the tensors of each role go.
Norm* norm_of(TensorRole r, ModelWeights* w, int layer) {
  switch (r) {
    case kEmbedNorm:
    case kEmbedNormBias:
      return &w->embed_norm;
    case kFinalNorm:
    case kFinalNormBias:
      return &w->final_norm;
    case kAttnNorm:
    case kAttnNormBias:
      return &w->layers[static_cast<size_t>(layer)].attn_norm;
    case kFfnNorm:
    case kFfnNormBias:
      return &w->layers[static_cast<size_t>(layer)].ffn_norm;
    default:
      return nullptr;
  }
}

bool is_norm_bias(TensorRole r) {
  return r == kEmbedNormBias || r == kFinalNormBias || r == kAttnNormBias || r == kFfnNormBias;
}

// The linear(s) a weight or bias role fills: one, or the parts of a fused tensor.
std::vector<Linear*> linears_of(TensorRole r, ModelWeights* w, int layer) {
  LayerWeights* l = layer >= 0 ? &w->layers[static_cast<size_t>(layer)] : nullptr;
  switch (r) {
    case kLmHead:
    case kLmHeadBias:
      return {&w->lm_head};
    case kProjIn:
      return {&w->proj_in};
    case kProjOut:
      return {&w->proj_out};
    case kWq:
    case kBq:
      return {&l->wq};
    case kWk:
    case kBk:
      return {&l->wk};
    case kWv:
    case kBv:
      return {&l->wv};
    case kWqkv:
    case kBqkv:
      return {&l->wq, &l->wk, &l->wv};
    case kWo:
    case kBo:
      return {&l->wo};
    case kWGate:
    case kBGate:
      return {&l->w_gate};
    case kWUp:
    case kBUp:
      return {&l->w_up};
    case kWGateUp:
    case kBGateUp:
      return {&l->w_gate, &l->w_up};
    case kWDown:
    case kBDown:
      return {&l->w_down};
    default:
      return {};
  }
}

}  // namespace lowbit
