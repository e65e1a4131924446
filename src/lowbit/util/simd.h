// x86 SIMD intrinsics. GCC 12 reports false -Wmaybe-uninitialized warnings from inside its own
// AVX-512 headers (GCC bug 105593, _mm512_undefined_*); silence only that, only for this header's
// users.
#pragma once

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
