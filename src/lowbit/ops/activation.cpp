#include "lowbit/ops/activation.h"

#include <cfloat>
#include <cmath>
#include <limits>

#include "lowbit/ops/vec_math.h"
#include "lowbit/util/error.h"

namespace lowbit::ops {

namespace {

constexpr double kSqrtHalf = 0.70710678118654752440;  // 1/√2
constexpr double kSqrt2OverPi = 0.79788456080286535588;
constexpr double kGeluCubic = 0.044715;

// Below -15 both GELUs round to -0 in float (x·Φ(x) > -1e-45 there): inputs are clamped to this,
// so that -inf gives -0 instead of -inf · 0 = NaN.
constexpr double kGeluLow = -40.0;

// The functions in double. GELU-tanh as x · sigmoid(2u): 1 + tanh(u) = 2 / (1 + exp(-2u)), which
// loses nothing to cancellation for negative x; GELU-erf as x · erfc(-x/√2) / 2 for the same
// reason.
double silu_d(double x) {
  if (std::isinf(x)) return x > 0 ? x : -0.0;
  return x / (1.0 + std::exp(-x));
}

double gelu_erf_d(double x) {
  x = std::fmax(x, kGeluLow);  // (NaN never gets here)
  return 0.5 * x * std::erfc(-x * kSqrtHalf);
}

double gelu_tanh_d(double x) {
  x = std::fmax(x, kGeluLow);
  const double u = kSqrt2OverPi * (x + kGeluCubic * x * x * x);
  return x / (1.0 + std::exp(-2.0 * u));
}

double act_d(Activation a, double x) {
  if (std::isnan(x)) return x;
  switch (a) {
    case Activation::kSilu:
      return silu_d(x);
    case Activation::kGeluErf:
      return gelu_erf_d(x);
    case Activation::kGeluTanh:
      return gelu_tanh_d(x);
    case Activation::kRelu:
      return x <= 0 ? 0.0 : x;
  }
  return x;
}

#if defined(__AVX512F__)

// Cephes ndtr.c rational approximations (relative error ~1e-14 in double):
// erf(x) = x·T(x²)/U(x²) for |x| < 1; erfc(x) = exp(-x²)·P(x)/Q(x) for 1 ≤ x < 8, and
// exp(-x²)·R(x)/S(x) for x ≥ 8 (U, Q, S with a leading 1).
constexpr double kErfT[] = {9.60497373987051638749E0, 9.00260197203842689217E1,
                            2.23200534594684319226E3, 7.00332514112805075473E3,
                            5.55923013010394962768E4};
constexpr double kErfU[] = {3.35617141647503099647E1, 5.21357949780152679795E2,
                            4.59432382970980127987E3, 2.26290000613890934246E4,
                            4.92673942608635921086E4};
constexpr double kErfcP[] = {
    2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0,
    4.86371970985681366614E1,   1.96520832956077098242E2,  5.26445194995477358631E2,
    9.34528527171957607540E2,   1.02755188689515710272E3,  5.57535335369399327526E2};
constexpr double kErfcQ[] = {1.32281951154744992508E1, 8.67072140885989742329E1,
                             3.54937778887819891062E2, 9.75708501743205489753E2,
                             1.82390916687909736289E3, 2.24633760818710981792E3,
                             1.65666309194161350182E3, 5.57535340817727675546E2};
constexpr double kErfcR[] = {5.64189583547755073984E-1, 1.27536670759978104416E0,
                             5.01905042251180477414E0,  6.16021097993053585195E0,
                             7.40974269950448939160E0,  2.97886665372100240670E0};
constexpr double kErfcS[] = {2.26052863220117276590E0, 9.39603524938001434673E0,
                             1.20489539808096656605E1, 1.70814450747565897222E1,
                             9.60896809063285878198E0, 3.36907645100081516050E0};

// c[0]·x^(N-1) + ... + c[N-1].
template <size_t N>
inline __m512d polevl8(__m512d x, const double (&c)[N]) {
  __m512d p = _mm512_set1_pd(c[0]);
  for (size_t i = 1; i < N; ++i) p = _mm512_fmadd_pd(p, x, _mm512_set1_pd(c[i]));
  return p;
}

// x^N + c[0]·x^(N-1) + ... + c[N-1].
template <size_t N>
inline __m512d p1evl8(__m512d x, const double (&c)[N]) {
  __m512d p = _mm512_add_pd(x, _mm512_set1_pd(c[0]));
  for (size_t i = 1; i < N; ++i) p = _mm512_fmadd_pd(p, x, _mm512_set1_pd(c[i]));
  return p;
}

// x · Φ(x), Φ the standard normal CDF: (1 + erf(w))/2 for |w| < 1 (w = x/√2), else 1 − erfc(|w|)/2
// or erfc(|w|)/2 by the sign of x. Only the pieces some lane needs are evaluated. The clamps use
// max/min with x second, so NaN passes through.
inline __m512d gelu_erf8d(__m512d x) {
  x = _mm512_max_pd(_mm512_set1_pd(kGeluLow), x);
  const __m512d w = _mm512_mul_pd(x, _mm512_set1_pd(kSqrtHalf));
  const __m512d z = _mm512_abs_pd(w);
  const __mmask8 small = _mm512_cmp_pd_mask(z, _mm512_set1_pd(1.0), _CMP_LT_OQ);
  __m512d phi = _mm512_setzero_pd();
  if (small) {
    const __m512d w2 = _mm512_mul_pd(w, w);
    const __m512d erf = _mm512_div_pd(_mm512_mul_pd(w, polevl8(w2, kErfT)), p1evl8(w2, kErfU));
    phi = _mm512_mask_blend_pd(small, phi,
                               _mm512_fmadd_pd(erf, _mm512_set1_pd(0.5), _mm512_set1_pd(0.5)));
  }
  if (small != 0xff) {
    const __m512d zc = _mm512_min_pd(_mm512_set1_pd(40.0), z);  // erfc(40) = 0; inf · 0 avoided
    const __m512d ex = exp8d(_mm512_sub_pd(_mm512_setzero_pd(), _mm512_mul_pd(zc, zc)));
    const __mmask8 far = _mm512_cmp_pd_mask(zc, _mm512_set1_pd(8.0), _CMP_GE_OQ) & ~small;
    __m512d ratio = _mm512_setzero_pd();
    if (static_cast<__mmask8>(~small & ~far)) {
      ratio = _mm512_div_pd(polevl8(zc, kErfcP), p1evl8(zc, kErfcQ));
    }
    if (far) {
      ratio =
          _mm512_mask_blend_pd(far, ratio, _mm512_div_pd(polevl8(zc, kErfcR), p1evl8(zc, kErfcS)));
    }
    const __m512d half_erfc = _mm512_mul_pd(_mm512_mul_pd(ex, ratio), _mm512_set1_pd(0.5));
    const __mmask8 pos = _mm512_cmp_pd_mask(w, _mm512_setzero_pd(), _CMP_GE_OQ);
    const __m512d big =
        _mm512_mask_sub_pd(half_erfc, pos, _mm512_set1_pd(1.0), half_erfc);  // 1 − erfc/2 if x ≥ 0
    phi = _mm512_mask_blend_pd(small, big, phi);
  }
  return _mm512_mul_pd(x, phi);
}

// x / (1 + exp(-2u)), u = √(2/π)·(x + 0.044715·x³).
inline __m512d gelu_tanh8d(__m512d x) {
  x = _mm512_max_pd(_mm512_set1_pd(kGeluLow), x);
  const __m512d k =
      _mm512_fmadd_pd(_mm512_mul_pd(x, x), _mm512_set1_pd(-2.0 * kSqrt2OverPi * kGeluCubic),
                      _mm512_set1_pd(-2.0 * kSqrt2OverPi));
  const __m512d e = exp8d(_mm512_mul_pd(x, k));
  return _mm512_div_pd(x, _mm512_add_pd(_mm512_set1_pd(1.0), e));
}

// The two halves of 16 floats as doubles, and back.
inline __m512d lo8d(__m512 x) { return _mm512_cvtps_pd(_mm512_castps512_ps256(x)); }
inline __m512d hi8d(__m512 x) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
}
inline __m512 join16(__m512d lo, __m512d hi) {
  const __m512d l = _mm512_castps_pd(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)));
  return _mm512_castpd_ps(_mm512_insertf64x4(l, _mm256_castps_pd(_mm512_cvtpd_ps(hi)), 1));
}

// 16 lanes of act (· up when kGated). SiLU in float (the SwiGLU kernel: g / (1 + exp(-g)), the
// numerator clamped to -FLT_MAX so g = -inf gives -0), ReLU exactly, the GELUs in double and
// rounded once (the product with up included).
template <Activation A, bool kGated>
inline __m512 act16(__m512 g, __m512 u) {
  if constexpr (A == Activation::kSilu) {
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    const __m512 num = _mm512_max_ps(_mm512_set1_ps(-FLT_MAX), g);
    const __m512 h = _mm512_div_ps(num, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    return kGated ? _mm512_mul_ps(h, u) : h;
  } else if constexpr (A == Activation::kRelu) {
    // Keeps x > 0 and NaN, zeroes the rest.
    const __m512 h =
        _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_NLE_UQ), g);
    return kGated ? _mm512_mul_ps(h, u) : h;
  } else {
    auto f = [](__m512d x) { return A == Activation::kGeluErf ? gelu_erf8d(x) : gelu_tanh8d(x); };
    __m512d lo = f(lo8d(g)), hi = f(hi8d(g));
    if constexpr (kGated) {
      lo = _mm512_mul_pd(lo, lo8d(u));
      hi = _mm512_mul_pd(hi, hi8d(u));
    }
    return join16(lo, hi);
  }
}

template <Activation A, bool kGated>
void run_block(float* x, const float* up, size_t lo, size_t hi) {
  for (size_t i = lo; i < hi; i += 16) {
    const __mmask16 m = lanes16(hi - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 u = kGated ? _mm512_maskz_loadu_ps(m, up + i) : _mm512_setzero_ps();
    _mm512_mask_storeu_ps(x + i, m, act16<A, kGated>(g, u));
  }
}

template <Activation A, bool kGated>
void run(float* x, const float* up, size_t n) {
  // Blocks of 1024 (a multiple of 16) so each thread's slice starts on a vector boundary. The
  // GELUs cost more per element, so they go parallel sooner.
  constexpr size_t kBlock = 1024;
  constexpr size_t kParallel =
      A == Activation::kGeluErf || A == Activation::kGeluTanh ? 8192 : 16384;
  const long long blocks = static_cast<long long>((n + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static) if (n > kParallel)
  for (long long b = 0; b < blocks; ++b) {
    const size_t lo = static_cast<size_t>(b) * kBlock;
    run_block<A, kGated>(x, up, lo, lo + kBlock < n ? lo + kBlock : n);
  }
}

template <bool kGated>
void dispatch(Activation a, float* x, const float* up, size_t n) {
  switch (a) {
    case Activation::kSilu:
      return run<Activation::kSilu, kGated>(x, up, n);
    case Activation::kGeluErf:
      return run<Activation::kGeluErf, kGated>(x, up, n);
    case Activation::kGeluTanh:
      return run<Activation::kGeluTanh, kGated>(x, up, n);
    case Activation::kRelu:
      return run<Activation::kRelu, kGated>(x, up, n);
  }
}
#endif

}  // namespace

Activation parse_activation(const std::string& where, const std::string& hf_name) {
  // transformers' ACT2FN names whose function is exactly one of ours. "gelu_python" is the erf
  // formula written in Python; "gelu_new" (NewGELU), "gelu_pytorch_tanh" (torch's approximate =
  // "tanh"), "gelu_fast" (x·0.7978845608·(1 + 0.044715·x²)) and "gelu_accurate" are all the tanh
  // formula. Not accepted: "gelu_10" (clipped), "quick_gelu" (x·sigmoid(1.702x)), "relu2",
  // "relu6", "leaky_relu", "mish", "linear", ...
  if (hf_name == "silu" || hf_name == "swish") return Activation::kSilu;
  if (hf_name == "gelu" || hf_name == "gelu_python") return Activation::kGeluErf;
  if (hf_name == "gelu_new" || hf_name == "gelu_pytorch_tanh" || hf_name == "gelu_fast" ||
      hf_name == "gelu_accurate")
    return Activation::kGeluTanh;
  if (hf_name == "relu") return Activation::kRelu;
  fail(where, "unsupported activation '{}'", hf_name);
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kSilu:
      return "silu";
    case Activation::kGeluErf:
      return "gelu";
    case Activation::kGeluTanh:
      return "gelu_new";
    case Activation::kRelu:
      return "relu";
  }
  return "?";
}

namespace ref {

float activation(Activation a, float x) { return static_cast<float>(act_d(a, x)); }

void activate(Activation a, float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = static_cast<float>(act_d(a, x[i]));
}

void gated(Activation a, float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; ++i) gate[i] = static_cast<float>(act_d(a, gate[i]) * up[i]);
}

}  // namespace ref

void activate(Activation a, float* x, size_t n) {
#if defined(__AVX512F__)
  dispatch<false>(a, x, nullptr, n);
#else
  ref::activate(a, x, n);
#endif
}

void gated(Activation a, float* gate, const float* up, size_t n) {
#if defined(__AVX512F__)
  dispatch<true>(a, gate, up, n);
#else
  ref::gated(a, gate, up, n);
#endif
}

void swiglu(float* gate, const float* up, size_t n) { gated(Activation::kSilu, gate, up, n); }

}  // namespace lowbit::ops
