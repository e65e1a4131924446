#include "lowbit/formats/ggml_fit.h"

#include <algorithm>
#include <cmath>

namespace lowbit::gguf::fit {

int nearest_int(float f) {
  constexpr float kLimit = 4194303.f;
  if (!(std::fabs(f) <= kLimit)) return std::isnan(f) ? 0 : (f > 0 ? 4194303 : -4194303);
  return static_cast<int>(std::nearbyint(f));  // the default rounding mode: half to even
}

namespace {

int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// Weighted sums Σ w·x·l and Σ w·l² of the symmetric codes the reciprocal `iscale` gives.
void symmetric_sums(int n, int nmax, const float* x, const float* w, float iscale, float* slx,
                    float* sl2) {
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const float l = static_cast<float>(clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1));
    const float wi = w ? w[i] : x[i] * x[i];
    sumlx += wi * x[i] * l;
    suml2 += wi * l * l;
  }
  *slx = sumlx;
  *sl2 = suml2;
}

void symmetric_codes(int n, int nmax, const float* x, float iscale, uint8_t* L) {
  for (int i = 0; i < n; ++i)
    L[i] = static_cast<uint8_t>(clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1) + nmax);
}

}  // namespace

float symmetric(int n, int nmax, const float* x, const float* w, uint8_t* L) {
  float amax = 0, peak = 0;  // the largest magnitude and the signed value that has it
  for (int i = 0; i < n; ++i) {
    const float a = std::fabs(x[i]);
    if (a > amax) {
      amax = a;
      peak = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, uint8_t{0});
    return 0.f;
  }
  float iscale = static_cast<float>(-nmax) / peak;
  float sumlx, suml2;
  symmetric_sums(n, nmax, x, w, iscale, &sumlx, &suml2);
  symmetric_codes(n, nmax, x, iscale, L);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.f;
  float best = scale * sumlx;
  for (int k = -9; k <= 9; ++k) {
    if (k == 0) continue;
    iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(k)) / peak;
    symmetric_sums(n, nmax, x, w, iscale, &sumlx, &suml2);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      symmetric_codes(n, nmax, x, iscale, L);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

float with_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min,
               uint8_t* aux, float rmin, float rdelta, int nstep) {
  float lo = x[0], hi = x[0];
  float sum_w = w[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
    sum_w += w[i];
    sum_x += w[i] * x[i];
  }
  if (lo > 0) lo = 0;
  if (hi == lo) {
    std::fill(L, L + n, uint8_t{0});
    *neg_min = -lo;
    return 0.f;
  }
  float iscale = static_cast<float>(nmax) / (hi - lo);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(clamp_int(nearest_int(iscale * (x[i] - lo)), 0, nmax));
    const float diff = scale * static_cast<float>(L[i]) + lo - x[i];
    best_error += w[i] * (diff * diff);
  }
  for (int k = 0; k <= nstep; ++k) {
    iscale = (rmin + rdelta * static_cast<float>(k) + static_cast<float>(nmax)) / (hi - lo);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = clamp_int(nearest_int(iscale * (x[i] - lo)), 0, nmax);
      aux[i] = static_cast<uint8_t>(l);
      const float fl = static_cast<float>(l);
      sum_l += w[i] * fl;
      sum_l2 += w[i] * fl * fl;
      sum_xl += w[i] * fl * x[i];
    }
    const float det = sum_w * sum_l2 - sum_l * sum_l;
    if (!(det > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    float err = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = this_scale * static_cast<float>(aux[i]) + this_min - x[i];
      err += w[i] * (diff * diff);
    }
    if (err < best_error) {
      std::copy(aux, aux + n, L);
      best_error = err;
      scale = this_scale;
      lo = this_min;
    }
  }
  *neg_min = -lo;
  return scale;
}

float positive(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float hi = 0;
  for (int i = 0; i < n; ++i) hi = std::max(hi, x[i]);
  if (hi < kGroupMaxEps) {
    std::fill(L, L + n, uint8_t{0});
    return 0.f;
  }
  auto code = [&](float iscale, int i) { return clamp_int(nearest_int(iscale * x[i]), 0, nmax); };
  float iscale = static_cast<float>(nmax) / hi;
  float best_mse = 0;
  {
    const float scale = 1 / iscale;
    for (int i = 0; i < n; ++i) {
      const float diff = x[i] - scale * static_cast<float>(code(iscale, i));
      best_mse += w[i] * diff * diff;
    }
  }
  for (int k = -4; k <= 4; ++k) {
    if (k == 0) continue;
    const float iscale_k = (0.1f * static_cast<float>(k) + static_cast<float>(nmax)) / hi;
    const float scale_k = 1 / iscale_k;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const float diff = x[i] - scale_k * static_cast<float>(code(iscale_k, i));
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_k;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = code(iscale, i);
    L[i] = static_cast<uint8_t>(l);
    const float fl = static_cast<float>(l);
    sumlx += w[i] * x[i] * fl;
    suml2 += w[i] * fl * fl;
  }
  // Coordinate descent: move one code to its best value given the others, while that helps.
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w[i] * x[i] * li;
      float sl2 = suml2 - w[i] * li * li;
      if (!(slx > 0 && sl2 > 0)) continue;
      const int nl = clamp_int(nearest_int(x[i] * sl2 / slx), 0, nmax);
      if (nl == L[i]) continue;
      const float fn = static_cast<float>(nl);
      slx += w[i] * x[i] * fn;
      sl2 += w[i] * fn * fn;
      if (slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = static_cast<uint8_t>(nl);
        sumlx = slx;
        suml2 = sl2;
        ++changed;
      }
    }
    if (changed == 0) break;
  }
  return suml2 > 0 ? sumlx / suml2 : 0.f;
}

int nearest_level(const int8_t* table, float x) {
  constexpr int kN = 16;
  if (x <= table[0]) return 0;
  if (x >= table[kN - 1]) return kN - 1;
  int up = 1;  // the first entry above x
  while (!(x < table[up])) ++up;
  const float below = x - static_cast<float>(table[up - 1]);
  const float above = static_cast<float>(table[up]) - x;
  return below < above ? up - 1 : up;
}

}  // namespace lowbit::gguf::fit
