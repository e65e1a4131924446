// The GEMV/GEMM kernels against a double-precision scalar reference, on ragged shapes.
#include "lowbit/ops/matmul.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace lowbit {
namespace {

struct Case {
  int out, in, n;
};

TEST(Matmul, LinearMatchesScalarReferenceOnRaggedShapes) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (Case c : {Case{1, 1, 1}, Case{3, 5, 1}, Case{7, 17, 1}, Case{13, 33, 1}, Case{257, 300, 1},
                 Case{1031, 129, 1}, Case{9, 31, 5}, Case{64, 172, 3}}) {
    std::vector<float> w(static_cast<size_t>(c.out) * c.in), b(c.out), x(c.n * c.in);
    for (float& v : w) v = d(rng);
    for (float& v : b) v = d(rng);
    for (float& v : x) v = d(rng);
    for (bool bias : {false, true}) {
      Linear l{w.data(), bias ? b.data() : nullptr, c.out, c.in};
      std::vector<float> y(c.n * c.out, -1.0f);
      ops::linear(l, x.data(), c.n, y.data());
      for (int t = 0; t < c.n; ++t) {
        for (int o = 0; o < c.out; ++o) {
          double ref = bias ? b[o] : 0.0;
          for (int i = 0; i < c.in; ++i) ref += double(w[o * c.in + i]) * x[t * c.in + i];
          EXPECT_NEAR(y[t * c.out + o], ref, 1e-4 * (1 + std::abs(ref)))
              << c.out << "x" << c.in << " n=" << c.n << " row " << o;
        }
      }
    }
  }
}

TEST(Matmul, LinearMultiEqualsSeparateLinears) {
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  const int in = 70;
  std::vector<float> w1(37 * in), w2(300 * in), x(in);
  for (float& v : w1) v = d(rng);
  for (float& v : w2) v = d(rng);
  for (float& v : x) v = d(rng);
  Linear a{w1.data(), nullptr, 37, in}, b{w2.data(), nullptr, 300, in};
  std::vector<float> ya(37), yb(300), ra(37), rb(300);
  const Linear* ls[] = {&a, &b};
  float* ys[] = {ya.data(), yb.data()};
  ops::linear_multi(ls, ys, 2, x.data(), 1);
  ops::linear(a, x.data(), 1, ra.data());
  ops::linear(b, x.data(), 1, rb.data());
  EXPECT_EQ(ya, ra);
  EXPECT_EQ(yb, rb);
}

}  // namespace
}  // namespace lowbit
